"""The numbers of `decaylab compare`: probability of improvement, mean and IQM of the paired difference, and
their stratified bootstrap, for one arm against the reference over several strata.

A **cell** is one arm and the reference in one stratum (a run directory × label-noise level): the values of
the seeds either side has, on the union of their seeds (NaN where a side has none). All accuracies are put on
a grid of 10⁻¹² before they are compared or subtracted (as `analysis.verdicts` does), so 0.43 − 0.42 and
0.53 − 0.52 are the same difference and equal accuracies are ties.

* **P(improvement)** of a stratum: the share of (arm seed, reference seed) pairs where the arm's value is the
  higher, ties counting ½: the Mann–Whitney U / (n·m) of rliable (Agarwal et al. 2021), over every seed of
  each side; the aggregate is its mean over the strata (each stratum weighs the same).
* **Paired difference**: arm − reference on the seeds both have. The aggregate **mean** is the mean over strata
  of each stratum's mean difference; the **IQM** is the mean of the middle 50% of all paired differences
  pooled over the strata, each stratum's pairs sharing a weight of 1 (with equal seeds per stratum this is
  rliable's IQM, the 25%-trimmed mean; a pair that straddles a quartile counts with the part of its weight
  inside, so the IQM of n values is defined for any n, not only multiples of 4).
* **The bootstrap** (percentile intervals): each replicate draws, within every stratum, n − 1 of the cell's
  n seeds with replacement, a drawn seed bringing both its arm and its reference value (the pairing is kept);
  `resample_strata` also draws K − 1 of the K strata with replacement (a stratum drawn t times weighs t, with
  its one draw of seeds). Drawing n − 1 rather than n is the small-sample correction of the bootstrap: the
  variance of a mean of n − 1 draws from n values is s²/n with the unbiased s², where n draws give the
  plug-in (n − 1)/n · s²/n, and with the 3 to 10 seeds of a study that shortfall makes percentile intervals
  too narrow (in 400 simulated comparisons of 4 strata × 5 seeds without any effect, n draws put the 95%
  interval of P above 0.5 in 3.5% of them instead of 2.5%, n − 1 draws in 2.5%). A single seed (or stratum)
  is drawn once. `two_level` also draws the test examples with replacement, once per stratum and replicate,
  shared by every seed and both sides (a hard image is hard for both, as in
  `analysis.verdicts.two_level_interval`); a seed's value is then its accuracy on the drawn examples.

Nothing here reads files; `analysis.across` builds the cells from run directories.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GRID = 1e12  # grid units per unit of accuracy, as analysis.verdicts.SCALE
RESAMPLES = 2000
SEED = 0
CHUNK = 256  # replicates per batch where every replicate has its own values (two-level)


@dataclass(frozen=True)
class Cell:
    """One arm against the reference in one stratum, on the union of the seeds either side has."""

    stratum: int  # position of the stratum in the comparison
    seeds: np.ndarray  # the seeds, sorted
    arm: np.ndarray  # per seed, the arm's value (fraction); NaN where it has none
    ref: np.ndarray  # per seed, the reference's value; NaN where it has none
    arm_correct: np.ndarray | None = None  # seeds × examples booleans (two-level); rows without a value unused
    ref_correct: np.ndarray | None = None

    @property
    def n_pairs(self) -> int:
        return int(np.sum(np.isfinite(self.arm) & np.isfinite(self.ref)))


@dataclass(frozen=True)
class Replicates:
    """Per replicate (rows; row 0 of `point` is the data as they are) the statistics of one arm."""

    p: np.ndarray  # aggregate P(improvement)
    mean: np.ndarray  # aggregate mean difference (fraction)
    iqm: np.ndarray  # aggregate IQM of the paired differences
    p_strata: np.ndarray  # replicates × strata: each cell's P(improvement)
    mean_strata: np.ndarray  # replicates × strata: each cell's mean difference


def units(x: np.ndarray) -> np.ndarray:
    """Accuracies in whole grid units (NaN stays NaN)."""
    return np.rint(np.asarray(x, dtype=float) * GRID)


def draws(n: int) -> int:
    """How many of n seeds (or strata) one replicate draws: n − 1, and 1 of 1."""
    return max(n - 1, 1)


def seed_counts(rng: np.random.Generator, replicates: int, n: int, size: int | None = None) -> np.ndarray:
    """How often each of n items is drawn in each of `replicates` draws of `size` (default n) with replacement."""
    size = n if size is None else size
    picks = rng.integers(0, n, size=(replicates, size)) + (np.arange(replicates) * n)[:, None]
    return np.bincount(picks.ravel(), minlength=replicates * n).reshape(replicates, n).astype(float)


def _cell_batch(counts: np.ndarray, arm: np.ndarray, ref: np.ndarray, has_arm: np.ndarray, has_ref: np.ndarray):
    """(P, mean difference, pair weights, differences) of one cell for a batch of replicates.

    `counts` is replicates × seeds; `arm`, `ref` are in grid units, 1 × seeds (the same values in every
    replicate) or replicates × seeds, with 0 where a side has no value (masked by `has_arm`, `has_ref`).
    The pair weights are each paired seed's share of the cell's drawn pairs (rows sum to 1, or 0 when no
    pair was drawn); the differences are in grid units (0 where unpaired).
    """
    ca, cr = counts * has_arm, counts * has_ref
    if arm.shape[0] == 1 and ref.shape[0] == 1:
        wins = (arm[0][:, None] > ref[0][None, :]) + 0.5 * (arm[0][:, None] == ref[0][None, :])
        total = np.sum((ca @ wins) * cr, axis=1)
    else:
        arm_b, ref_b = np.broadcast_to(arm, counts.shape), np.broadcast_to(ref, counts.shape)
        wins = (arm_b[:, :, None] > ref_b[:, None, :]) + 0.5 * (arm_b[:, :, None] == ref_b[:, None, :])
        total = np.einsum("ru,ruv,rv->r", ca, wins, cr)
    paired = counts * (has_arm & has_ref)
    n = paired.sum(axis=1)
    diff = np.where(has_arm & has_ref, arm - ref, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = total / (ca.sum(axis=1) * cr.sum(axis=1))
        mean = np.sum(paired * diff, axis=1) / n
        weights = np.where(n[:, None] > 0, paired / n[:, None], 0.0)
    return p, mean, weights, np.broadcast_to(diff, counts.shape)


def weighted_iqm(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row, the mean of the middle half of the weight (rows of values with their non-negative weights).

    The values are sorted, the weight between the 25% and the 75% point of the row's total weight is kept
    (a value straddling a quartile with the part of its weight inside), and its weighted mean returned.
    With equal weights and a multiple of 4 values it is the 25%-trimmed mean. NaN for a row of no weight.
    """
    order = np.argsort(values, axis=1, kind="stable")
    v = np.take_along_axis(values, order, axis=1)
    w = np.take_along_axis(weights, order, axis=1)
    total = w.sum(axis=1, keepdims=True)
    upper = np.cumsum(w, axis=1)
    lower = upper - w
    inside = np.clip(np.minimum(upper, 0.75 * total) - np.maximum(lower, 0.25 * total), 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(inside * v, axis=1) / (0.5 * total[:, 0])


def _strata_weights(rng: np.random.Generator | None, replicates: int, k: int, resample: bool) -> np.ndarray:
    if rng is None or not resample:
        return np.ones((replicates, k))
    return seed_counts(rng, replicates, k, draws(k))


def replicates(
    cells: Sequence[Cell],
    *,
    resamples: int = RESAMPLES,
    seed: Sequence[int] | int = SEED,
    resample_strata: bool = False,
    two_level: bool = False,
) -> tuple[Replicates, Replicates]:
    """(the statistics of the data, their bootstrap replicates) of one arm over its cells.

    The first has one row; the second `resamples` rows, drawn from `np.random.default_rng(seed)`. With
    `two_level` every cell needs `arm_correct` and `ref_correct` with the same number of examples.
    """
    point = _statistics(cells, 1, None, False, False)
    rng = np.random.default_rng(seed)
    return point, _statistics(cells, resamples, rng, resample_strata, two_level)


def _statistics(
    cells: Sequence[Cell], replicates: int, rng: np.random.Generator | None, resample_strata: bool, two_level: bool
) -> Replicates:
    k = len(cells)
    strata = _strata_weights(rng, replicates, k, resample_strata)
    p = np.full((replicates, k), math.nan)
    mean = np.full((replicates, k), math.nan)
    pooled_w, pooled_d = [], []
    for j, cell in enumerate(cells):
        has_arm, has_ref = np.isfinite(cell.arm), np.isfinite(cell.ref)
        n = len(cell.seeds)
        counts = np.ones((replicates, n)) if rng is None else seed_counts(rng, replicates, n, draws(n))
        if two_level and rng is not None:
            arm, ref = _resampled_values(cell, rng, replicates)
        else:
            arm = np.nan_to_num(units(cell.arm))[None, :]
            ref = np.nan_to_num(units(cell.ref))[None, :]
        p[:, j], mean[:, j], weights, diff = _cell_batch(counts, arm, ref, has_arm, has_ref)
        pooled_w.append(weights * strata[:, j : j + 1])
        pooled_d.append(diff)
    return Replicates(
        p=_weighted_mean(p, strata),
        mean=_weighted_mean(mean, strata) / GRID,
        iqm=weighted_iqm(np.hstack(pooled_d), np.hstack(pooled_w)) / GRID if k else np.full(replicates, math.nan),
        p_strata=p,
        mean_strata=mean / GRID,
    )


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row, Σ w·x / Σ w over the finite x (NaN for a row with none)."""
    ok = np.isfinite(values)
    w = np.where(ok, weights, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(w * np.where(ok, values, 0.0), axis=1) / w.sum(axis=1)


def _resampled_values(cell: Cell, rng: np.random.Generator, replicates: int) -> tuple[np.ndarray, np.ndarray]:
    """Replicates × seeds accuracies (grid units) of both sides on test examples drawn with replacement."""
    if cell.arm_correct is None or cell.ref_correct is None:
        raise ValueError("two-level resampling needs the per-example correctness of every seed of both sides")
    arm_c, ref_c = np.asarray(cell.arm_correct, float), np.asarray(cell.ref_correct, float)
    examples = arm_c.shape[1]
    arm = np.empty((replicates, len(cell.seeds)))
    ref = np.empty_like(arm)
    for start in range(0, replicates, CHUNK):
        size = min(CHUNK, replicates - start)
        drawn = seed_counts(rng, size, examples)
        arm[start : start + size] = units(drawn @ arm_c.T / examples)
        ref[start : start + size] = units(drawn @ ref_c.T / examples)
    return arm, ref


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The (1 − level)/2 and (1 + level)/2 quantiles of the finite `values` (NaNs when there are none)."""
    finite = np.asarray(values, float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return math.nan, math.nan
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


# ---------------------------------------------------------------- performance profiles


def profile_replicates(
    values: Sequence[np.ndarray],
    taus: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    seed: Sequence[int] | int = SEED,
    resample_strata: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(the profile, its replicates): the mean over strata of the share of seeds whose value exceeds τ.

    `values` holds one array of an arm's per-seed values per stratum (NaN: no value, left out); the profile
    has one entry per τ, the replicates are resamples × τ, seeds drawn within each stratum (and the strata
    too with `resample_strata`).
    """
    rng = np.random.default_rng(seed)
    k = len(values)
    strata = _strata_weights(rng, resamples, k, resample_strata)
    point = np.full((1, k, len(taus)), math.nan)
    reps = np.full((resamples, k, len(taus)), math.nan)
    for j, v in enumerate(values):
        v = np.asarray(v, float)
        v = units(v[np.isfinite(v)])
        if not len(v):
            continue
        above = (v[:, None] > units(taus)[None, :]).astype(float)  # seeds × τ
        point[0, j] = above.mean(axis=0)
        counts = seed_counts(rng, resamples, len(v), draws(len(v)))
        reps[:, j] = counts @ above / draws(len(v))
    return _profile_mean(point, np.ones((1, k)))[0], _profile_mean(reps, strata)


def _profile_mean(fractions: np.ndarray, strata: np.ndarray) -> np.ndarray:
    ok = np.isfinite(fractions[:, :, 0])
    w = np.where(ok, strata, 0.0)[:, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(w * np.nan_to_num(fractions), axis=1) / w.sum(axis=1)
