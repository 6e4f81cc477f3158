"""The report's summary of findings: each claim stated with the numbers behind it.

Each adaptive arm is set against the level's reference fixed arm on the claims of Ghiasi et
al. (robust accuracy, LR sensitivity, weight norm) plus the best-vs-last gap; where the data do
not support a claim (the paired CI includes 0, a single lr, a single seed) the text says so.
"""

from __future__ import annotations

import pandas as pd

from analysis.pipeline import Analysis, at_level
from analysis.tables import pct

SIGNIFICANCE = 0.05


def findings(a: Analysis, level: float) -> list[str]:
    """Bullet points (Markdown, without the leading '- ') for one label-noise level."""
    comparison = at_level(a.comparison, level)
    outcomes = at_level(a.outcomes, level)
    missing = sorted(set(outcomes["method"]) - set(comparison["method"]))
    notes = _divergence(outcomes, a.arms)
    if missing:
        notes.append(f"No `ok` trial to select from for arm(s) {', '.join(missing)}: left out of the comparison.")
    return _claims(a, level, comparison) + notes


def _claims(a: Analysis, level: float, comparison: pd.DataFrame) -> list[str]:
    """Each adaptive arm against the reference fixed arm, or why there is no such claim."""
    reference = a.references.get(level)
    adaptive = comparison[comparison["kind"] == "adaptive"]
    if comparison.empty:
        return ["No arm has a finished (`ok`) trial at this level: there is nothing to compare yet."]
    if reference is None or adaptive.empty:
        lacking = "fixed" if reference is None else "adaptive"
        return [f"The study has no {lacking} arm with an `ok` trial here, so there is no AWD-vs-WD claim."]
    ref = comparison[comparison["method"] == reference].iloc[0]
    items = []
    for _, row in adaptive.iterrows():
        items += [_headline(row, ref), _paired(a, level, row["method"]), _clean(row, ref, a.has_autoattack)]
        items += [_sensitivity(a, level, row["method"], reference), _weight_norm(row, ref), _gap(row, ref)]
    return items


def _acc(row: pd.Series, metric: str) -> str:
    """'63.1% ± 1.2' (mean ± std over seeds, in percent)."""
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if pd.isna(mean):
        return "n/a"
    return f"{pct(mean)}%" + ("" if pd.isna(std) else f" ± {pct(std)}")


def _setting(row: pd.Series) -> str:
    return f"{row['label']}, lr={row['lr']:g}, {int(row['n_ok'])} seed{'s' if row['n_ok'] != 1 else ''}"


def _headline(row: pd.Series, ref: pd.Series) -> str:
    rel = row["rel_improvement"]
    relative = "n/a" if pd.isna(rel) else f"{100 * rel:+.1f}% relative"
    single = " With one seed there is no spread estimate." if row["n_ok"] < 2 or ref["n_ok"] < 2 else ""
    return (
        f"**{row['method']}'s best-tuned setting** ({_setting(row)}) reaches "
        f"{_acc(row, 'best_test_robust_acc')} PGD test accuracy at its best checkpoint vs "
        f"{_acc(ref, 'best_test_robust_acc')} for {ref['method']} ({_setting(ref)}): {relative}.{single}"
    )


def _paired(a: Analysis, level: float, method: str) -> str:
    rows = at_level(a.paired, level)
    rows = rows[rows["method"] == method]
    if rows.empty or rows["n_pairs"].iloc[0] == 0:
        return f"Paired test: no (lr, seed) pair has finished for both {method} and the reference arm."
    r = rows.iloc[0]
    head = (
        f"Paired over {r['n_pairs']} (lr, seed) pair{'s' if r['n_pairs'] != 1 else ''} "
        "(best-tuned setting per lr): "
        f"mean {100 * r['mean_diff']:+.1f} points"
    )
    if r["n_pairs"] < 2:
        return f"{head}; too few pairs for a CI or a test, so no claim either way."
    stats = (
        f"{head}, 95% CI [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}], "
        f"Wilcoxon p={r['p_value']:.2g}, {r['wins']}/{r['ties']}/{r['losses']} wins/ties/losses"
    )
    if r["ci_low"] > 0 and r["p_value"] < SIGNIFICANCE:
        return f"{stats}: {method} is reliably better than {r['reference']} in this comparison."
    if r["ci_high"] < 0 and r["p_value"] < SIGNIFICANCE:
        return f"{stats}: {method} is reliably worse than {r['reference']} in this comparison."
    return f"{stats}: the data do not show a reliable difference between {method} and {r['reference']}."


def _clean(row: pd.Series, ref: pd.Series, with_autoattack: bool) -> str:
    text = (
        f"Clean test accuracy at the best checkpoint: {row['method']} {_acc(row, 'best_test_clean_acc')} "
        f"vs {ref['method']} {_acc(ref, 'best_test_clean_acc')}."
    )
    if with_autoattack:
        text += (
            f" AutoAttack (best checkpoint): {row['method']} {_acc(row, 'autoattack_best')} "
            f"vs {ref['method']} {_acc(ref, 'autoattack_best')}."
        )
    return text


def _sensitivity(a: Analysis, level: float, method: str, reference: str) -> str:
    table = at_level(a.sensitivity, level).set_index("method")
    arm, ref = table.loc[method], table.loc[reference]
    if arm["n_lr"] < 2:
        return "LR sensitivity: only one learning rate was run, so sensitivity to it cannot be assessed."
    numbers = (
        f"LR sensitivity of the best single setting across {arm['n_lr']} lrs: {method} spread "
        f"{pct(arm['spread_best'])} points, area {pct(arm['area_best'])}%; {reference} spread "
        f"{pct(ref['spread_best'])} points, area {pct(ref['area_best'])}% (best per lr: area "
        f"{pct(arm['area_envelope'])}% vs {pct(ref['area_envelope'])}%)"
    )
    caveat = "" if arm["complete_best"] and ref["complete_best"] else " Some curves are incomplete."
    if arm["spread_best"] < ref["spread_best"] and arm["area_best"] > ref["area_best"]:
        return f"{numbers}: {method} is less sensitive to the learning rate.{caveat}"
    if arm["spread_best"] > ref["spread_best"] and arm["area_best"] < ref["area_best"]:
        return f"{numbers}: {method} is more sensitive to the learning rate.{caveat}"
    return f"{numbers}: mixed, no clear difference in LR sensitivity.{caveat}"


def _weight_norm(row: pd.Series, ref: pd.Series) -> str:
    arm, base = row["weight_norm_last_mean"], ref["weight_norm_last_mean"]
    if pd.isna(arm) or pd.isna(base) or base == 0:
        return "Final weight norm: not recorded for both arms."
    verdict = "smaller" if arm < base else "not smaller"
    return (
        f"Final weight norm: {row['method']} {arm:.2f} vs {ref['method']} {base:.2f} "
        f"({arm / base:.2f}×): {row['method']}'s weights are {verdict}."
    )


def _gap(row: pd.Series, ref: pd.Series) -> str:
    arm, base = row["gap_robust_mean"], ref["gap_robust_mean"]
    text = (
        f"Best-vs-last robust gap (robust overfitting): {row['method']} {pct(arm)} points vs "
        f"{ref['method']} {pct(base)} points"
    )
    if pd.notna(arm) and pd.notna(base) and max(arm, base) < 0.01:
        return f"{text}: little robust overfitting in this run for either arm."
    return f"{text}."


def _divergence(outcomes: pd.DataFrame, arms: list[str]) -> list[str]:
    """One line per arm with diverged trials: how many, and at which lrs."""
    diverged = outcomes[outcomes["status"] == "diverged"]
    lines = []
    for arm in arms:
        rows = diverged[diverged["method"] == arm]
        if len(rows):
            total = int((outcomes["method"] == arm).sum())
            lrs = ", ".join(f"{lr:g}" for lr in sorted(rows["lr"].unique()))
            lines.append(
                f"{len(rows)} of {total} {arm} trials diverged (lr {lrs}); they count as 0% in LR sensitivity."
            )
    return lines
