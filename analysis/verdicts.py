"""Verdicts on arms against a reference arm, paired by seed: one test, its interval, its power.

Each comparison takes an arm and the reference arm on the seeds where both have a value, and
looks at the per-seed differences d = arm − reference (accuracies as fractions: 0.01 is one
point). The seed is the unit of replication; nothing else is treated as independent.

**The test.** The exact sign-flip (paired permutation) test of the mean difference. If the arm
and the reference do not differ, each seed's difference is as likely to be +dᵢ as −dᵢ, so all 2ⁿ
sign patterns are equally likely. Flipping the signs of a set S of seeds lowers the sum by twice
Σ_S dᵢ, so the count of patterns at least as extreme as the observed one is a count of subset
means ("typical values", Hartigan 1969): with M_S the mean of d over a non-empty set of seeds S,

    p_upper(δ) = (1 + #{S: M_S ≤ δ}) / 2ⁿ      tests μ = δ against μ > δ,
    p_lower(δ) = (1 + #{S: M_S ≥ δ}) / 2ⁿ      tests μ = δ against μ < δ,
    p(δ) = min(1, 2·min(p_upper, p_lower)),     the two-sided p; `p_value` is p(0).

It assumes only that, without a difference, a seed's difference is symmetric about zero. It is
exact (all 2ⁿ patterns counted by meet in the middle) up to 20 non-zero differences, and uses
20,000 seeded random sign patterns beyond (`p_method` says which).

**The interval** is that same test inverted: the δ it does not reject. With N = 2ⁿ patterns and
k = ⌊α·N/2⌋, it is [M_(k), M_(N−k)], the k-th smallest and the k-th largest of the N − 1 subset
means, so "the interval excludes 0" and "p ≤ α" are the same statement, exactly. Because p only
takes the values j/2ⁿ, the interval's confidence is the **attainable level** 1 − 2k/N, not 95%
(`ci_level`; 96.875% at 6 seeds, where the interval is [min d, max d]). Below 6 seeds k = 0 at
α = 0.05: no interval exists (NaN), because no result could ever give p ≤ 0.05.

**Other numbers.** `mean_diff`: the mean of d. `hodges_lehmann`: the median of the Walsh averages
(dᵢ + dⱼ)/2, i ≤ j, a robust centre. `wins/ties/losses`: seeds with d > 0, d = 0, d < 0.
`min_attainable_p`: 2/2ᵐ with m non-zero differences, the smallest p these seeds could give.
`n`: paired seeds; `n_missing`: seeds of the same group (any arm has a row) that are not paired,
because a value of the arm or of the reference is missing (NaN or no row). Missing values are
never turned into a p-value.

**Family-wise adjustment.** All comparisons of one `verdict_table` call that have at least one
paired seed form one family (`family_size`); a family of one is left unadjusted. "maxT" is the
Westfall–Young min-p permutation adjustment: arm labels (the reference's included) are shuffled
within each seed, 2,000 seeded times, every comparison's p is recomputed, and the adjusted p of
a comparison is the share of shuffles whose smallest p reaches it. It keeps the chance of any
false "better"/"worse" in the family at most α, and accounts for the comparisons sharing the
reference. "holm" is Holm's step-down; "none" leaves p as it is.

**Power and seeds needed** are for this test at a *declared* smallest effect of interest
(`min_effect`, one point by default), never at the observed difference: power at the observed
difference only restates the p-value, and a small observed difference would ask for absurd
numbers of seeds. The spread is the conservative sd `sd_upper`, the upper limit of a one-sided
90% chi-square confidence interval for σ, because the sample sd of a handful of seeds is often
far below the true one and would promise power that is not there. Both use the per-test level
α' = α/m (m comparisons in the family: the Bonferroni level, never less strict than maxT up to
its Monte Carlo error), as do the floor of seeds (`seeds_floor`: the fewest seeds whose smallest
attainable p is ≤ α') and the equivalence interval.

**Verdicts.** "better"/"worse" when the adjusted p ≤ α; else "equivalent" when the interval at
level 1 − 2α' (two one-sided tests at α') lies inside (−min_effect, +min_effect); else "too few
seeds" below the floor; else "inconclusive". A verdict describes these seeds of this study.

**Ties.** Differences are put on a grid of 10⁻¹² before anything is computed, so a difference
below half of it is a zero and equal differences (0.43 − 0.42 and 0.53 − 0.52) are equal; all
sums are then exact, and the test and its interval count the same ties the same way.

**Test-set uncertainty** (`two_level_interval`) is separate: a paired bootstrap over both seeds
and test examples, for when the per-example correctness was stored (`pack_correct`).

Nothing here imports torch or matplotlib; scipy is imported only for the chi-square quantile.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np
import pandas as pd

from trials.schema import pack_correct as pack_correct  # the stored form of per-example correctness
from trials.schema import unpack_correct as unpack_correct

ALPHA = 0.05
MIN_EFFECT = 0.01
SCALE = 1e12  # grid units per unit of accuracy: differences are rounded to multiples of 10⁻¹², the tie tolerance
EXACT_UP_TO = 20  # non-zero differences counted exactly; sampled sign patterns beyond
LIST_UP_TO = 16  # up to this many seeds the interval lists all 2ⁿ subset means; beyond, bisection
DENSE_UP_TO = 8  # batches of tests list all subset sums up to this many seeds, and meet in the middle beyond
MAX_EXACT_SEEDS = 60  # exact counts over 2ⁿ patterns stay below 2⁶³ (zeros add to n, not to the work)
FLIPS = 20_000
PERMUTATIONS = 2_000
POWER_REPLICATES = 2_000
TARGET_POWER = 0.8
SD_CONFIDENCE = 0.90
MAX_SEEDS_NEEDED = 1_000
SEED = 0
ADJUSTMENTS = ("maxT", "holm", "none")
VERDICTS = ("better", "worse", "equivalent", "inconclusive", "too few seeds")
COLUMNS = [
    "arm",
    "reference",
    "n",
    "n_missing",
    "mean_diff",
    "hodges_lehmann",
    "ci_low",
    "ci_high",
    "ci_level",
    "p_value",
    "p_method",
    "p_adjusted",
    "adjustment",
    "family_size",
    "wins",
    "ties",
    "losses",
    "min_attainable_p",
    "seeds_floor",
    "sd_upper",
    "power_at_min_effect",
    "seeds_needed",
    "equivalence_low",
    "equivalence_high",
    "verdict",
]
MONTE_CARLO = f"monte carlo ({FLIPS:,} draws)"
# Below the power that the Neyman–Pearson bound allows by this margin, no simulation is run (see seeds_needed).
SCREEN_MARGIN = 0.05


class VerdictInputError(ValueError):
    """The table given to `verdict_table` cannot be tested as it is; the message says what to change."""


# ---------------------------------------------------------------- the grid of differences


def _to_units(d: Sequence[float] | np.ndarray) -> tuple[np.ndarray, float]:
    """(d in whole grid units, as float64, and the units per 1), so that sums of d are exact.

    The grid is 10⁻¹² unless the sums could leave the range where float64 holds integers
    exactly (never for accuracies of fewer than ~500 seeds); then it is coarsened by tens.
    Dividing units by the (exact) scale gives back the nearest float to the rounded decimal.
    """
    x = np.asarray(d, dtype=float).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError("the differences must be finite numbers: leave out the seeds with a missing value first")
    scale = SCALE
    while np.abs(x).sum() * scale > 2.0**50:
        scale /= 10
    return np.rint(x * scale), scale


def _scale_for(blocks: Sequence[np.ndarray]) -> float:
    """The scale for seeds × arms blocks of values whose differences are summed over a block's seeds."""
    if not blocks:
        return SCALE
    largest = max(float(np.abs(b[np.isfinite(b)]).max(initial=0.0)) for b in blocks)
    scale = 2 * largest * max(b.shape[0] for b in blocks)
    units = SCALE
    while scale * units > 2.0**50:
        units /= 10
    return units


def _is_exact(n: int, nonzero: int) -> bool:
    return nonzero <= EXACT_UP_TO and n <= MAX_EXACT_SEEDS


# ---------------------------------------------------------------- counting subset means


def _subset_sums(x: np.ndarray) -> np.ndarray:
    """Σ_S x over every subset S of x (2ⁿ values; bit j of the index says whether x[j] is in S)."""
    sums = np.zeros(1)
    for value in x:
        sums = np.concatenate([sums, sums + value])
    return sums


def _subset_sizes(n: int) -> np.ndarray:
    sizes = np.zeros(1, dtype=np.int64)
    for _ in range(n):
        sizes = np.concatenate([sizes, sizes + 1])
    return sizes


def _counts(nonzero: np.ndarray, zeros: int, delta: float) -> tuple[int, int]:
    """(#{S: Σ_S(dᵢ − δ) ≤ 0}, #{S: Σ_S(dᵢ − δ) ≥ 0}) over all 2ⁿ subsets S, the empty one included.

    The empty set is the "1 +" of p_upper and p_lower, so p_upper(δ) = first / 2ⁿ. Meet in the
    middle: a subset's sum is a sum over the first half of the non-zero differences plus one
    over the second half, so sorting the 2^(m/2) left sums and searching them for each right sum
    counts 2ᵐ subsets in O(2^(m/2)·m) time. The z zero differences each add −δ: b of them are in
    C(z, b) subsets, so they enter as weights instead of doubling the work z times.

    Every sum is a fixed sequence of float operations on dᵢ − δ, each monotone in δ, so both
    counts are monotone in δ (which the bisection of the interval relies on); at δ = 0 they are
    sums of whole grid units and exact (which the p-value relies on).
    """
    shifted = nonzero - delta
    half = len(shifted) // 2
    left = np.sort(_subset_sums(shifted[:half]))
    b = np.arange(zeros + 1)
    right = (_subset_sums(shifted[half:])[:, None] + b[None, :] * (-delta)).ravel()
    weights = np.tile(np.array([math.comb(zeros, int(i)) for i in b], dtype=np.int64), len(right) // len(b))
    at_most = np.searchsorted(left, -right, side="right")  # left + right ≤ 0 ⇔ left ≤ −right, exactly
    at_least = len(left) - np.searchsorted(left, -right, side="left")
    return int(at_most @ weights), int(at_least @ weights)


def _two_sided(low_count: int, high_count: int, total: int) -> float:
    """p = min(1, 2·min(p_upper, p_lower)) from the counts (empty set included) over `total` patterns."""
    return min(1.0, 2 * min(low_count, high_count) / total)


@lru_cache(maxsize=64)
def _flips(n: int) -> tuple[np.ndarray, np.ndarray]:
    """FLIPS seeded random sign patterns for n seeds, as (flipped-set indicator, size of the set)."""
    flips = np.random.default_rng([SEED, n]).random((FLIPS, n)) < 0.5
    flips.setflags(write=False)
    sizes = flips.sum(axis=1)
    sizes.setflags(write=False)
    return flips, sizes


def _sampled_sums(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σ over each sampled flipped set S_b of d, and |S_b|; only non-empty sets (the all-plus draw counts never)."""
    flips, sizes = _flips(len(units))
    sums = flips.astype(float) @ units  # whole grid units below 2⁵³: exact in any summation order
    keep = sizes > 0
    return sums[keep], sizes[keep]


# ---------------------------------------------------------------- p-value and interval on grid units


def _p_units(units: np.ndarray) -> tuple[float, str]:
    """(two-sided p at δ = 0, method) for differences in grid units."""
    n = len(units)
    if n == 0:
        return math.nan, "none"
    nonzero = units[units != 0]
    if _is_exact(n, len(nonzero)):
        # Zero differences flip to themselves: every count and 2ⁿ gain the same factor 2^z, so p drops them.
        low, high = _counts(nonzero, 0, 0.0)
        return _two_sided(low, high, 2 ** len(nonzero)), "exact"
    sums, _ = _sampled_sums(units)
    return _two_sided(1 + int(np.sum(sums <= 0)), 1 + int(np.sum(sums >= 0)), FLIPS + 1), MONTE_CARLO


def _interval_units(units: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """(k-th smallest, k-th largest subset mean, attainable level), in grid units; NaNs when k = 0."""
    n = len(units)
    nan = (math.nan, math.nan, math.nan)
    if n == 0:
        return nan
    nonzero = units[units != 0]
    if not _is_exact(n, len(nonzero)):
        return _sampled_interval(units, alpha)
    total = 2**n
    k = math.floor(alpha * total / 2)  # α·2ⁿ is exact in float64: no rounding at the boundary
    if k == 0:
        return nan
    level = 1 - 2 * k / total
    if n <= LIST_UP_TO:
        means = _subset_sums(units)[1:] / _subset_sizes(n)[1:]  # sign of each mean = sign of an exact sum
        low = np.partition(means, k - 1)[k - 1]
        high = np.partition(means, len(means) - k)[len(means) - k]
        return float(low), float(high), level
    zeros = n - len(nonzero)
    lo, hi = float(units.min()) - 1, float(units.max()) + 1  # below and above every subset mean
    low = _first_true(lambda delta: _counts(nonzero, zeros, delta)[0] >= k + 1, lo, hi)
    high = _last_true(lambda delta: _counts(nonzero, zeros, delta)[1] >= k + 1, lo, hi)
    return low, high, level


def _sampled_interval(units: np.ndarray, alpha: float) -> tuple[float, float, float]:
    sums, sizes = _sampled_sums(units)
    k = math.floor(alpha * (FLIPS + 1) / 2)
    if k == 0 or k > len(sums):
        return math.nan, math.nan, math.nan
    means = sums / sizes
    low = np.partition(means, k - 1)[k - 1]
    high = np.partition(means, len(means) - k)[len(means) - k]
    return float(low), float(high), 1 - 2 * k / (FLIPS + 1)


def _float_key(x: float) -> int:
    """An integer that orders like the float x, with consecutive floats at consecutive integers."""
    bits = struct.unpack("<q", struct.pack("<d", x))[0]
    return bits if bits >= 0 else -(bits & 0x7FFF_FFFF_FFFF_FFFF)


def _key_float(key: int) -> float:
    bits = key if key >= 0 else (-key) | (1 << 63)
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _first_true(pred: Callable[[float], bool], lo: float, hi: float) -> float:
    """The smallest float in (lo, hi] where the monotone `pred` holds (it fails at lo, holds at hi).

    Bisection over the floats themselves, not over a tolerance: the result is exactly where the
    counting function changes, so its sign is the sign the test at δ = 0 sees.
    """
    a, b = _float_key(lo), _float_key(hi)
    while b - a > 1:
        mid = (a + b) // 2
        if pred(_key_float(mid)):
            b = mid
        else:
            a = mid
    return _key_float(b)


def _last_true(pred: Callable[[float], bool], lo: float, hi: float) -> float:
    """The largest float in [lo, hi) where the monotone `pred` holds (it holds at lo, fails at hi)."""
    a, b = _float_key(lo), _float_key(hi)
    while b - a > 1:
        mid = (a + b) // 2
        if pred(_key_float(mid)):
            a = mid
        else:
            b = mid
    return _key_float(a)


# ---------------------------------------------------------------- the building blocks


@dataclass(frozen=True)
class SignFlip:
    """The sign-flip test of one set of paired differences d = arm − reference (fractions)."""

    n: int
    mean: float
    hodges_lehmann: float
    p_value: float
    p_method: str
    ci_low: float
    ci_high: float
    ci_level: float
    wins: int
    ties: int
    losses: int
    min_attainable_p: float

    def as_dict(self) -> dict:
        return asdict(self)


def sign_flip(d: Sequence[float] | np.ndarray, alpha: float = ALPHA) -> SignFlip:
    """The sign-flip test of mean(d) = 0 with its inverted interval at nominal level 1 − α.

    `d` are the per-seed differences, missing pairs already left out (a NaN raises ValueError).
    `ci_low`/`ci_high` exclude 0 exactly when `p_value` ≤ α; `ci_level` is the attainable level
    (NaN bounds and level when the seeds are too few for any interval at this α).
    """
    units, scale = _to_units(d)
    return _sign_flip_units(units, scale, alpha)


def _sign_flip_units(units: np.ndarray, scale: float, alpha: float) -> SignFlip:
    n = len(units)
    nonzero = int(np.count_nonzero(units))
    p, method = _p_units(units)
    low, high, level = _interval_units(units, alpha)
    if n == 0:
        floor_p = math.nan
    elif nonzero == 0:
        floor_p = 1.0
    else:
        floor_p = min(1.0, 2 / 2**nonzero) if _is_exact(n, nonzero) else 2 / (FLIPS + 1)
    return SignFlip(
        n=n,
        mean=float(units.mean() / scale) if n else math.nan,
        hodges_lehmann=_hodges_lehmann(units) / scale,
        p_value=p,
        p_method=method,
        ci_low=low / scale,
        ci_high=high / scale,
        ci_level=level,
        wins=int(np.sum(units > 0)),
        ties=n - nonzero,
        losses=int(np.sum(units < 0)),
        min_attainable_p=floor_p,
    )


def _hodges_lehmann(units: np.ndarray) -> float:
    """Median of the Walsh averages (dᵢ + dⱼ)/2, i ≤ j (NaN for no data)."""
    if len(units) == 0:
        return math.nan
    i, j = np.triu_indices(len(units))
    return float(np.median((units[i] + units[j]) / 2))


def interval(d: Sequence[float] | np.ndarray, level_alpha: float = ALPHA) -> tuple[float, float, float]:
    """(low, high, attainable level) of the sign-flip test inverted at nominal level 1 − `level_alpha`.

    The δ that the two-sided test does not reject at `level_alpha`: [M_(k), M_(N−k)] of the sorted
    subset means, N = 2ⁿ, k = ⌊level_alpha·N/2⌋; its level is 1 − 2k/N. NaNs when k = 0.
    """
    units, scale = _to_units(d)
    low, high, level = _interval_units(units, level_alpha)
    return low / scale, high / scale, level


def sd_upper(d: Sequence[float] | np.ndarray) -> float:
    """Conservative sd of the differences: the upper limit of a one-sided 90% interval for σ.

    s·√((n − 1)/χ²₀.₁₀,ₙ₋₁), with χ²₀.₁₀ the lower 10% quantile. Planning with the sample sd s of
    a few seeds is optimistic more often than not (s underestimates σ half the time and is very
    variable at small n); this limit is above σ in 90% of studies. NaN when it cannot be
    estimated: fewer than 2 differences, or all of them equal (s = 0; see `sd_note`).
    The variance is computed exactly from grid units, so shifting every difference by a
    constant leaves it unchanged to the last bit.
    """
    units, scale = _to_units(d)
    n = len(units)
    if n < 2:
        return math.nan
    ints = [int(u) for u in units]
    numerator = n * sum(u * u for u in ints) - sum(ints) ** 2  # n²·(n − 1)/n · s², in whole units
    if numerator == 0:
        return math.nan
    from scipy.special import chdtri  # here: only this needs scipy

    s = math.sqrt(numerator / (n * (n - 1))) / scale
    return s * math.sqrt((n - 1) / float(chdtri(n - 1, SD_CONFIDENCE)))


def sd_note(d: Sequence[float] | np.ndarray) -> str | None:
    """Why `sd_upper(d)` is NaN, in words; None when it is a number."""
    n = len(np.asarray(d, dtype=float).ravel())
    if n < 2:
        return f"the spread cannot be estimated from {n} paired seed{'' if n == 1 else 's'}"
    if math.isnan(sd_upper(d)):
        return f"the spread cannot be estimated: all {n} differences are equal (sd 0)"
    return None


def seeds_floor(alpha: float = ALPHA, family_size: int = 1) -> int:
    """The fewest seeds whose smallest attainable two-sided p, 2/2ⁿ, is ≤ α/family_size.

    6 for one comparison at α = 0.05; 8 for a family of 6.
    """
    level = alpha / max(family_size, 1)
    n = 1
    while 2 / 2**n > level:
        n += 1
    return n


def power(n: int, effect: float, sd: float, alpha: float = ALPHA) -> float:
    """Probability that the two-sided sign-flip test rejects at `alpha` with n seeds, d ~ N(effect, sd²).

    Up to 20 seeds: a seeded simulation of 2,000 studies, each tested exactly (so the steps of the
    attainable p are in it: power is 0 below the floor of seeds). Beyond 20 seeds: the **normal
    approximation** Φ(|effect|·√n/sd − z₁₋α/₂) + Φ(−|effect|·√n/sd − z₁₋α/₂) of a z-test with known
    sd, which the sign-flip test approaches as n grows. The test does not change when all d are
    scaled, so power depends on effect/sd only. NaN when sd is NaN.
    """
    if not (math.isfinite(effect) and math.isfinite(sd)) or sd < 0:
        return math.nan
    if n < 1:
        return 0.0
    if sd == 0:  # every difference equals the effect: p is 2/2ⁿ, or 1 for a zero effect
        return 1.0 if effect != 0 and 2 / 2**n <= alpha else 0.0
    # Above 10⁶ no simulated difference is ever negative, as at any larger ratio; the cap keeps
    # the grid sums in range.
    return _standardised_power(n, min(abs(effect) / sd, 1e6), alpha)


@lru_cache(maxsize=4096)
def _standardised_power(n: int, ratio: float, alpha: float) -> float:
    if n > EXACT_UP_TO:
        z = NormalDist().inv_cdf(1 - alpha / 2)
        shift = ratio * math.sqrt(n)
        return NormalDist().cdf(shift - z) + NormalDist().cdf(-shift - z)
    draws = np.random.default_rng([SEED, n]).standard_normal((POWER_REPLICATES, n))
    x = np.rint((ratio + draws) * 2.0**30).astype(np.int64)  # fine grid: the test is scale-free
    return float(np.mean(_batch_p(x) <= alpha))


def _power_bound(n: int, ratio: float, alpha: float) -> float:
    """An upper bound on the test's power: Φ(ratio·√n − z₁₋α/₂) + α/2.

    The upper-tail half of the test is a level-α/2 test of μ = 0, so by Neyman–Pearson it cannot
    beat the one-sided z-test with known sd; the lower-tail half rejects a positive effect with
    probability at most α/2 (shifting every d up only raises its p).
    """
    return NormalDist().cdf(ratio * math.sqrt(n) - NormalDist().inv_cdf(1 - alpha / 2)) + alpha / 2


def seeds_needed(
    d: Sequence[float] | np.ndarray, min_effect: float = MIN_EFFECT, alpha: float = ALPHA, family_size: int = 1
) -> int | None:
    """The fewest seeds (≥ `seeds_floor`) at which `power` ≥ 0.8 for a true difference of `min_effect`.

    The spread is `sd_upper(d)` and the level the per-test α/family_size, so the data enter only
    through the conservative sd: the observed mean difference plays no part. None when the sd
    cannot be estimated or more than 1,000 seeds would be needed.
    """
    return _seeds_needed(sd_upper(d), min_effect, alpha / max(family_size, 1), seeds_floor(alpha, family_size))


def _seeds_needed(sd: float, min_effect: float, level: float, floor: int) -> int | None:
    if not math.isfinite(sd) or sd <= 0:
        return None
    ratio = min(abs(min_effect) / sd, 1e6)
    for n in range(floor, MAX_SEEDS_NEEDED + 1):
        # Seeds where even the bound is well short of 0.8 cannot be the answer: skip their simulation.
        if _power_bound(n, ratio, level) < TARGET_POWER - SCREEN_MARGIN:
            continue
        if _standardised_power(n, ratio, level) >= TARGET_POWER:
            return n
    return None


# ---------------------------------------------------------------- many tests at once (power, permutations)


def _batch_subset_sums(x: np.ndarray) -> np.ndarray:
    sums = np.zeros((x.shape[0], 1), dtype=np.int64)
    for j in range(x.shape[1]):
        sums = np.concatenate([sums, sums + x[:, j : j + 1]], axis=1)
    return sums


def _batch_counts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of integer differences x (rows × n): the two counts of `_counts` at δ = 0.

    Meet in the middle for all rows in one search: row r's sorted left sums are shifted by
    r·span, with span wider than any row's range of sums, so one flat sorted array holds every
    row in its own band and a query of row r only lands in row r's band. The queries are sorted
    too, which lets the search start each key where the previous one ended.
    """
    rows, n = x.shape
    half = n // 2
    left = np.sort(_batch_subset_sums(x[:, :half]), axis=1)
    right = -np.sort(-_batch_subset_sums(x[:, half:]), axis=1)  # descending, so −right ascends
    width = left.shape[1]
    span = 2 * int(np.abs(x).sum(axis=1).max(initial=0)) + 1
    offsets = np.arange(rows, dtype=np.int64) * span
    flat = (left + offsets[:, None]).ravel()
    queries = (offsets[:, None] - right).ravel()
    start = np.repeat(np.arange(rows, dtype=np.int64) * width, right.shape[1])
    at_most = np.searchsorted(flat, queries, side="right") - start
    at_least = start + width - np.searchsorted(flat, queries, side="left")
    return at_most.reshape(rows, -1).sum(axis=1), at_least.reshape(rows, -1).sum(axis=1)


def _dense_counts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The counts of `_batch_counts` by listing all 2ⁿ subset sums (faster for a few seeds)."""
    n = x.shape[1]
    members = (np.arange(2**n)[None, :] >> np.arange(n)[:, None]) & 1
    sums = x.astype(float) @ members.astype(float)  # whole numbers below 2⁵³: exact
    return np.sum(sums <= 0, axis=1), np.sum(sums >= 0, axis=1)


def _batch_p(x: np.ndarray) -> np.ndarray:
    """Two-sided p at δ = 0 for each row of integer differences (exact up to 20 columns, sampled beyond)."""
    rows, n = x.shape
    out = np.empty(rows)
    if n > EXACT_UP_TO:
        flips, sizes = _flips(n)
        nonempty, members = sizes > 0, flips.T.astype(float)
        chunk = max(1, 2**22 // FLIPS)
        for start in range(0, rows, chunk):
            sums = x[start : start + chunk].astype(float) @ members
            low = 1 + np.sum((sums <= 0) & nonempty, axis=1)
            high = 1 + np.sum((sums >= 0) & nonempty, axis=1)
            out[start : start + chunk] = np.minimum(1.0, 2 * np.minimum(low, high) / (FLIPS + 1))
        return out
    span = 2 * int(np.abs(x).sum(axis=1).max(initial=0)) + 1
    # Rows per search: the banded values stay below 2⁶², and the arrays below a few million entries.
    chunk = max(1, min(2**62 // span - 1, 2**22 // 2 ** (n if n <= DENSE_UP_TO else n - n // 2)))
    count = _dense_counts if n <= DENSE_UP_TO else _batch_counts
    for start in range(0, rows, chunk):
        low, high = count(x[start : start + chunk])
        out[start : start + chunk] = np.minimum(1.0, 2 * np.minimum(low, high) / 2**n)
    return out


# ---------------------------------------------------------------- family-wise adjustment


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p over the finite entries of p (NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(1.0, stepped)
    return out


def maxt(
    blocks: Sequence[np.ndarray],
    pairs: Sequence[tuple[int, int, int]],
    *,
    draws: int = PERMUTATIONS,
    seed: int = SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """(raw p, Westfall–Young min-p adjusted p) of a family of paired comparisons.

    `blocks[g]` is a seeds × arms array of values (NaN: missing) of one group; `pairs` lists the
    comparisons as (group, arm column, reference column). Under the complete null the arms of a
    seed are exchangeable, so each draw shuffles the values of a seed among the arms that have a
    value at that seed (the reference included; a seed missing for some arms is shuffled among
    the others, so the pairs each comparison uses stay the same), independently per seed and
    group. Adjusted p_j = (1 + #{draws: min over the family of p* ≤ p_j}) / (draws + 1), then
    raised to at least the raw p. Comparisons without a paired seed get NaN and are left out of
    the minimum. A family of one is returned unadjusted: its min-p distribution is the test's own.
    """
    blocks = [np.asarray(b, dtype=float) for b in blocks]
    scale = _scale_for(blocks)
    units = [np.rint(b * scale) for b in blocks]
    raw = np.array([_p_units(_paired_units(units[g], a, r))[0] for g, a, r in pairs])
    return raw, _maxt_adjust(units, pairs, raw, draws, seed)


def _paired_units(block: np.ndarray, arm: int, ref: int) -> np.ndarray:
    both = np.isfinite(block[:, arm]) & np.isfinite(block[:, ref])
    return block[both, arm] - block[both, ref]


def _maxt_adjust(
    units: Sequence[np.ndarray], pairs: Sequence[tuple[int, int, int]], raw: np.ndarray, draws: int, seed: int
) -> np.ndarray:
    tested = np.isfinite(raw)
    if tested.sum() <= 1:
        return raw.copy()
    rng = np.random.default_rng(seed)
    shuffled = [_shuffle_within_seeds(block, draws, rng) for block in units]
    by_n: dict[int, list[np.ndarray]] = {}
    for (g, a, r), ok in zip(pairs, tested, strict=True):
        if ok:
            both = np.isfinite(units[g][:, a]) & np.isfinite(units[g][:, r])
            d = shuffled[g][:, both, a] - shuffled[g][:, both, r]
            by_n.setdefault(int(both.sum()), []).append(d.astype(np.int64))
    # All comparisons with the same n are tested in one batch: rows are (comparison, draw).
    min_p = np.ones(draws)
    for n, ds in by_n.items():
        p = _batch_p(np.concatenate(ds).reshape(-1, n)).reshape(len(ds), draws)
        min_p = np.minimum(min_p, p.min(axis=0))
    adjusted = np.full(raw.shape, math.nan)
    adjusted[tested] = (1 + np.sum(min_p[None, :] <= raw[tested][:, None], axis=1)) / (draws + 1)
    # The count is monotone in p_j, so the order of raw p is kept; no adjusted p may undercut its raw p.
    return np.minimum(1.0, np.maximum(adjusted, raw))


def _shuffle_within_seeds(block: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """draws × seeds × arms: each seed's values permuted among the arms that have one (NaN stays)."""
    present = np.isfinite(block)
    out = np.full((draws, *block.shape), math.nan)
    patterns: dict[bytes, list[int]] = {}
    for s in range(block.shape[0]):
        patterns.setdefault(present[s].tobytes(), []).append(s)
    for seeds in patterns.values():  # seeds with the same arms present are shuffled in one go
        cols = np.flatnonzero(present[seeds[0]])
        if len(cols) == 0:
            continue
        rows = np.array(seeds)
        values = block[np.ix_(rows, cols)]
        order = rng.random((draws, len(rows), len(cols))).argsort(axis=2)
        permuted = np.take_along_axis(np.broadcast_to(values, order.shape), order, axis=2)
        out[:, rows[:, None], cols[None, :]] = permuted
    return out


def adjust_pvalues(p: Sequence[float] | np.ndarray, method: str) -> np.ndarray:
    """Holm ("holm") or no ("none") adjustment of p; maxT needs the data, see `maxt`."""
    if method == "holm":
        return holm(p)
    if method == "none":
        return np.asarray(p, dtype=float).copy()
    raise ValueError(f"adjust_pvalues does {['holm', 'none']}, got {method!r}; maxT needs the data: use maxt()")


# ---------------------------------------------------------------- the table


def verdict_table(
    df: pd.DataFrame,
    *,
    reference: str,
    alpha: float = ALPHA,
    min_effect: float = MIN_EFFECT,
    adjust: str = "maxT",
    by: Sequence[str] | str = (),
    value: str = "value",
) -> pd.DataFrame:
    """One row per (by…, non-reference arm): the paired comparison with the reference and its verdict.

    `df` is long: columns `arm`, `seed`, `value` (fractions) and the `by` columns; each distinct
    `by` combination compares every other arm with `reference` on the seeds both have, and all
    rows together are one family for `adjust` ("maxT", "holm" or "none"). Columns: the `by`
    columns, then `COLUMNS`. `attrs["notes"]` explains in words any number that could not be
    computed (no spread, no pairs, too many seeds needed). Raises VerdictInputError on bad input.
    """
    by = [by] if isinstance(by, str) else list(by)
    values = _validated(df, reference=reference, alpha=alpha, min_effect=min_effect, adjust=adjust, by=by, value=value)
    arms = list(dict.fromkeys(df["arm"]))
    blocks, pairs, keys, seen = _blocks(df.assign(**{value: values}), reference, arms, by, value)
    scale = _scale_for(blocks)
    units = [np.rint(b * scale) for b in blocks]
    tests = [_sign_flip_units(_paired_units(units[g], a, r), scale, alpha) for g, a, r in pairs]
    raw = np.array([t.p_value for t in tests])
    family = int(np.isfinite(raw).sum())
    adjusted = _maxt_adjust(units, pairs, raw, PERMUTATIONS, SEED) if adjust == "maxT" else adjust_pvalues(raw, adjust)
    level, floor = alpha / max(family, 1), seeds_floor(alpha, family)
    rows, notes = [], []
    for (key, arm), (g, a, r), test, p_adj in zip(keys, pairs, tests, adjusted, strict=True):
        d = _paired_units(units[g], a, r) / scale
        row, note = _row(test, d, p_adj, alpha=alpha, level=level, floor=floor, min_effect=min_effect)
        where = ", ".join(f"{c}={v}" for c, v in zip(by, key, strict=True))
        if note:
            notes.append(f"{where + ': ' if where else ''}{arm} vs {reference}: {note}")
        labels = {**dict(zip(by, key, strict=True)), "arm": arm, "reference": reference}
        rows.append({**labels, "n_missing": seen[g] - test.n, **row})
    out = pd.DataFrame(rows, columns=[*by, *COLUMNS])
    out["adjustment"], out["family_size"], out["seeds_floor"] = adjust, family, floor
    for column in ("n", "n_missing", "wins", "ties", "losses", "family_size", "seeds_floor"):
        out[column] = out[column].astype(np.int64)
    out["seeds_needed"] = out["seeds_needed"].astype("Int64")
    out.attrs["notes"] = notes
    return out


def _row(
    test: SignFlip, d: np.ndarray, p_adjusted: float, *, alpha: float, level: float, floor: int, min_effect: float
) -> tuple[dict, str | None]:
    """The statistics of one comparison after the test, and a note on what could not be computed."""
    sd = sd_upper(d)
    eq_low, eq_high, _ = interval(d, 2 * level) if test.n else (math.nan, math.nan, math.nan)
    needed = _seeds_needed(sd, min_effect, level, floor)
    if test.n == 0:
        note = "no seed has a value for both, so there is nothing to test"
    elif math.isnan(sd):
        note = f"{sd_note(d)}, so power and seeds needed are unknown"
    elif needed is None:
        note = f"more than {MAX_SEEDS_NEEDED:,} seeds would be needed for power {TARGET_POWER} at {min_effect:g}"
    else:
        note = None
    row = {
        **{k: v for k, v in test.as_dict().items() if k != "mean"},
        "mean_diff": test.mean,
        "p_adjusted": p_adjusted,
        "sd_upper": sd,
        "power_at_min_effect": power(test.n, min_effect, sd, level) if test.n else math.nan,
        "seeds_needed": needed,
        "equivalence_low": eq_low,
        "equivalence_high": eq_high,
        "verdict": _verdict(test, p_adjusted, eq_low, eq_high, alpha=alpha, floor=floor, min_effect=min_effect),
    }
    return row, note


def _verdict(
    test: SignFlip, p_adjusted: float, eq_low: float, eq_high: float, *, alpha: float, floor: int, min_effect: float
) -> str:
    if test.n > 0 and p_adjusted <= alpha:
        return "better" if test.mean > 0 else "worse"
    if -min_effect < eq_low and eq_high < min_effect:  # False for NaN bounds
        return "equivalent"
    if test.n < floor:
        return "too few seeds"
    return "inconclusive"


def _blocks(
    df: pd.DataFrame, reference: str, arms: list, by: list[str], value: str
) -> tuple[list[np.ndarray], list[tuple[int, int, int]], list[tuple[tuple, object]], list[int]]:
    """Per by-group a seeds × arms array (reference first), its comparisons, their keys, and its seed count."""
    groups = df.groupby(by, sort=True, dropna=False) if by else [((), df)]
    blocks, pairs, keys, seen = [], [], [], []
    for key, group in groups:
        present = set(group["arm"])
        columns = [reference] + [a for a in arms if a != reference and a in present]
        table = group.pivot(index="seed", columns="arm", values=value).reindex(columns=columns)
        g = len(blocks)
        blocks.append(table.to_numpy(dtype=float))
        seen.append(len(table.index))
        for col, arm in enumerate(columns[1:], start=1):
            pairs.append((g, col, 0))
            keys.append((key if isinstance(key, tuple) else (key,), arm))
    return blocks, pairs, keys, seen


def _validated(
    df: pd.DataFrame, *, reference: str, alpha: float, min_effect: float, adjust: str, by: list[str], value: str
) -> pd.Series:
    """The value column as floats, after checking everything `verdict_table` relies on."""
    if not _number_in(alpha, 0, 0.5):
        raise VerdictInputError(f"alpha must be a number in (0, 0.5), e.g. 0.05; got {alpha!r}")
    if not _number_in(min_effect, 0, 1):
        raise VerdictInputError(
            f"min_effect must be a fraction in (0, 1): the smallest difference that matters, e.g. 0.01 for one "
            f"point of accuracy; got {min_effect!r}"
        )
    if adjust not in ADJUSTMENTS:
        raise VerdictInputError(f"adjust must be one of {list(ADJUSTMENTS)}; got {adjust!r}")
    if not isinstance(df, pd.DataFrame):
        raise VerdictInputError(f"df must be a pandas DataFrame with columns arm, seed and {value!r}")
    keys = ["arm", "seed", *by]
    if len(set(keys)) < len(keys) or value in keys:
        raise VerdictInputError(f"by={by!r} must name grouping columns other than 'arm', 'seed' and {value!r}")
    absent = [c for c in [*keys, value] if c not in df.columns]
    if absent:
        raise VerdictInputError(
            f"missing columns {absent}: the table needs one row per arm and seed with columns "
            f"{[*keys, value]} (rename yours or pass value=/by=)"
        )
    values = _numeric(df[value], value)
    repeated = df.duplicated(subset=keys, keep=False)
    if repeated.any():
        shared = df.loc[repeated]
        positions = next(iter(shared.groupby(keys, dropna=False, sort=False).indices.values()))
        first = tuple(x.item() if isinstance(x, np.generic) else x for x in shared[keys].iloc[positions[0]])
        raise VerdictInputError(
            f"rows {list(shared.index[positions])} share ({', '.join(keys)}) = {first}: keep one row per arm and seed"
            f"{' and group' if by else ''} (drop repeated runs or average them first)"
        )
    present = list(dict.fromkeys(df["arm"]))
    if reference not in present:
        raise VerdictInputError(f"reference {reference!r} is not among the arms {present}; pass one of them")
    return values


def _number_in(x: object, low: float, high: float) -> bool:
    """x is a real number strictly between low and high (bools and NaN are not)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and low < x < high


def _numeric(column: pd.Series, name: str) -> pd.Series:
    """The column as float64; raise on anything that is not a number (a missing value, NaN, is fine)."""
    if pd.api.types.is_bool_dtype(column):
        raise VerdictInputError(f"column {name!r} holds booleans; it must hold accuracies as fractions (0.43)")
    converted = pd.to_numeric(column, errors="coerce").astype(float)
    bad = (converted.isna() & column.notna()) | np.isinf(converted)
    if bad.any():
        index = bad.idxmax()
        raise VerdictInputError(
            f"column {name!r} must hold finite numbers (accuracies as fractions, NaN for missing); row {index!r} "
            f"has {column.loc[index]!r}: convert or drop such rows first"
        )
    return converted


# ---------------------------------------------------------------- test-set uncertainty


def two_level_interval(
    arm_correct: np.ndarray,
    ref_correct: np.ndarray,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the mean over seeds of (arm accuracy − reference accuracy), by a two-level bootstrap.

    Both arguments are seeds × test examples boolean arrays (row i is seed i for both arms, column
    j the same test example). Each resample draws seeds with replacement and, independently, test
    examples with replacement; the same examples serve every seed and both arms, so the pairing
    by example (a hard example is hard for both) is kept. The interval covers the uncertainty of
    the seeds and of the finite test set together.
    """
    arm, ref = np.asarray(arm_correct), np.asarray(ref_correct)
    if arm.ndim != 2 or arm.shape != ref.shape or arm.size == 0:
        raise ValueError(f"need two non-empty seeds × examples arrays of one shape; got {arm.shape} and {ref.shape}")
    if not (0 < level < 1):
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    diff = arm.astype(float) - ref.astype(float)  # seeds × examples, each −1, 0 or 1
    n_seeds, n_examples = diff.shape
    rng = np.random.default_rng(seed)
    estimates = np.empty(resamples)
    chunk = max(1, 2**22 // n_examples)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        example_counts = _resample_counts(rng, size, n_examples)
        seed_counts = _resample_counts(rng, size, n_seeds)
        per_seed = example_counts @ diff.T / n_examples  # resamples × seeds: accuracy differences
        estimates[start : start + size] = np.sum(seed_counts * per_seed, axis=1) / n_seeds
    low, high = np.quantile(estimates, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _resample_counts(rng: np.random.Generator, resamples: int, n: int) -> np.ndarray:
    """How often each of n items is drawn in each of `resamples` draws of n with replacement."""
    picks = rng.integers(0, n, size=(resamples, n)) + (np.arange(resamples) * n)[:, None]
    return np.bincount(picks.ravel(), minlength=resamples * n).reshape(resamples, n).astype(float)
