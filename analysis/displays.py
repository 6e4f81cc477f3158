"""What each table shows: machine frames (fractions) -> `Table`s with display strings (percent).

Each builder takes the rows of one label-noise level (or all levels, where the level is a
column) and returns a `Table` whose `data` goes to CSV and whose `display` goes to Markdown
and LaTeX.
"""

from __future__ import annotations

import pandas as pd

from analysis.select import LEVEL
from analysis.tables import Table, num_pm, pct, pct_pm, signed_pct

COMPARISON_METRICS = [
    ("best_test_clean_acc", "Clean best"),
    ("last_test_clean_acc", "Clean last"),
    ("best_test_robust_acc", "PGD best"),
    ("last_test_robust_acc", "PGD last"),
    ("autoattack_best", "AA best"),
    ("autoattack_last", "AA last"),
]
ERROR_CHARS = 80


def _seeds(frame: pd.DataFrame) -> list[str]:
    """'3', or '2 (+1 div.)' where some seeds of the setting diverged."""
    return [
        f"{int(ok)}" + (f" (+{int(div)} div.)" if div else "")
        for ok, div in zip(frame["n_ok"], frame["n_diverged"], strict=True)
    ]


def _pm(frame: pd.DataFrame, metric: str) -> list[str]:
    return [pct_pm(m, s) for m, s in zip(frame[f"{metric}_mean"], frame[f"{metric}_std"], strict=True)]


def comparison(rows: pd.DataFrame, name: str, title: str, with_autoattack: bool) -> Table:
    """The paper's Table 1: one row per arm at its best-tuned setting, mean ± std over seeds."""
    metrics = [m for m in COMPARISON_METRICS if with_autoattack or not m[0].startswith("autoattack")]
    display = pd.DataFrame(
        {
            "Arm": [
                f"{m} ({k}{', ref.' if ref else ''})"
                for m, k, ref in zip(rows["method"], rows["kind"], rows["is_reference"], strict=True)
            ],
            "Setting": list(rows["label"]),
            "lr": [f"{lr:g}" for lr in rows["lr"]],
            "Seeds": _seeds(rows),
        }
    )
    for metric, header in metrics:
        display[f"{header} (%)"] = _pm(rows, metric)
    display["Gap (pts)"] = _pm(rows, "gap_robust")
    display["‖w‖ last"] = [
        num_pm(m, s) for m, s in zip(rows["weight_norm_last_mean"], rows["weight_norm_last_std"], strict=True)
    ]
    display["Rel. PGD"] = [
        "ref." if ref else signed_pct(rel)
        for ref, rel in zip(rows["is_reference"], rows["rel_improvement"], strict=True)
    ]
    keep = [LEVEL, "method", "kind", "hp", "lr", "label", "reference", "is_reference", "n_ok", "n_diverged"]
    keep += ["score"] + [f"{m}_{s}" for m, _ in metrics for s in ("mean", "std")]
    keep += ["gap_robust_mean", "gap_robust_std", "weight_norm_last_mean", "weight_norm_last_std"]
    note = "Mean ± std over seeds; PGD = test robust accuracy; Rel. PGD = (arm − ref.) / ref. at the best checkpoint."
    return Table(name, title, rows[[*keep, "rel_improvement"]], display, note)


def paired(summary: pd.DataFrame, name: str, title: str) -> Table:
    """Paired-seed test of each adaptive arm against the reference fixed arm."""
    display = pd.DataFrame(
        {
            "Arm": list(summary["method"]),
            "vs": list(summary["reference"]),
            "Pairs": list(summary["n_pairs"]),
            "Mean diff (pts)": [f"{100 * d:+.1f}" for d in summary["mean_diff"]],
            "95% CI (pts)": [
                "–" if pd.isna(lo) else f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"
                for lo, hi in zip(summary["ci_low"], summary["ci_high"], strict=True)
            ],
            "Wilcoxon p": ["–" if pd.isna(p) else f"{p:.3g}" for p in summary["p_value"]],
            "W/T/L": [
                f"{w}/{t}/{lo}" for w, t, lo in zip(summary["wins"], summary["ties"], summary["losses"], strict=True)
            ],
        }
    )
    note = "Pairs: equal (lr, seed), each arm at its best-tuned setting for that lr; diff = adaptive − fixed."
    return Table(name, title, summary, display, note)


def sensitivity(table: pd.DataFrame, name: str, title: str) -> Table:
    """Spread and normalised area of robust accuracy over the lr grid, per arm."""
    display = pd.DataFrame(
        {
            "Arm": list(table["method"]),
            "Best setting": list(table["label"]),
            "LRs": list(table["n_lr"]),
            "Spread, best setting (pts)": [pct(v) for v in table["spread_best"]],
            "Area, best setting (%)": [pct(v) for v in table["area_best"]],
            "Spread, best per lr (pts)": [pct(v) for v in table["spread_envelope"]],
            "Area, best per lr (%)": [pct(v) for v in table["area_envelope"]],
            "Complete": [
                "yes" if b and e else "no"
                for b, e in zip(table["complete_best"], table["complete_envelope"], strict=True)
            ],
        }
    )
    note = "Spread = max − min over lrs (lower is less sensitive); area = mean accuracy over log10(lr)."
    return Table(name, title, table, display, note)


def configurations(table: pd.DataFrame, best: pd.DataFrame, name: str, title: str) -> Table:
    """Every setting: validation score, best epoch, best and last test robust accuracy, gap."""
    chosen = set(zip(best["method"], best["hp"], best["lr"], strict=True))
    marks = ["yes" if key in chosen else "" for key in zip(table["method"], table["hp"], table["lr"], strict=True)]
    display = pd.DataFrame(
        {
            "Arm": list(table["method"]),
            "Setting": list(table["label"]),
            "lr": [f"{lr:g}" for lr in table["lr"]],
            "Best-tuned": marks,
            "Seeds": _seeds(table),
            "Val robust (%)": [pct(v) for v in table["score"]],
            "Best epoch": [
                num_pm(m, s, 1) for m, s in zip(table["best_epoch_mean"], table["best_epoch_std"], strict=True)
            ],
            "Test robust best (%)": _pm(table, "best_test_robust_acc"),
            "Test robust last (%)": _pm(table, "last_test_robust_acc"),
            "Gap (pts)": _pm(table, "gap_robust"),
        }
    )
    note = "Best = at each trial's best-validation epoch; gap = best − last; means over ok seeds."
    return Table(name, title, table, display, note)


def unfinished(table: pd.DataFrame, name: str, title: str) -> Table:
    """Diverged, failed and running trials; `epoch` is where each one stopped (or has reached)."""
    display = pd.DataFrame(
        {
            "Trial": list(table["trial_id"]),
            "Status": list(table["status"]),
            "Noise (%)": [f"{100 * v:g}" for v in table[LEVEL]],
            "Arm": list(table["method"]),
            "Setting": list(table["setting"]),
            "lr": [f"{lr:g}" for lr in table["lr"]],
            "Seed": list(table["seed"]),
            "Epoch": ["–" if pd.isna(e) else str(e) for e in table["epoch"]],
            "Error": [str(e)[:ERROR_CHARS] for e in table["error"]],
        }
    )
    return Table(name, title, table, display, "Epoch: the last epoch logged (for a diverged trial, where it diverged).")


def label_noise(table: pd.DataFrame, name: str, title: str) -> Table:
    """Per noise rate and arm (best-tuned at that rate): clean best/last, PGD best, memorisation."""
    display = pd.DataFrame(
        {
            "Noise (%)": [f"{100 * v:g}" for v in table[LEVEL]],
            "Arm": list(table["method"]),
            "Setting": list(table["label"]),
            "lr": [f"{lr:g}" for lr in table["lr"]],
            "Seeds": [str(int(n)) for n in table["n_ok"]],
            "Clean best (%)": _pm(table, "best_test_clean_acc"),
            "Clean last (%)": _pm(table, "last_test_clean_acc"),
            "PGD best (%)": _pm(table, "best_test_robust_acc"),
            "Noisy labels fitted, last (%)": _pm(table, "last_noisy_fit_acc"),
        }
    )
    return Table(name, title, table, display, "Noisy labels fitted: flipped training labels predicted as flipped.")


def pruning(table: pd.DataFrame, name: str, title: str) -> Table:
    """Clean and PGD accuracy of the best checkpoint at each sparsity, per arm."""
    display = pd.DataFrame(
        {
            "Noise (%)": [f"{100 * v:g}" for v in table[LEVEL]],
            "Arm": list(table["method"]),
            "Setting": list(table["label"]),
            "lr": [f"{lr:g}" for lr in table["lr"]],
            "Sparsity (%)": [f"{100 * v:g}" for v in table["sparsity"]],
            "Seeds": [str(int(n)) for n in table["n"]],
            "Clean (%)": _pm(table, "clean_acc"),
            "PGD (%)": _pm(table, "pgd_acc"),
        }
    )
    return Table(name, title, table, display, "Best checkpoint of each arm's best-tuned configuration.")
