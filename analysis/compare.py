"""Best-tuned arms side by side, and the paired-seed test of each adaptive arm vs fixed WD.

Rules (the report repeats them):

* **Comparison**: each arm at its best-tuned setting (selected on validation); every metric is
  the mean and std over the setting's `ok` seeds. An adaptive arm's relative improvement is
  (mean PGD_adaptive − mean PGD_reference) / mean PGD_reference at the best checkpoint.
* **Paired test**: at every lr, each arm's best-tuned setting for that lr; trials are paired
  by equal (lr, seed) and d = adaptive − reference test robust accuracy at each trial's
  selected epoch (a diverged trial counts 0.0, as in the sensitivity curves; failed and
  running trials have no pair).
* Reported: n pairs, mean d, a 95% percentile bootstrap CI of the mean (10,000 resamples,
  fixed seed, so reruns agree), the two-sided Wilcoxon signed-rank p-value, and
  wins / ties / losses (a tie is |d| < 1e-12). With fewer than 2 pairs the CI and p-value are
  NaN (nothing to resample or rank); when every d is zero, p = 1.0.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from analysis.select import ARM_KEYS, LEVEL, SETTING_KEYS

TIE_TOLERANCE = 1e-12
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
PAIRED_COLUMNS = [LEVEL, "method", "reference", "n_pairs", "mean_diff", "ci_low", "ci_high", "p_value"]
PAIRED_COLUMNS += ["wins", "ties", "losses"]


def comparison_table(best: pd.DataFrame, references: pd.Series) -> pd.DataFrame:
    """`best` (rows of the setting table) with `reference` and `rel_improvement` columns.

    `rel_improvement` is NaN for fixed arms and where the level has no fixed arm.
    """
    ref_method = best[LEVEL].map(references)
    ref_rows = best.set_index([LEVEL, "method"])["best_test_robust_acc_mean"]
    ref_acc = pd.Series(
        [ref_rows.get((lvl, m), np.nan) for lvl, m in zip(best[LEVEL], ref_method, strict=True)],
        index=best.index,
    )
    rel = (best["best_test_robust_acc_mean"] - ref_acc) / ref_acc
    out = best.assign(reference=ref_method, is_reference=best["method"].eq(ref_method).fillna(False))
    out["rel_improvement"] = rel.where(best["kind"] == "adaptive")
    return out


def paired_differences(outcomes: pd.DataFrame, best_per_lr: pd.DataFrame, references: pd.Series) -> pd.DataFrame:
    """One row per (level, adaptive arm, lr, seed) pair with both accuracies and `diff`."""
    counted = outcomes[outcomes["status"].isin(["ok", "diverged"])]
    rows = counted.merge(best_per_lr[SETTING_KEYS], on=SETTING_KEYS)
    rows = rows[[*ARM_KEYS, "hp", "lr", "seed", "sens_robust"]]
    ref = rows[rows["method"] == rows[LEVEL].map(references)]
    adaptive = rows[rows["kind"] == "adaptive"]
    pairs = adaptive.merge(ref, on=[LEVEL, "lr", "seed"], suffixes=("", "_ref"))
    pairs = pairs.rename(columns={"sens_robust": "acc", "sens_robust_ref": "acc_ref", "method_ref": "reference"})
    pairs["diff"] = pairs["acc"] - pairs["acc_ref"]
    keep = [LEVEL, "method", "hp", "reference", "hp_ref", "lr", "seed", "acc", "acc_ref", "diff"]
    return pairs[keep].sort_values([LEVEL, "method", "lr", "seed"]).reset_index(drop=True)


def paired_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (level, adaptive arm): n pairs, mean diff, bootstrap CI, Wilcoxon p, wins/ties/losses."""
    rows = []
    for (level, method, reference), group in pairs.groupby([LEVEL, "method", "reference"], sort=True):
        d = group["diff"].to_numpy(float)
        low, high = bootstrap_ci(d)
        rows.append(
            {
                LEVEL: level,
                "method": method,
                "reference": reference,
                "n_pairs": len(d),
                "mean_diff": float(d.mean()),
                "ci_low": low,
                "ci_high": high,
                "p_value": wilcoxon_p(d),
                "wins": int((d >= TIE_TOLERANCE).sum()),
                "ties": int((np.abs(d) < TIE_TOLERANCE).sum()),
                "losses": int((d <= -TIE_TOLERANCE).sum()),
            }
        )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def bootstrap_ci(
    d: np.ndarray, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `d`; (NaN, NaN) with fewer than 2 values."""
    if len(d) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_resamples, len(d)))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; 1.0 if all d are zero, NaN with < 2 values."""
    if len(d) < 2:
        return float("nan")
    if np.all(np.abs(d) < TIE_TOLERANCE):
        return 1.0
    with warnings.catch_warnings():
        # A single non-zero difference leaves scipy's normal approximation with no spread.
        warnings.simplefilter("ignore", RuntimeWarning)
        # Differences within the tie tolerance are rounding noise: rank them as exact zeros.
        d = np.where(np.abs(d) < TIE_TOLERANCE, 0.0, d)
        return float(stats.wilcoxon(d, alternative="two-sided").pvalue)
