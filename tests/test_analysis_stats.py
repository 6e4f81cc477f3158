"""Sensitivity, comparison and paired-test numbers on the hand-built run, and sanity checks."""

from __future__ import annotations

import math

import analysis_fixtures as fx
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import checks, compare, overfitting, select, sensitivity
from analysis.load import load_run
from analysis.pipeline import analyse


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    return analyse(load_run(fx.write_run(tmp_path_factory.mktemp("run"))))


def _by_arm(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("method")


def test_comparison_means_std_gap_and_relative_improvement(analysis):
    table = _by_arm(analysis.comparison)
    for arm, (mean, std) in fx.PGD_BEST.items():
        assert table.loc[arm, "best_test_robust_acc_mean"] == pytest.approx(mean)
        assert table.loc[arm, "best_test_robust_acc_std"] == pytest.approx(std)
        assert table.loc[arm, "gap_robust_mean"] == pytest.approx(fx.GAP[arm])
        assert table.loc[arm, "weight_norm_last_mean"] == pytest.approx(fx.WEIGHT_NORM[arm] + 0.5)
    assert table.loc["awd", "rel_improvement"] == pytest.approx(fx.REL_IMPROVEMENT)
    assert math.isnan(table.loc["wd", "rel_improvement"]) and table.loc["wd", "is_reference"]


def test_sensitivity_spread_and_area_exact(analysis):
    table = _by_arm(analysis.sensitivity)
    for arm in ("wd", "awd"):
        assert table.loc[arm, "spread_best"] == pytest.approx(fx.SPREAD_BEST[arm])
        assert table.loc[arm, "area_best"] == pytest.approx(fx.AREA_BEST[arm])
        assert table.loc[arm, "spread_envelope"] == pytest.approx(fx.SPREAD_ENVELOPE[arm])
        assert table.loc[arm, "area_envelope"] == pytest.approx(fx.AREA_ENVELOPE[arm])
        assert table.loc[arm, "n_lr"] == 3


def test_diverged_points_are_zero_and_marked(analysis):
    curves = analysis.curves.set_index(["method", "hp", "lr"])
    assert curves.loc[("wd", 1e-4, 1.0), "sens_robust"] == 0.0
    assert curves.loc[("wd", 1e-4, 1.0), "diverged"]
    assert not curves.loc[("wd", 1e-4, 1.0), "missing"]
    envelope = analysis.envelope.set_index(["method", "lr"])
    assert envelope.loc[("wd", 1.0), "diverged"] and envelope.loc[("wd", 1.0), "hp"] == 1e-3


def test_spread_and_area_edge_cases():
    assert sensitivity.spread_and_area(np.array([0.1]), np.array([0.4])) == (0.0, 0.4)
    spread, area = sensitivity.spread_and_area(np.array([0.01, 1.0, 0.1]), np.array([0.2, 0.6, np.nan]))
    assert (spread, area) == pytest.approx((0.4, 0.4))  # NaN point omitted, unsorted lrs sorted
    lrs, acc = np.array([0.01, 0.1, 1.0, 10.0]), np.array([0.1, 0.3, 0.3, 0.1])
    assert sensitivity.spread_and_area(lrs, acc)[1] == pytest.approx((0.2 + 0.3 + 0.2) / 3)


def test_paired_differences_and_summary(analysis):
    pairs = analysis.pairs
    assert sorted(pairs["diff"]) == pytest.approx(sorted(fx.PAIRED_DIFFS))
    assert set(zip(pairs["lr"], pairs["seed"], strict=True)) == {(lr, s) for lr in (0.01, 0.1, 1.0) for s in (0, 1)}
    row = analysis.paired.iloc[0]
    d = np.array(fx.PAIRED_DIFFS)
    assert (row["method"], row["reference"], row["n_pairs"]) == ("awd", "wd", 6)
    assert row["mean_diff"] == pytest.approx(d.mean())
    assert (row["wins"], row["ties"], row["losses"]) == fx.WINS_TIES_LOSSES
    assert d.min() <= row["ci_low"] < row["mean_diff"] < row["ci_high"] <= d.max()
    assert row["p_value"] == pytest.approx(stats.wilcoxon(np.where(np.abs(d) < 1e-12, 0, d)).pvalue)


def test_bootstrap_is_reproducible_and_degenerate_cases_are_defined():
    d = np.array([0.01, 0.03, -0.02, 0.05])
    assert compare.bootstrap_ci(d) == compare.bootstrap_ci(d)
    assert all(math.isnan(v) for v in compare.bootstrap_ci(np.array([0.1])))
    assert math.isnan(compare.wilcoxon_p(np.array([0.1])))
    assert compare.wilcoxon_p(np.zeros(4)) == 1.0
    low, high = compare.bootstrap_ci(np.full(5, 0.02))
    assert low == pytest.approx(0.02) and high == pytest.approx(0.02)


def test_overfitting_table_best_epoch_and_gap(analysis):
    table = overfitting.overfitting_table(analysis.settings)
    ok = table[table["n_ok"] == 2]
    assert (ok["best_epoch_mean"] == 2).all()
    gaps = ok.groupby("method")["gap_robust_mean"].agg(["min", "max"])
    for arm, gap in fx.GAP.items():
        assert gaps.loc[arm].tolist() == pytest.approx([gap, gap])


def test_schedule_drops_only_at_steps_not_at_cosine_tails():
    piecewise = [0.1] * 5 + [0.01] * 3 + [0.001] * 2
    cosine = list(0.1 * 0.5 * (1 + np.cos(np.pi * np.arange(1, 11) / 10)))
    rows = []
    for trial, lrs in (("p", piecewise), ("c", cosine)):
        rows += [{"trial_id": trial, "epoch": e + 1, "lr_now": lr} for e, lr in enumerate(lrs)]
    epochs = pd.DataFrame(rows)
    outcomes = pd.DataFrame(
        {"trial_id": ["p", "c"], "status": "ok", "label_noise": 0.0, "method": ["a", "b"], "kind": "fixed"}
    ).assign(hp=0.0, lr=0.1)
    drops = overfitting.schedule_drops(epochs, outcomes, outcomes)
    assert drops[["method", "epoch"]].values.tolist() == [["a", 6], ["a", 9]]


def test_sanity_warnings_flag_exactly_the_bad_rows():
    evals = fx.bad_evaluations()
    messages = checks.sanity_warnings(evals)
    assert len(messages) == 5
    expected = [
        ("last", "sparsity 0:", "autoattack_acc 0.5500 > pgd_acc 0.5000"),
        ("best", "sparsity 0.5:", "pgd_acc 0.5000 > fgsm_acc 0.4000"),
        ("best", "sparsity 0.8:", "fgsm_acc 0.6000 > clean_acc 0.5000"),
        ("last", "sparsity 0.8:", "pgd_acc 0.4500 > fgsm_acc 0.3000"),
        ("last", "sparsity 0.8:", "pgd_acc 0.4500 > clean_acc 0.4000"),
    ]
    for message, (checkpoint, sparsity, numbers) in zip(messages, expected, strict=True):
        assert fx.trial_id("awd", 0.02, 0.01, 0) in message
        assert f"checkpoint {checkpoint}" in message and sparsity in message and numbers in message
        assert "masking" in message or "broken" in message
    assert checks.sanity_warnings(evals.iloc[[0, 4]]) == []


def test_setting_table_counts_statuses(analysis):
    counts = analysis.settings.groupby("method")[["n_ok", "n_diverged", "n_failed", "n_running"]].sum()
    assert counts.loc["wd"].tolist() == [9, 3, 0, 0]
    assert counts.loc["awd"].tolist() == [12, 0, 0, 0]
    assert select.arm_order(analysis.outcomes) == ["wd", "awd"]
