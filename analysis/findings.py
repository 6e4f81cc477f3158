"""The report's summary of findings: each statement with the numbers and the test behind it.

Every arm other than the reference is set against the reference arm of its level: the headline
test (best-tuned vs best-tuned), the LR-robustness test (across the lr grid), LR sensitivity,
weight norm and the best-vs-last gap, each with its 95% interval over seeds. Claims are worded by
`analysis.wording`: never past what the seeds support.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import stats, wording
from analysis.pipeline import Analysis, at_level
from analysis.tables import fixed, interval, pct, pts
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
    if best.empty:
        return [*items, "No arm has a finished (`ok`) trial at this level: there is nothing to compare yet."]
    if reference is None:
        items.append(_no_reference(a, level))
    else:
        for method in [m for m in a.arms if m != reference and (best["method"] == m).any()]:
            items.append((f"**{md(method)} vs {md(reference)}**", _arm_claims(a, level, method, reference)))
    missing = [m for m in a.arms if (trials["method"] == m).any() and not (best["method"] == m).any()]
    if missing:
        items.append(f"No finished (`ok`) trial to select from for {', '.join(map(md, missing))}: left out.")
    return items + _divergence(trials, a.arms)


def _no_reference(a: Analysis, level: float) -> str:
    wanted = a.run.study_field("analysis", "reference")
    if wanted:
        return f"The reference arm {md(wanted)} (analysis.reference) has no finished trial here: no comparison."
    return "The study has no fixed arm with a finished trial and names no analysis.reference: no comparison."


def _arm_claims(a: Analysis, level: float, method: str, reference: str) -> list[str]:
    return [
        _headline(a, level, method, reference),
        _lr_robustness(a, level, method, reference),
        _sensitivity(a, level, method, reference),
        _weight_norm(a, level, method, reference),
    ]


def _row(frame: pd.DataFrame, level: float, method: str) -> pd.Series | None:
    rows = at_level(frame, level)
    rows = rows[rows["method"] == method]
    return None if rows.empty else rows.iloc[0]


def _config(row: pd.Series) -> str:
    return f"{md(row['setting'])}, lr {row['lr']:g}"


def _headline(a: Analysis, level: float, method: str, reference: str) -> str:
    test, arm, ref = _row(a.headline, level, method), _row(a.best, level, method), _row(a.best, level, reference)
    head = (
        f"*Best-tuned vs best-tuned* ({md(method)}: {_config(arm)}; "
        f"{md(reference)}: {_config(ref)}; {metric_name(a)} of the final evaluation at the best checkpoint on "
        f"{examples_text(a)}): "
    )
    pairs = a.headline_pairs
    pairs = pairs[(pairs["label_noise"] == level) & (pairs["method"] == method)] if len(pairs) else pairs
    if test is None or test["n"] == 0:
        return head + wording.verdict(test if test is not None else _empty(method, reference), a.smoke_test)
    means = f"{md(method)} {pct(pairs['acc'].mean())}% vs {md(reference)} {pct(pairs['acc_ref'].mean())}%"
    text = f"{head}{means}; {wording.numbers(test)}{_relative(test, pairs)}. {wording.verdict(test, a.smoke_test)}"
    return text + _left_out(test)


def _empty(method: str, reference: str) -> pd.Series:
    return pd.Series({"method": method, "reference": reference, "n": 0})


def _relative(test: pd.Series, pairs: pd.DataFrame) -> str:
    """Relative improvement: the mean difference and its CI over the reference's mean."""
    base = pairs["acc_ref"].mean()
    if not np.isfinite(base) or base <= 0:
        return ""
    rel = test["mean_diff"] / base
    ci = interval(test["ci_low"] / base, test["ci_high"] / base)
    return f"; relative to {md(test['reference'])}: {pts(rel)}%" + ("" if ci == "–" else f" (95% CI {ci}%)")


def _left_out(test: pd.Series) -> str:
    return f" Left out: {md(test['missing'])}." if isinstance(test.get("missing"), str) and test["missing"] else ""


def single_lr(a: Analysis, level: float) -> float | None:
    """The study's only learning rate at `level`, or None when it has several (then the lr tests,
    spreads and curves mean something)."""
    lrs = at_level(a.outcomes, level)["lr"].unique()
    return float(lrs[0]) if len(lrs) == 1 else None


def _lr_robustness(a: Analysis, level: float, method: str, reference: str) -> str:
    test = _row(a.lr_robustness, level, method)
    if (only := single_lr(a, level)) is not None:
        return f"*Across the lr grid*: one lr only ({only:g}), so robustness to the lr cannot be assessed."
    lrs = sorted(at_level(a.outcomes, level)["lr"].unique())
    head = (
        f"*Across the lr grid* ({len(lrs)} lrs: {', '.join(f'{lr:g}' for lr in lrs)}; per seed, the mean over lrs "
        f"of each arm's best-per-lr {metric_name(a)}): "
    )
    if test is None or test["n"] == 0:
        return head + wording.verdict(test if test is not None else _empty(method, reference), a.smoke_test)
    means = at_level(a.lr_seed_means, level)
    arm_mean = means.loc[means["method"] == method, "lr_mean"].mean()
    ref_mean = means.loc[means["method"] == reference, "lr_mean"].mean()
    text = f"{md(method)} {pct(arm_mean)}% vs {md(reference)} {pct(ref_mean)}%; {wording.numbers(test)}."
    return f"{head}{text} {wording.verdict(test, a.smoke_test)}" + _left_out(test)


def _sensitivity(a: Analysis, level: float, method: str, reference: str) -> str:
    arm, ref = _row(a.sensitivity, level, method), _row(a.sensitivity, level, reference)
    if arm is None or ref is None:
        return "LR sensitivity: not available for both arms."
    if single_lr(a, level) is not None:
        return "*LR sensitivity*: one lr only, so spread and LR-AUC are not defined."

    def number(row: pd.Series, name: str) -> str:
        low, high = row[name + "_low"], row[name + "_high"]
        return pct(row[name]) + ("" if pd.isna(low) else f" [{pct(low)}, {pct(high)}]")

    text = (
        f"*LR sensitivity* of the best-tuned setting held at every lr (mean over seeds, 95% CI): spread (max − min) "
        f"{md(method)} {number(arm, 'spread_best')} vs {md(reference)} {number(ref, 'spread_best')} points; "
        f"LR-AUC {md(method)} {number(arm, 'area_best')} vs {md(reference)} {number(ref, 'area_best')}%"
    )
    names = ("spread_best", "area_best")
    if any(pd.isna(row[f"{n}_{end}"]) for row in (arm, ref) for n in names for end in ("low", "high")):
        return text + " (no interval with fewer than two complete seeds)."
    if all(_overlaps(arm, ref, name) for name in names):
        return text + ": the intervals overlap, so no difference in sensitivity is shown."
    return text + "."


def _overlaps(arm: pd.Series, ref: pd.Series, name: str) -> bool:
    low, high = f"{name}_low", f"{name}_high"
    return not (arm[low] > ref[high] or ref[low] > arm[high])


def _weight_norm(a: Analysis, level: float, method: str, reference: str) -> str:
    pairs = a.norm_pairs
    if pairs.empty:
        return "Final weight norm: not recorded for both arms."
    pairs = pairs[(pairs["label_noise"] == level) & (pairs["method"] == method)]
    ratios = (pairs["acc"] / pairs["acc_ref"]).to_numpy(float)
    ratios = ratios[np.isfinite(ratios)]
    if not len(ratios):
        return "Final weight norm: not recorded for both arms on a common seed."
    low, high, _ = stats.mean_ci(ratios)
    ci = "" if np.isnan(low) else f" (95% CI [{fixed(low, 2)}, {fixed(high, 2)}])"
    return (
        f"*Final weight norm* of the best-tuned configurations, ratio {md(method)} / {md(reference)} per seed: "
        f"{fixed(ratios.mean(), 2)}×{ci} over {len(ratios)} seed{'s' if len(ratios) != 1 else ''}."
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
