"""The statistics against brute force: sign-flip p, intervals, seeds needed, tuning budget, Pareto front."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import budget, pareto, stats


def brute_sign_flip(d: np.ndarray) -> float:
    observed = abs(d.sum())
    sums = [abs(np.dot(signs, d)) for signs in itertools.product((-1, 1), repeat=len(d))]
    return float(np.mean([s >= observed - 1e-12 for s in sums]))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 11])
def test_sign_flip_p_is_the_exact_enumeration(n):
    rng = np.random.default_rng(n)
    d = np.round(rng.normal(0.01, 0.02, n), 3)  # rounding makes ties between |d| likely
    d[0] = 0.0 if n > 4 else d[0]  # and a zero difference
    assert stats.sign_flip_p(d) == pytest.approx(brute_sign_flip(d))


def test_smallest_attainable_p_and_the_floor_of_seeds():
    assert stats.min_attainable_p(3) == 0.25 and stats.min_attainable_p(6) == 2 / 64
    assert stats.seeds_floor() == 6  # 2/2^5 = 0.0625 > 0.05 ≥ 2/2^6
    assert stats.sign_flip_p(np.full(6, 0.01)) == pytest.approx(2 / 64)
    assert stats.sign_flip_p(np.zeros(4)) == 1.0


def test_sampled_sign_flip_beyond_the_exact_range_is_close(monkeypatch):
    d = np.random.default_rng(0).normal(0.004, 0.01, 22)
    sampled = stats.sign_flip_p(d)
    monkeypatch.setattr(stats, "EXACT_UP_TO", 22)
    assert sampled == pytest.approx(stats.sign_flip_p(d), abs=0.005)


def test_t_interval_below_ten_seeds_and_a_seeded_bootstrap_from_there():
    x = np.array([0.41, 0.43, 0.40, 0.46])
    low, high, method = stats.mean_ci(x)
    expected = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert method == "t" and (low, high) == pytest.approx(expected)
    many = np.random.default_rng(1).normal(0.4, 0.02, 12)
    first, second = stats.mean_ci(many), stats.mean_ci(many)
    assert first == second and first[2] == "bootstrap" and first[0] < many.mean() < first[1]
    assert all(math.isnan(v) for v in stats.mean_ci(np.array([0.4]))[:2])


def test_seeds_needed_reaches_power_and_never_undercuts_the_floor():
    for mean, sd in [(0.01, 0.02), (0.005, 0.001), (0.002, 0.01)]:
        n = stats.seeds_needed(mean, sd)
        assert n >= stats.seeds_floor()
        assert stats.t_power(mean / sd, n) >= 0.8
        if n > stats.seeds_floor():
            assert stats.t_power(mean / sd, n - 1) < 0.8
    assert stats.seeds_needed(0.0, 0.01) is None and stats.seeds_needed(0.01, math.nan) is None
    assert stats.seeds_needed(0.01, 0.0) == stats.seeds_floor()


def test_detectable_effect_has_power_08_and_needs_the_floor():
    sd = 0.02
    effect = stats.detectable_effect(sd, 10)
    assert stats.t_power(effect / sd, 10) == pytest.approx(0.8, abs=1e-4)
    assert math.isnan(stats.detectable_effect(sd, 5))


def test_paired_counts_and_fields():
    result = stats.paired(np.array([0.02, -0.01, 0.0, 0.03]))
    assert (result.n, result.wins, result.ties, result.losses) == (4, 2, 1, 1)
    assert result.min_attainable_p == 2 / 2**3  # three non-zero differences
    assert result.min_attainable_p > stats.ALPHA  # three seeds can never reach p ≤ 0.05
    assert stats.paired(np.array([])).n == 0


def brute_expected_best(val: np.ndarray, test: np.ndarray, n: int) -> float:
    picks = [test[max(subset, key=lambda i: val[i])] for subset in itertools.combinations(range(len(val)), n)]
    return float(np.mean(picks))


def test_tuning_budget_equals_brute_force_over_all_subsets():
    rng = np.random.default_rng(3)
    val, test = rng.random(7), rng.random(7)
    curve = budget.expected_best(val, test)
    assert curve == pytest.approx([brute_expected_best(val, test, n) for n in range(1, 8)])
    assert curve[0] == pytest.approx(test.mean())  # n = 1: a configuration at random
    assert curve[-1] == pytest.approx(test[np.argmax(val)])  # n = N: the validation-best one


def test_budget_curves_per_arm_with_band_and_compute():
    configs = pd.DataFrame(
        {
            "label_noise": 0.0,
            "method": ["a"] * 4 + ["b"] * 2,
            "kind": ["fixed"] * 4 + ["adaptive"] * 2,
            "setting_rank": [0, 0, 1, 1, 0, 0],
            "lr": [0.1, 0.2, 0.1, 0.2, 0.1, 0.2],
            "score": [0.1, 0.4, 0.3, 0.2, 0.5, 0.6],
            "value_mean": [0.2, 0.5, 0.1, 0.3, 0.4, 0.45],
            "train_seconds_sum": [3600.0, 3600.0, 7200.0, 7200.0, 1800.0, 1800.0],
        }
    )
    curves = budget.budget_curves(configs).set_index(["method", "n"])
    assert curves.loc[("a", 1), "expected_best"] == pytest.approx(np.mean([0.2, 0.5, 0.1, 0.3]))
    assert curves.loc[("a", 4), "expected_best"] == pytest.approx(0.5)
    assert curves.loc[("a", 2), "compute_hours"] == pytest.approx(2 * 1.5)
    assert (curves["low"] <= curves["high"]).all() and len(curves) == 6


def test_pareto_front_keeps_exactly_the_undominated_points():
    clean = np.array([0.8, 0.7, 0.75, 0.6, 0.8])
    robust = np.array([0.4, 0.5, 0.4, 0.5, 0.3])
    assert pareto.front_mask(clean, robust).tolist() == [True, True, False, False, False]
