"""Descriptive intervals, the tuning budget against brute force (ties, seed bootstrap), and the Pareto front."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import budget, pareto, stats


def test_t_interval_of_a_mean_is_the_textbook_one():
    x = np.array([0.41, 0.43, 0.40, 0.46, np.nan])  # a missing seed is left out
    low, high = stats.t_interval(x)
    finite = x[np.isfinite(x)]
    expected = sps.t.interval(0.95, len(finite) - 1, loc=finite.mean(), scale=sps.sem(finite))
    assert (low, high) == pytest.approx(expected)
    assert stats.t_half_width(finite) == pytest.approx((high - low) / 2)
    assert all(math.isnan(v) for v in stats.t_interval(np.array([0.4])))


def brute_expected_best(val: np.ndarray, test: np.ndarray, n: int) -> float:
    """Mean over all n-subsets of the test value of the validation-best, ties shared equally among the tied."""
    picks = []
    for subset in itertools.combinations(range(len(val)), n):
        top = max(val[i] for i in subset)
        picks.append(np.mean([test[i] for i in subset if val[i] == top]))
    return float(np.mean(picks))


def test_tuning_budget_equals_brute_force_over_all_subsets():
    rng = np.random.default_rng(3)
    val, test = rng.integers(0, 4, 7) / 4, rng.random(7)  # a few validation values: ties are frequent
    curve = budget.expected_best(val, test)
    assert curve == pytest.approx([brute_expected_best(val, test, n) for n in range(1, 8)])
    assert curve[0] == pytest.approx(test.mean())  # n = 1: a configuration at random
    assert curve[-1] == pytest.approx(test[val == val.max()].mean())  # n = N: the validation-best (ties averaged)


def test_budget_ties_do_not_depend_on_the_order_the_configurations_are_listed_in():
    """Two configurations tied on validation: listing them the other way round gives the same curve."""
    val, test = np.array([0.50, 0.50, 0.40, 0.45]), np.array([0.40, 0.48, 0.30, 0.44])
    swapped = [1, 0, 2, 3]
    assert budget.expected_best(val, test) == pytest.approx([0.405, 0.44, 0.44, 0.44])
    assert budget.expected_best(val[swapped], test[swapped]) == pytest.approx(budget.expected_best(val, test))
    rng = np.random.default_rng(0)
    val, test = rng.integers(0, 3, 9) / 3, rng.random(9)
    reference = budget.expected_best(val, test), budget.practitioner_spread(val, test)
    for _ in range(20):
        order = rng.permutation(9)
        assert budget.expected_best(val[order], test[order]) == pytest.approx(reference[0], abs=1e-12)
        assert np.allclose(budget.practitioner_spread(val[order], test[order]), reference[1])


def _budget_frames(order: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Arm "a": four configurations × three seeds, the first two tied on validation on every seed; arm "b":
    two configurations. `order` gives the configurations of "a" their setting ranks (the study's listing)."""
    a_val = [[0.5, 0.6, 0.4], [0.5, 0.6, 0.4], [0.3, 0.2, 0.4], [0.45, 0.5, 0.4]]
    a_test = [[0.40, 0.41, 0.42], [0.48, 0.47, 0.49], [0.30, 0.31, 0.29], [0.44, 0.43, 0.45]]
    rows, configs = [], []
    for method, vals, tests in (("a", a_val, a_test), ("b", [[0.5, 0.5, 0.5], [0.4, 0.3, 0.5]],
                                                       [[0.45, 0.44, 0.46], [0.2, 0.2, 0.2]])):
        for c, (v, t) in enumerate(zip(vals, tests, strict=True)):
            rank = order[c] if method == "a" else c  # the listing order: ranks and labels (tables sort by them)
            key = {"label_noise": 0.0, "method": method, "kind": "fixed", "setting": f"s{rank}", "lr": 0.1}
            rows += [key | {"seed": s, "score": v[s], "value": t[s]} for s in range(3)]
            configs.append(key | {"setting_rank": rank, "eligible": True, "unfinished": False,
                                  "train_seconds_sum": 3600.0})
    return pd.DataFrame(rows), pd.DataFrame(configs)


def test_budget_curves_are_invariant_to_tied_configuration_order():
    """The whole budget table (curve, seed-bootstrap band, practitioner spread, difference) is order-free."""
    curves = [budget.budget_curves(*_budget_frames(order), {0.0: "b"}) for order in ([0, 1, 2, 3], [1, 0, 3, 2])]
    columns = ["expected_best", "low", "high", "spread_low", "spread_high", "diff", "diff_low", "diff_high"]
    pd.testing.assert_frame_equal(curves[0][columns], curves[1][columns], rtol=0, atol=1e-12)


def test_budget_curves_per_arm_with_band_spread_difference_and_compute():
    curves = budget.budget_curves(*_budget_frames([0, 1, 2, 3]), {0.0: "b"}).set_index(["method", "n"])
    means = np.array([0.41, 0.48, 0.30, 0.44])
    assert curves.loc[("a", 1), "expected_best"] == pytest.approx(means.mean())
    assert curves.loc[("a", 4), "expected_best"] == pytest.approx((0.41 + 0.48) / 2)  # the tied pair, averaged
    assert curves.loc[("a", 1), ["spread_low", "spread_high"]].tolist() == pytest.approx([0.30, 0.48])
    assert curves.loc[("a", 2), "diff"] == pytest.approx(curves.loc[("a", 2), "expected_best"] - 0.45)
    assert np.isnan(curves.loc[("a", 3), "diff"]) and curves.loc[("b", 1), "diff"] != curves.loc[("b", 1), "diff"]
    assert curves.loc[("a", 2), "compute_hours"] == pytest.approx(2.0)
    assert (curves["low"] <= curves["expected_best"] + 1e-12).all()
    assert (curves["expected_best"] <= curves["high"] + 1e-12).all() and len(curves) == 6


def test_pareto_front_keeps_exactly_the_undominated_points():
    clean = np.array([0.8, 0.7, 0.75, 0.6, 0.8])
    robust = np.array([0.4, 0.5, 0.4, 0.5, 0.3])
    assert pareto.front_mask(clean, robust).tolist() == [True, True, False, False, False]
