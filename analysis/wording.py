"""How a test result is put into words: the wording follows the evidence, never past it.

* No seed in common: no comparison.
* A smoke test (one seed, or a handful of epochs): the numbers are shown, no claim is made.
* Fewer seeds than can ever reach p ≤ 0.05 with the exact test: "too few seeds", and how many
  would be needed to detect a difference of the observed size.
* p ≤ 0.05: "better (or worse) on these n seeds", with the mean, CI and exact p — a statement
  about this run, not a general law.
* Otherwise: "inconclusive", with the seeds needed and the smallest difference detectable now.
"""

from __future__ import annotations

import pandas as pd

from analysis import stats
from analysis.tables import fixed, interval, missing, p_text, pts
from analysis.text import md


def numbers(row: pd.Series) -> str:
    """'−0.5 points, 95% CI [−0.9, −0.1] (t), exact sign-flip p = 0.25, 0/0/3 wins/ties/losses (n = 3)'."""
    ci = interval(row["ci_low"], row["ci_high"])
    method = {"t": "t-interval", "bootstrap": "bootstrap"}.get(row["ci_method"], "")
    parts = [f"mean difference {pts(row['mean_diff'])} points"]
    if ci != "–":
        parts.append(f"95% CI {ci} ({method})")
    parts.append(f"exact sign-flip p = {p_text(row['p_value'])}")
    n = int(row["n"])
    parts.append(
        f"{int(row['wins'])}/{int(row['ties'])}/{int(row['losses'])} wins/ties/losses over n = {n} seed{plural(n)}"
    )
    return ", ".join(parts)


def plural(n: int) -> str:
    return "" if n == 1 else "s"


def seeds_needed_text(row: pd.Series) -> str:
    needed = row["seeds_needed"]
    if missing(needed):
        if int(row["n"]) < 2:
            return "how many seeds a test would need cannot be estimated from one seed (no spread)"
        if abs(row["mean_diff"]) < stats.TIE_TOLERANCE:
            return "the observed difference is zero, so no number of seeds would be enough to detect it"
        return f"more than {stats.MAX_SEEDS_NEEDED} seeds would be needed to detect a difference this small"
    return f"about {int(needed)} seeds would be needed to detect a difference of this size (power 0.8, α = 0.05)"


def verdict(row: pd.Series, smoke: bool) -> str:
    """The conclusion of one paired test row (compare.TEST_COLUMNS), in words."""
    arm, ref, n = md(row["method"]), md(row["reference"]), int(row["n"])
    if n == 0:
        return f"no seed has a number for both {arm} and {ref}: no comparison."
    if smoke:
        return "**smoke test**: no claim either way."
    if row["min_attainable_p"] > stats.ALPHA:
        return (
            f"**too few seeds** to tell: with {n} paired seed{'s' if n != 1 else ''} the smallest p this test can "
            f"give is {p_text(row['min_attainable_p'])}, above 0.05; {seeds_needed_text(row)}."
        )
    if row["p_value"] <= stats.ALPHA:
        direction = "better" if row["mean_diff"] > 0 else "worse"
        return (
            f"**{arm} is {direction} than {ref} on these {n} seeds** (mean {pts(row['mean_diff'])} points, "
            f"95% CI {interval(row['ci_low'], row['ci_high'])}, exact p = {p_text(row['p_value'])})."
        )
    mde = row["detectable_effect"]
    detectable = (
        ""
        if missing(mde)
        else f"; at n = {n} a difference would need to be about {fixed(100 * mde)} points to be detected with power 0.8"
    )
    return (
        f"**inconclusive**: no significant difference on these {n} seeds (p = {p_text(row['p_value'])}); "
        f"{seeds_needed_text(row)}{detectable}."
    )


def short_verdict(row: pd.Series, smoke: bool) -> str:
    """One or two words for tables: better / worse / inconclusive / too few seeds / smoke test / none."""
    if int(row["n"]) == 0:
        return "no pairs"
    if smoke:
        return "smoke test"
    if row["min_attainable_p"] > stats.ALPHA:
        return "too few seeds"
    if row["p_value"] <= stats.ALPHA:
        return "better on these seeds" if row["mean_diff"] > 0 else "worse on these seeds"
    return "inconclusive"
