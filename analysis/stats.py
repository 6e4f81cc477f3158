"""The statistics of the report: intervals over seeds and the paired test of two arms.

Everything here works on plain arrays of per-seed values, so each report number (a mean
accuracy, a difference of two arms, a spread over lrs) gets its interval the same way:

* **Interval of a mean** over n seeds: a t-interval (mean ± t₀.₉₇₅,ₙ₋₁ · s/√n) below
  `BOOTSTRAP_FROM` seeds, where a bootstrap has too few distinct resamples to be trusted, and a
  seeded percentile bootstrap (10,000 resamples) from there on, which does not assume normality.
* **Paired test**: the exact sign-flip permutation test of the mean difference. Under "no
  difference" each seed's difference is as likely positive as negative, so all 2ⁿ sign patterns
  are equally likely; p is the fraction whose |mean| reaches the observed one. It is exact for
  any n (enumerated up to `EXACT_UP_TO` pairs, sampled beyond), and its smallest attainable p is
  2/2ᵏ for k non-zero differences: below 6 seeds no result can reach p ≤ 0.05.
* **Seeds needed**: the smallest n at which a two-sided paired t-test at α = 0.05 would detect
  the observed mean difference with power 0.8, given the observed spread (noncentral t), and
  never fewer than the n whose smallest attainable sign-flip p is ≤ 0.05.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

ALPHA = 0.05
POWER = 0.8
LEVEL = 0.95
TIE_TOLERANCE = 1e-12
BOOTSTRAP_FROM = 10
BOOTSTRAP_RESAMPLES = 10_000
SEED = 0
EXACT_UP_TO = 20
SAMPLED_FLIPS = 200_000
MAX_SEEDS_NEEDED = 1000


def mean_ci(values: np.ndarray, level: float = LEVEL) -> tuple[float, float, str]:
    """(low, high, method) of the mean of the finite `values`; NaNs below 2 values."""
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan, math.nan, "none"
    if len(x) < BOOTSTRAP_FROM:
        half = t_half_width(x, level)
        return float(x.mean() - half), float(x.mean() + half), "t"
    rng = np.random.default_rng(SEED)
    means = x[rng.integers(0, len(x), size=(BOOTSTRAP_RESAMPLES, len(x)))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high), "bootstrap"


def t_half_width(x: np.ndarray, level: float = LEVEL) -> float:
    """Half-width of the t-interval of the mean of `x` (NaN below 2 values)."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan
    from scipy import stats  # here, not at the top: scipy.stats takes half a second to import

    return float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def t_half_widths(std: np.ndarray, n: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """Elementwise t-interval half-widths from standard deviations and counts (NaN below 2)."""
    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        from scipy import stats

        q = stats.t.ppf(0.5 + level / 2, np.where(n > 1, n - 1, np.nan))
        return q * np.asarray(std, float) / np.sqrt(n)


def sign_flip_p(d: np.ndarray) -> float:
    """Two-sided p of the exact sign-flip test of mean(d) = 0 (1.0 when every d is zero)."""
    d = np.where(np.abs(d) < TIE_TOLERANCE, 0.0, np.asarray(d, float))
    observed = abs(d.sum()) - 1e-12 * max(1.0, np.abs(d).sum())  # float slack: equal sums count
    if len(d) == 0:
        return math.nan
    if len(d) > EXACT_UP_TO:
        rng = np.random.default_rng(SEED)
        signs = rng.choice((-1.0, 1.0), size=(SAMPLED_FLIPS, len(d)))
        return float((np.sum(np.abs(signs @ d) >= observed) + 1) / (SAMPLED_FLIPS + 1))
    # Meet in the middle: every sum is a sum over the first half plus one over the second.
    half = len(d) // 2
    left, right = _signed_sums(d[:half]), _signed_sums(d[half:])
    hits = np.count_nonzero(np.abs(left[:, None] + right[None, :]) >= observed)
    return float(hits / (len(left) * len(right)))


def _signed_sums(d: np.ndarray) -> np.ndarray:
    """Σ sᵢ·dᵢ for every sign pattern s ∈ {−1, 1}ⁿ (2ⁿ values)."""
    sums = np.zeros(1)
    for value in d:
        sums = np.concatenate([sums + value, sums - value])
    return sums


def min_attainable_p(n_nonzero: int) -> float:
    """The smallest two-sided sign-flip p with `n_nonzero` non-zero differences: 2/2ⁿ."""
    return 1.0 if n_nonzero == 0 else min(1.0, 2.0 / 2**n_nonzero)


def seeds_floor(alpha: float = ALPHA) -> int:
    """The fewest pairs whose smallest attainable p is ≤ α (6 at α = 0.05)."""
    return math.ceil(math.log2(2 / alpha))


def t_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test at standardised effect `effect` (mean/sd) with n pairs."""
    if n < 2:
        return 0.0
    df = n - 1
    from scipy import stats

    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = effect * math.sqrt(n)
    upper, lower = stats.nct.sf(crit, df, nc), stats.nct.cdf(-crit, df, nc)
    # scipy's noncentral t gives NaN far out in a tail, where that tail's mass is 0
    return float(np.nan_to_num(upper, nan=1.0 if nc > 0 else 0.0) + np.nan_to_num(lower, nan=0.0))


def seeds_needed(mean: float, sd: float) -> int | None:
    """Pairs needed to detect `mean` with power 0.8 at α = 0.05 given spread `sd`.

    None when it cannot be estimated (no spread yet, or a zero difference) or would exceed
    MAX_SEEDS_NEEDED (the difference is too small to chase with seeds).
    """
    if not (math.isfinite(mean) and math.isfinite(sd)) or abs(mean) < TIE_TOLERANCE:
        return None
    floor = seeds_floor()
    if sd < TIE_TOLERANCE:
        return floor
    effect = abs(mean) / sd
    for n in range(max(floor, 2), MAX_SEEDS_NEEDED + 1):
        if t_power(effect, n) >= POWER:
            return n
    return None


def detectable_effect(sd: float, n: int) -> float:
    """The smallest |mean difference| detected with power 0.8 at α = 0.05 with n pairs and spread sd.

    NaN when n is below the floor at which any p ≤ 0.05 is attainable, or without a spread.
    """
    if n < seeds_floor() or not math.isfinite(sd) or sd < TIE_TOLERANCE:
        return math.nan
    from scipy import optimize

    effect = optimize.brentq(lambda e: t_power(e, n) - POWER, 1e-6, 40.0)
    return float(effect * sd)


@dataclass(frozen=True)
class Paired:
    """The paired comparison of an arm with the reference over n seeds (values are fractions)."""

    n: int
    mean_diff: float
    sd_diff: float
    ci_low: float
    ci_high: float
    ci_method: str
    p_value: float
    wins: int
    ties: int
    losses: int
    min_attainable_p: float
    seeds_needed: int | None
    detectable_effect: float

    def as_dict(self) -> dict:
        return asdict(self)


def paired(d: np.ndarray) -> Paired:
    """Every statistic of the report's paired tests for the differences `d` (arm − reference)."""
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    low, high, method = mean_ci(d)
    nonzero = int(np.count_nonzero(np.abs(d) >= TIE_TOLERANCE))
    return Paired(
        n=n,
        mean_diff=mean,
        sd_diff=sd,
        ci_low=low,
        ci_high=high,
        ci_method=method,
        p_value=sign_flip_p(d) if n else math.nan,
        wins=int(np.sum(d >= TIE_TOLERANCE)),
        ties=n - nonzero,
        losses=int(np.sum(d <= -TIE_TOLERANCE)),
        min_attainable_p=min_attainable_p(nonzero) if n else 1.0,
        seeds_needed=seeds_needed(mean, sd) if n > 1 else None,
        detectable_effect=detectable_effect(sd, n),
    )
