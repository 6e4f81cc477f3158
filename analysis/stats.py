"""Descriptive intervals of means over seeds: the ± of the tables and the bands of the figures.

These describe how much a mean moves with the seed (mean ± t₀.₉₇₅,ₙ₋₁ · s/√n); they are never a
test. Every comparison of arms goes through `analysis.verdicts`, whose interval is the inversion of
its own test.
"""

from __future__ import annotations

import math

import numpy as np

LEVEL = 0.95


def t_half_width(x: np.ndarray, level: float = LEVEL) -> float:
    """Half-width of the t-interval of the mean of the finite values of `x` (NaN below 2 values)."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan
    from scipy import stats  # here, not at the top: scipy.stats takes half a second to import

    return float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def t_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """(low, high) of the t-interval of the mean of the finite `values`; NaNs below 2 values."""
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    half = t_half_width(x, level)
    if math.isnan(half):
        return math.nan, math.nan
    return float(x.mean() - half), float(x.mean() + half)


def t_half_widths(std: np.ndarray, n: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """Elementwise t-interval half-widths from standard deviations and counts (NaN below 2)."""
    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        from scipy import stats

        q = stats.t.ppf(0.5 + level / 2, np.where(n > 1, n - 1, np.nan))
        return q * np.asarray(std, float) / np.sqrt(n)
