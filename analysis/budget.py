"""Tuning-budget curves: what an arm delivers when only n of its configurations can be tried.

A *configuration* is one setting of the arm's hyperparameters at one lr, with its seeds averaged
(validation score and final test accuracy alike). The grid is treated as a uniform sample of
configurations: for a budget of n configurations drawn without replacement from the arm's N,
the expected test accuracy of the one with the best validation score is (Dodge et al. 2019,
"Show Your Work"; Tang et al. 2020)

    E[n] = Σᵢ v₍ᵢ₎ · C(i−1, n−1) / C(N, n)

with configurations sorted by validation score (ascending, i = 1..N) and v₍ᵢ₎ the test accuracy of
the i-th. E[1] is the mean test accuracy of all configurations, E[N] the test accuracy of the
validation-best one. The band is a 95% percentile bootstrap over configurations; the compute axis
is n × the arm's mean configuration cost (the summed `train_seconds` of its seeds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gammaln

from analysis.select import ARM_KEYS

RESAMPLES = 1000
SEED = 0
BUDGET_COLUMNS = [*ARM_KEYS, "n", "expected_best", "low", "high", "compute_hours", "configurations"]


def draw_weights(total: int) -> np.ndarray:
    """W[n−1, i−1] = C(i−1, n−1) / C(N, n): the chance that the i-th lowest is the best of n draws."""
    n = np.arange(1, total + 1)[:, None]
    i = np.arange(1, total + 1)[None, :]
    valid = i >= n
    with np.errstate(invalid="ignore"):
        log_w = _log_comb(i - 1, n - 1) - _log_comb(np.full_like(n, total), n)
    return np.where(valid, np.exp(np.where(valid, log_w, 0.0)), 0.0)


def _log_comb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return gammaln(a + 1) - gammaln(b + 1) - gammaln(np.maximum(a - b, 0) + 1)


def expected_best(validation: np.ndarray, test: np.ndarray) -> np.ndarray:
    """E[test value of the validation-best of n draws] for n = 1..N (ties: the first listed wins)."""
    order = np.lexsort((-np.arange(len(validation)), validation))  # ascending; earlier ranks higher on ties
    return draw_weights(len(validation)) @ np.asarray(test, float)[order]


def bootstrap_band(validation: np.ndarray, test: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile band of `expected_best` over configurations resampled with replacement."""
    total = len(validation)
    rng = np.random.default_rng(SEED)
    picks = rng.integers(0, total, size=(RESAMPLES, total))
    val, tst = np.asarray(validation, float)[picks], np.asarray(test, float)[picks]
    # Sort each resample by validation; ties keep the resample's order, as in `expected_best`.
    order = np.lexsort((-np.broadcast_to(np.arange(total), picks.shape), val), axis=-1)
    curves = np.take_along_axis(tst, order, axis=1) @ draw_weights(total).T
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(curves, [tail, 100 - tail], axis=0)
    return low, high


def budget_curves(configs: pd.DataFrame) -> pd.DataFrame:
    """Per (level, arm): one row per budget n = 1..N of the arm's configurations with a number."""
    rows = []
    usable = configs[configs["score"].notna() & configs["value_mean"].notna()]
    for key, group in usable.groupby(ARM_KEYS, sort=True):
        group = group.sort_values(["setting_rank", "lr"])  # ties on validation: the first listed wins
        val, test = group["score"].to_numpy(float), group["value_mean"].to_numpy(float)
        mean, (low, high) = expected_best(val, test), bootstrap_band(val, test)
        hours = float(group["train_seconds_sum"].mean()) / 3600
        for n in range(1, len(group) + 1):
            rows.append(
                dict(zip(ARM_KEYS, key, strict=True))
                | {"n": n, "expected_best": mean[n - 1], "low": low[n - 1], "high": high[n - 1]}
                | {"compute_hours": n * hours, "configurations": len(group)}
            )
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS)
