"""How a verdict is put into words: the wording follows the evidence, never past it.

The verdict itself is `analysis.verdicts.verdict_table`'s (better / worse / equivalent /
inconclusive / too few seeds), or "smoke test" for a run of one seed or a handful of epochs. Every
sentence says what the numbers are about before what they say:

* the **stage**: "confirmation on N fresh seeds" (the selection never saw them) or "exploratory,
  cross-fitted over N tuning seeds";
* **what varied** between the paired replicates: "seeds only", or "seeds and data splits" when
  each confirmation seed drew its own split;
* the **adjustment**: "adjusted for m comparisons, max-T" (or Holm, or not adjusted);

then the mean difference, the Hodges–Lehmann estimate, the interval at its attainable level, p and
the adjusted p. Power and seeds needed are those at the declared smallest effect of interest,
never at the observed difference.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis import compare, testset, verdicts
from analysis.tables import interval, missing, p_text, pts
from analysis.text import md

ADJUSTMENTS = {"maxT": "max-T", "holm": "Holm"}
ONE_SEED = "cross-fitting needs at least two tuning seeds (each is judged by a choice made on the others)"


def plural(n: int) -> str:
    return "" if n == 1 else "s"


def points(effect: float) -> str:
    """A positive size in points without a sign ('1 point', '0.5 points')."""
    size = f"{100 * effect:g}"
    return f"{size} point{'' if size == '1' else 's'}"


def stage_text(row: pd.Series) -> str:
    """'confirmation on 6 fresh seeds' or 'exploratory, cross-fitted over 6 tuning seeds'."""
    n = int(row["n"])
    if row["stage"] == compare.CONFIRM:
        return f"confirmation on {n} fresh seed{plural(n)}"
    return f"exploratory, cross-fitted over {n} tuning seed{plural(n)}"


def adjustment_text(row: pd.Series) -> str:
    """'adjusted for 4 comparisons, max-T', or why there is nothing to adjust."""
    m = int(row["family_size"])
    if m <= 1:
        return "one comparison, nothing to adjust for"
    name = ADJUSTMENTS.get(row["adjustment"])
    return f"adjusted for {m} comparisons, {name}" if name else f"not adjusted for the {m} comparisons"


def context(row: pd.Series) -> str:
    """Stage, what varied and the adjustment: the first thing every verdict sentence says."""
    stage = stage_text(row) if "stage" in row else f"on {int(row['n'])} tuning seed{plural(int(row['n']))}"
    return f"{stage}; {row['varied']} varied; {adjustment_text(row)}"


def level_text(level: float) -> str:
    """An attainable confidence level as a percentage ('96.9%')."""
    return f"{100 * level:.3g}%"


def interval_text(row: pd.Series) -> str:
    if missing(row["ci_level"]) or math.isnan(row["ci_level"]):
        return "no interval (too few seeds for any at this level)"
    return f"{level_text(row['ci_level'])} interval {interval(row['ci_low'], row['ci_high'])}"


def p_value_text(row: pd.Series) -> str:
    sampled = " (Monte Carlo)" if str(row["p_method"]).startswith("monte") else ""
    return f"p = {p_text(row['p_value'])}{sampled}, adjusted p = {p_text(row['p_adjusted'])}"


def numbers(row: pd.Series) -> str:
    """'mean +0.5 points, Hodges–Lehmann +0.4, 96.9% interval [+0.1, +0.9], p = 0.031, adjusted p = 0.047,
    6/0/0 wins/ties/losses'."""
    return (
        f"mean {pts(row['mean_diff'])} points, Hodges–Lehmann {pts(row['hodges_lehmann'])}, {interval_text(row)}, "
        f"{p_value_text(row)}, {int(row['wins'])}/{int(row['ties'])}/{int(row['losses'])} wins/ties/losses"
    )


def verdict_sentence(row: pd.Series, settings: compare.Settings, what: str = "") -> str:
    """The whole verdict of one comparison (a `compare.family` row): conclusion (context): numbers; why."""
    arm, ref, n = md(row["method"]), md(row["reference"]), int(row["n"])
    what = f"{what}: " if what else ""
    if n == 0:
        seeds = row.get("tuning_seeds")
        if row.get("stage") == compare.CROSS_FIT and isinstance(seeds, list) and len(seeds) < 2:
            return f"{what}{ONE_SEED}: no comparison."
        return f"{what}no seed has a number for both {arm} and {ref}: no comparison."
    head = f"{what}{_conclusion(row, settings)} ({context(row)}): {numbers(row)}"
    reason = _reason(row, settings)
    return f"{head}{'; ' + reason if reason else ''}."


def _conclusion(row: pd.Series, settings: compare.Settings) -> str:
    arm, ref, verdict = md(row["method"]), md(row["reference"]), row["verdict"]
    if verdict in ("better", "worse"):
        return f"**{arm} is {verdict} than {ref}**"
    if verdict in ("higher", "lower"):
        return f"**{arm} {verdict} than {ref}**"
    if verdict == "equivalent":
        return f"**{arm} and {ref} are equivalent within ±{points(settings.min_effect)}**"
    return f"**{verdict}**"


def _reason(row: pd.Series, settings: compare.Settings) -> str:
    """What a verdict short of a difference rests on, and what would settle it."""
    reason = _short_of_a_difference(row, settings)
    if reason and row["verdict"] != "smoke test" and (row["ci_low"] > 0 or row["ci_high"] < 0):
        m = int(row["family_size"])
        reason = (
            f"the interval, this comparison's alone, excludes 0, but the adjusted p does not reach {settings.alpha:g} "
            f"with {m} comparisons; {reason}"
        )
    return reason


def _short_of_a_difference(row: pd.Series, settings: compare.Settings) -> str:
    verdict, n = row["verdict"], int(row["n"])
    effect = points(settings.min_effect)
    if verdict == "smoke test":
        return "a check that the pipeline runs, so no claim either way"
    if verdict == "equivalent":
        level = level_text(1 - 2 * settings.alpha / max(int(row["family_size"]), 1))
        span = interval(row["equivalence_low"], row["equivalence_high"])
        return f"the {level} equivalence interval {span} lies inside ±{effect}"
    if verdict == "too few seeds":
        untied = n - int(row["ties"])
        seeds = f"{n} paired seed{plural(n)}" + (f", {untied} of them not tied" if untied < n else "")
        identical = " (the arms are identical on every seed)" if untied == 0 else ""
        return (
            f"with {seeds}{identical} the smallest p this test can give is {p_text(row['min_attainable_p'])}, "
            f"above the per-test level {p_text(settings.alpha / max(int(row['family_size']), 1))}; any verdict "
            f"needs at least {int(row['seeds_floor'])} seeds, and {needed_text(row, settings)}"
        )
    if verdict == "inconclusive":
        power = row["power_at_min_effect"]
        chance = "" if missing(power) or math.isnan(power) else f"the power to detect {effect} is {power:.2f}; "
        return (
            f"neither a difference nor equivalence within ±{effect} is shown with {n} seed{plural(n)}: "
            f"{chance}{needed_text(row, settings)}"
        )
    return ""


def needed_text(row: pd.Series, settings: compare.Settings) -> str:
    """How many seeds would give power 0.8 at the smallest effect of interest (conservative sd)."""
    effect = points(settings.min_effect)
    needed = row["seeds_needed"]
    if not missing(needed):
        return f"about {int(needed)} seeds would give power 0.8 to detect {effect} (conservative sd)"
    if missing(row["sd_upper"]) or math.isnan(row["sd_upper"]):
        return "how many seeds would give power 0.8 cannot be estimated (no spread among the differences yet)"
    return f"more than {verdicts.MAX_SEEDS_NEEDED:,} seeds would be needed for power 0.8 at {effect}"


def testset_text(row: pd.Series, vary_split: bool) -> str:
    """The test-set caveat of a headline: the two-level interval when there is one, else what the claim is
    conditional on."""
    low = row.get("two_level_low")
    if low is not None and not missing(low) and not math.isnan(low):
        level = level_text(row["two_level_level"])
        span = interval(row["two_level_low"], row["two_level_high"])
        return f"With test-set sampling added (seeds and test examples resampled together): {level} interval {span}."
    note = row.get("two_level_note")
    if note == testset.TOO_FEW:
        return "No interval with test-set sampling either (too few seeds for any)."
    why = f" ({note})" if isinstance(note, str) and note else ""
    if row["stage"] == compare.CONFIRM and vary_split:
        return f"The interval covers seeds and data splits, not the finite test subsets{why}."
    return f"The claim is conditional on this split and test subset{why}."
