"""Tuning-budget curves: what an arm delivers when only n of its configurations can be tried.

A *configuration* is one setting of the arm's hyperparameters at one lr, its seeds averaged
(validation score and final test accuracy alike); only configurations whose every tuning seed
finished with a number take part (a configuration that diverged on every seed is one: a draw that
gives 0). Treating the grid as a uniform sample of configurations, the expected
test accuracy of the validation-best of n drawn without replacement from the arm's N is (Dodge et
al. 2019, "Show Your Work"; Tang et al. 2020)

    E[n] = Σᵢ v₍ᵢ₎ · C(i−1, n−1) / C(N, n)

with configurations sorted by validation score (ascending, i = 1..N) and v₍ᵢ₎ the test accuracy of
the i-th. Configurations tied on validation share their positions' weights equally (a random
tie-break), so the curve does not depend on the order they are listed in. E[1] is the mean test
accuracy of all configurations, E[N] that of the validation-best (the mean over tied ones).

* **Band**: a seed-level paired bootstrap. The level's tuning seeds are drawn with replacement, the
  same draw for every arm (they pair by seed); configuration means, the validation choice and the
  curves are recomputed from the drawn seeds; 95% percentile band. It covers the seed noise of the
  whole procedure, which resampling configurations would not.
* **Practitioner spread**: one practitioner's n draws give one configuration, whose test value
  varies from draw to draw; its 10th and 90th percentiles come from the exact distribution of the
  draw (configuration j is the validation-best of n with probability wₙ(j), the weights above).
* **Difference from the reference**: the arm's E[n] minus the reference's, for n up to both N, with
  its band from the same bootstrap draws.

The compute axis is n × the arm's mean configuration cost (the summed `train_seconds` of its seeds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gammaln

from analysis.select import ARM_KEYS, CONFIG_KEYS, LEVEL

RESAMPLES = 1000
SEED = 0
LEVEL_BAND = 0.95
PRACTITIONER = (0.1, 0.9)  # quantiles of one practitioner's result at budget n
BUDGET_COLUMNS = [*ARM_KEYS, "n", "expected_best", "low", "high", "spread_low", "spread_high"]
BUDGET_COLUMNS += ["diff", "diff_low", "diff_high", "compute_hours", "configurations"]


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


def best_of_n(validation: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """P[n−1, j]: the chance that configuration j is the validation-best of n draws, ties shared equally."""
    validation = np.asarray(validation, float)
    total = len(validation)
    weights = draw_weights(total) if weights is None else weights
    order = np.argsort(validation, kind="stable")
    by_position = weights.copy()
    ranked = validation[order]
    start = 0
    for end in range(1, total + 1):  # runs of equal validation scores share their positions' weights
        if end == total or ranked[end] != ranked[start]:
            if end - start > 1:
                by_position[:, start:end] = by_position[:, start:end].mean(axis=1, keepdims=True)
            start = end
    out = np.empty_like(by_position)
    out[:, order] = by_position
    return out


def expected_best(validation: np.ndarray, test: np.ndarray) -> np.ndarray:
    """E[test value of the validation-best of n draws] for n = 1..N (ties averaged)."""
    return best_of_n(validation) @ np.asarray(test, float)


def practitioner_spread(validation: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per n, the PRACTITIONER quantiles of the test value of the validation-best of n random draws."""
    chance = best_of_n(validation)
    test = np.asarray(test, float)
    order = np.argsort(test, kind="stable")
    cumulative = np.cumsum(chance[:, order], axis=1)
    quantiles = []
    for q in PRACTITIONER:
        # The smallest value whose cumulative chance reaches q (a float sum may fall short by a hair).
        first = np.argmax(cumulative >= q - 1e-12, axis=1)
        quantiles.append(test[order][first])
    return quantiles[0], quantiles[1]


def _seed_matrices(tune: pd.DataFrame, configs: pd.DataFrame, seeds: list) -> dict[tuple, tuple]:
    """Per (level, arm, kind): (configurations × seeds validation scores, test values, mean cost) of the usable
    configurations: every seed finished (one whose every seed diverged is a draw that gives 0), and a number on
    every seed."""
    eligible = configs.loc[~configs["unfinished"], [*CONFIG_KEYS, "train_seconds_sum"]]
    rows = tune.merge(eligible[CONFIG_KEYS], on=CONFIG_KEYS)
    out = {}
    for key, group in rows.groupby(ARM_KEYS, sort=True):
        index = CONFIG_KEYS  # any order: ties are shared, so the listing order does not matter
        val = group.pivot_table(index=index, columns="seed", values="score", aggfunc="first").reindex(columns=seeds)
        test = group.pivot_table(index=index, columns="seed", values="value", aggfunc="first").reindex(val.index)
        test = test.reindex(columns=seeds)
        complete = val.notna().all(axis=1) & test.notna().all(axis=1)
        if complete.any():
            kept = val.index[complete].to_frame(index=False)
            hours = float(kept.merge(eligible, on=index)["train_seconds_sum"].mean()) / 3600
            out[key] = (val[complete].to_numpy(float), test[complete].to_numpy(float), hours)
    return out


def _bootstrap_curves(val: np.ndarray, test: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Resamples × N: the curve recomputed from each draw of seeds (draws: resamples × seeds counts)."""
    seeds = val.shape[1]
    val_means, test_means = draws @ val.T / seeds, draws @ test.T / seeds  # resamples × configurations
    weights = draw_weights(val.shape[0])
    return np.vstack([best_of_n(v, weights) @ t for v, t in zip(val_means, test_means, strict=True)])


def budget_curves(tune: pd.DataFrame, configs: pd.DataFrame, references: dict) -> pd.DataFrame:
    """Per (level, arm): one row per budget n = 1..N of the arm's usable configurations."""
    rows = []
    tail = 100 * (1 - LEVEL_BAND) / 2
    for level in sorted(tune[LEVEL].unique()):
        seeds = sorted(tune.loc[tune[LEVEL] == level, "seed"].unique())
        if not seeds:
            continue
        matrices = _seed_matrices(tune[tune[LEVEL] == level], configs, seeds)
        rng = np.random.default_rng([SEED, len(seeds)])
        draws = rng.multinomial(len(seeds), np.full(len(seeds), 1 / len(seeds)), size=RESAMPLES).astype(float)
        boot = {key: _bootstrap_curves(val, test, draws) for key, (val, test, _) in matrices.items()}
        curves = {key: expected_best(val.mean(axis=1), test.mean(axis=1)) for key, (val, test, _) in matrices.items()}
        ref = next((k for k in matrices if k[1] == references.get(level)), None)
        for key, (val, test, hours) in matrices.items():
            low, high = np.percentile(boot[key], [tail, 100 - tail], axis=0)
            spread_low, spread_high = practitioner_spread(val.mean(axis=1), test.mean(axis=1))
            diff, diff_low, diff_high = _difference(curves, boot, key, ref, tail)
            for n in range(1, len(val) + 1):
                rows.append(
                    dict(zip(ARM_KEYS, key, strict=True))
                    | {"n": n, "expected_best": curves[key][n - 1], "low": low[n - 1], "high": high[n - 1]}
                    | {"spread_low": spread_low[n - 1], "spread_high": spread_high[n - 1]}
                    | {"diff": diff[n - 1], "diff_low": diff_low[n - 1], "diff_high": diff_high[n - 1]}
                    | {"compute_hours": n * hours, "configurations": len(val)}
                )
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS)


def _difference(curves: dict, boot: dict, key: tuple, ref: tuple | None, tail: float) -> tuple[np.ndarray, ...]:
    """(arm − reference curve, its band) for n up to both N; NaN beyond, and for the reference itself."""
    size = len(curves[key])
    out = [np.full(size, np.nan) for _ in range(3)]
    if ref is None or key == ref:
        return tuple(out)
    shared = min(size, len(curves[ref]))
    out[0][:shared] = curves[key][:shared] - curves[ref][:shared]
    differences = boot[key][:, :shared] - boot[ref][:, :shared]
    out[1][:shared], out[2][:shared] = np.percentile(differences, [tail, 100 - tail], axis=0)
    return tuple(out)
