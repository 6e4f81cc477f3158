"""The report's summary of findings: each statement with the numbers and the test behind it.

Every arm other than the reference is set against the reference arm of its level: the headline
(confirmation, else cross-fitted), the LR test (peak-normalised accuracy over the lr grid), the
secondary comparisons of the lr curves, and the weight norm. Verdicts are worded by
`analysis.wording`: never past what the seeds support.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import compare, secondary, wording
from analysis.pipeline import Analysis, at_level
from analysis.select import LEVEL
from analysis.tables import fixed, p_text, pct, pts
from analysis.text import md


def metric_name(a: Analysis) -> str:
    """'PGD-10 accuracy' (the study's evaluation attack) or 'clean accuracy'."""
    if a.metric == "clean_acc":
        return "clean accuracy"
    attack = a.run.study_field("attack", "eval", default={})
    steps = attack.get("steps") if isinstance(attack, dict) else None
    return f"PGD-{steps} accuracy" if steps else "PGD accuracy"


def examples_text(a: Analysis) -> str:
    """'359 test examples' (the final evaluation's), or a range when trials differ."""
    examples = a.outcomes["examples"].dropna().astype(int)
    if examples.empty:
        return "no final evaluation"
    low, high = examples.min(), examples.max()
    return f"{low} test examples" if low == high else f"{low}–{high} test examples"


def findings(a: Analysis, level: float) -> list[str | tuple[str, list[str]]]:
    """Bullet points (Markdown, without the leading '- ') for one label-noise level; one per arm with
    its statements as sub-bullets."""
    best = at_level(a.best, level)
    trials = at_level(a.outcomes, level)
    reference = a.references.get(level)
    items = []
    if a.smoke_test:
        items.append(
            f"**Smoke test** ({', '.join(a.smoke_reasons)}): the numbers below show that the pipeline runs end to "
            "end; they are not evidence about the arms, and no claim is made from them."
        )
    items += selection_notes(a, level)
    if best.empty:
        return [*items, "No arm has an eligible configuration at this level: there is nothing to compare yet."]
    if reference is None:
        items.append(_no_reference(a, level))
    else:
        for method in [m for m in a.arms if m != reference and (best["method"] == m).any()]:
            items.append((f"**{md(method)} vs {md(reference)}**", _arm_claims(a, level, method, reference)))
    missing = [m for m in a.arms if (trials["method"] == m).any() and not (best["method"] == m).any()]
    if missing:
        items.append(f"No eligible configuration to select from for {', '.join(map(md, missing))}: left out.")
    return items + _divergence(at_level(a.tune, level), a.arms)


def selection_notes(a: Analysis, level: float) -> list[str]:
    """Whether the selection is partial, and whether a planned confirmation is still missing."""
    notes = []
    left = at_level(a.left_out, level)
    if len(left):
        listed = "; ".join(f"{md(r['method'])} {_config(r)}: {r['left_out']}" for _, r in left.iterrows())
        notes.append(
            f"**Selection is partial**: {len(left)} configuration{wording.plural(len(left))} left out because not "
            f"all {'their' if len(left) > 1 else 'its'} seeds have finished ({listed})."
        )
    planned = a.run.study_field("confirm") is not None
    confirmed = (at_level(a.headline, level)["stage"] == compare.CONFIRM).any()
    if planned and not confirmed and not at_level(a.best, level).empty:
        notes.append(
            "The study plans a confirmation stage, but no arm has confirmation trials paired with the reference's "
            "yet: the headline below is the exploratory cross-fitted comparison."
        )
    return notes


def _no_reference(a: Analysis, level: float) -> str:
    wanted = a.run.study_field("analysis", "reference")
    if wanted:
        return f"The reference arm {md(wanted)} (analysis.reference) has no eligible configuration here: no comparison."
    return "The study has no fixed arm with an eligible configuration and names no analysis.reference: no comparison."


def _arm_claims(a: Analysis, level: float, method: str, reference: str) -> list[str]:
    return [
        _headline(a, level, method, reference),
        _lr_test(a, level, method, reference),
        _secondary(a, level, method),
        _weight_norm(a, level, method, reference),
    ]


def _row(frame: pd.DataFrame, level: float, method: str) -> pd.Series | None:
    """The first row of `method` at `level`, its numbers as Python scalars (a numpy scalar rounds its last
    digit differently, and the same number must read the same in every section)."""
    rows = at_level(frame, level)
    rows = rows[rows["method"] == method]
    if rows.empty:
        return None
    return pd.Series({k: v.item() if isinstance(v, np.generic) else v for k, v in rows.iloc[0].items()}, dtype=object)


def _config(row: pd.Series) -> str:
    return f"{md(row['setting'])}, lr {row['lr']:g}"


def _headline(a: Analysis, level: float, method: str, reference: str) -> str:
    test = _row(a.headline, level, method)
    what = f"{metric_name(a)} of the final evaluation at the best checkpoint on {examples_text(a)}"
    if (test is None or test["stage"] == compare.CROSS_FIT) and _one_tuning_seed(a, level):
        means = {m: _row(a.best, level, m)["value_mean"] for m in (method, reference)}
        smoke = " **smoke test**: no claim either way." if a.smoke_test else ""
        return (
            f"*Headline* ({what}): {ONE_SEED}, so there is no test. As a description, the selected configurations "
            f"score {md(method)} {pct(means[method])}% vs {md(reference)} {pct(means[reference])}% on the tuning "
            f"seed that chose them.{smoke}"
        )
    if test is None:
        return f"*Headline* ({what}): no seed has a number for both {md(method)} and {md(reference)}."
    values = _values(a, test)
    head = f"*Headline* ({what}; {_configurations(a, values, test, reference)}): "
    if int(test["n"]) == 0:
        return head + wording.verdict_sentence(test, a.settings)
    arm, ref = _paired_means(values, test, reference)
    means = f"{md(method)} {pct(arm)}% vs {md(reference)} {pct(ref)}%{_relative(test, ref, reference)}. "
    text = head + means + wording.verdict_sentence(test, a.settings) + " "
    return text + wording.testset_text(test, a.settings.vary_split) + _left_out(test)


ONE_SEED = wording.ONE_SEED


def _one_tuning_seed(a: Analysis, level: float) -> bool:
    return len(a.tuning_seeds.get(level, [])) < 2


def _values(a: Analysis, test: pd.Series) -> pd.DataFrame:
    """The per-seed values behind one headline row (both arms)."""
    values = a.values
    keep = (values[LEVEL] == test[LEVEL]) & (values["test"] == test["test"])
    return values[keep & (values["stage"] == test["stage"])]


def _paired_means(values: pd.DataFrame, test: pd.Series, reference: str) -> tuple[float, float]:
    seeds = test["seeds"]
    means = []
    for method in (test["method"], reference):
        rows = values[(values["method"] == method) & values["seed"].isin(seeds)]
        means.append(float(rows["value"].mean()))
    return means[0], means[1]


def _configurations(a: Analysis, values: pd.DataFrame, test: pd.Series, reference: str) -> str:
    """Which configurations the numbers come from: the confirmed ones, or the cross-fitted choices."""
    parts = []
    for method in (test["method"], reference):
        rows = values[values["method"] == method]
        chosen = rows.drop_duplicates(["setting", "lr"])
        if test["stage"] == compare.CONFIRM:
            selected = _row(a.best, test[LEVEL], method)
            first = chosen.iloc[0]
            same = selected is not None and (selected["setting"], selected["lr"]) == (first["setting"], first["lr"])
            note = "" if same else " (retrained before the tuning finished; the selection is now another)"
            parts.append(f"{md(method)}: {_config(chosen.iloc[0])}{note}")
        elif len(chosen) == 1:
            parts.append(f"{md(method)}: {_config(chosen.iloc[0])} on every held-out seed")
        else:
            counts = rows.groupby(["setting", "lr"], sort=False).size().sort_values(ascending=False, kind="stable")
            listed = ", ".join(f"{md(s)}, lr {lr:g} ({k} seed{wording.plural(k)})" for (s, lr), k in counts.items())
            parts.append(f"{md(method)}: {listed}")
    if test["stage"] == compare.CONFIRM:
        return "confirmation trials of " + "; ".join(parts)
    return "configuration chosen for each held-out seed on the other seeds: " + "; ".join(parts)


def _relative(test: pd.Series, base: float, reference: str) -> str:
    """The mean difference as a share of the reference's mean (a description: the denominator is noisy too)."""
    if not np.isfinite(base) or base <= 0:
        return ""
    return f" ({pts(test['mean_diff'] / base)}% of {md(reference)}'s mean)"


def _left_out(test: pd.Series) -> str:
    return f" Left out: {md(test['missing'])}." if isinstance(test.get("missing"), str) and test["missing"] else ""


def single_lr(a: Analysis, level: float) -> float | None:
    """The study's only learning rate at `level`, or None when it has several (then the lr tests,
    spreads and curves mean something)."""
    lrs = at_level(a.tune, level)["lr"].unique()
    return float(lrs[0]) if len(lrs) == 1 else None


def _lr_test(a: Analysis, level: float, method: str, reference: str) -> str:
    if a.is_optuna:
        return "*Across the lr grid*: not computed for an Optuna stage (its lrs are not a grid shared by the arms)."
    if (only := single_lr(a, level)) is not None:
        return f"*Across the lr grid*: one lr only ({only:g}), so robustness to the lr cannot be assessed."
    if _one_tuning_seed(a, level):
        return f"*Across the lr grid*: {ONE_SEED}, so there is no test."
    lrs = sorted(at_level(a.tune, level)["lr"].unique())
    head = (
        f"*Across the lr grid* ({len(lrs)} lrs: {', '.join(f'{lr:g}' for lr in lrs)}; per seed, the mean over the "
        f"lrs of the best-per-lr {metric_name(a)} minus that seed's best, 0 = flat at the peak; best per lr chosen "
        "on the other seeds): "
    )
    test = _row(a.lr_robustness, level, method)
    if test is None:
        return head + f"no seed has a number for both {md(method)} and {md(reference)}."
    stats = at_level(a.lr_stats, level)
    mean = {m: float(stats.loc[stats["method"] == m, "peak_normalised"].mean()) for m in (method, reference)}
    worst = {m: float(stats.loc[stats["method"] == m, "worst_lr"].mean()) for m in (method, reference)}
    numbers = (
        f"{md(method)} {pts(mean[method])} vs {md(reference)} {pts(mean[reference])} points; worst-lr accuracy "
        f"{md(method)} {pct(worst[method])}% vs {md(reference)} {pct(worst[reference])}%. "
    )
    return head + numbers + wording.verdict_sentence(test, a.settings) + _left_out(test)


def _secondary(a: Analysis, level: float, method: str) -> str:
    if a.is_optuna or single_lr(a, level) is not None:
        return "*Secondary comparisons of the lr curves*: not defined here (no lr grid)."
    rows = at_level(a.secondary, level)
    rows = rows[rows["method"] == method]
    if rows.empty:
        return "*Secondary comparisons of the lr curves*: not available for both arms."
    first = rows.iloc[0]
    head = (
        f"*Secondary comparisons of the lr curves* (exploratory, on the tuning seeds, paired by seed; "
        f"{wording.adjustment_text(first).replace('comparisons', 'secondary comparisons')}): "
    )
    parts = [_secondary_part(row) for _, row in rows.iterrows()]
    return head + "; ".join(parts) + "."


def _secondary_part(row: pd.Series) -> str:
    label = secondary.TESTS[row["test"]]
    if int(row["n"]) == 0:
        return f"{label}: no seed has a number for both"
    span = wording.interval_text(row)
    return (
        f"{label}: **{row['verdict']}** (mean difference {pts(row['mean_diff'])} points, {span}, "
        f"adjusted p = {p_text(row['p_adjusted'])}, n = {int(row['n'])})"
    )


def _weight_norm(a: Analysis, level: float, method: str, reference: str) -> str:
    row = _row(a.norm_ratios, level, method)
    if row is None or int(row["n"]) == 0:
        return "*Final weight norm*: not recorded for both arms on a common seed."
    n = int(row["n"])
    span = ""
    if np.isfinite(row["ratio_low"]):
        bounds = f"[{fixed(row['ratio_low'], 2)}, {fixed(row['ratio_high'], 2)}]"
        span = f" ({wording.level_text(row['ratio_level'])} interval {bounds})"
    return (
        f"*Final weight norm* of the headline's trials, {md(method)} / {md(reference)}: geometric mean ratio "
        f"{fixed(row['ratio'], 2)}×{span} over {n} seed{wording.plural(n)} (from the log ratios; a description)."
    )


def _divergence(trials: pd.DataFrame, arms: list[str]) -> list[str]:
    """One line per arm with diverged trials: how many, and at which lrs."""
    diverged = trials[trials["status"] == "diverged"]
    lines = []
    for arm in arms:
        rows = diverged[diverged["method"] == arm]
        if len(rows):
            total = int((trials["method"] == arm).sum())
            lrs = ", ".join(f"{lr:g}" for lr in sorted(rows["lr"].unique()))
            lines.append(
                f"{len(rows)} of {total} {md(arm)} trials diverged (lr {lrs}); each counts as 0% in selection, "
                "tables and tests."
            )
    return lines

