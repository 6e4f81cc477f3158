"""Label noise, pruning, AutoAttack and sanity-check sections; the synthetic generator; speed."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from analysis import schema
from analysis.report import write_report
from analysis.synthetic import make_results, write_run_dir

LEVELS = (0.0, 0.2)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("extras")
    run = write_run_dir(
        root / "run",
        lrs=(0.01, 0.05),
        epochs=8,
        label_noise=LEVELS,
        failed=[("awd", 0.05, 0.01, 0)],
        evaluations=True,
        autoattack=True,
    )
    evals = pd.read_parquet(run / "evaluations.parquet")
    evals.loc[0, "autoattack_acc"] = evals.loc[0, "pgd_acc"] + 0.1  # one crafted bad row
    evals.to_parquet(run / "evaluations.parquet")
    return write_report(run, root / "out")


def test_synthetic_frames_conform_to_the_schema():
    results = make_results(epochs=4, evaluations=True, diverged=[("wd", 0.0, 0.2, None)])
    for frame, columns in (
        (results.epochs, schema.EPOCH_COLUMNS),
        (results.trials, schema.TRIAL_COLUMNS),
        (results.evaluations, schema.EVAL_COLUMNS),
    ):
        assert list(frame.columns) == list(columns)
        assert [str(t) for t in frame.dtypes] == [str(pd.Series([], dtype=d).dtype) for d in columns.values()]
    assert len(results.trials) == 2 * 3 * 3 * 2
    diverged = results.trials[results.trials["status"] == "diverged"]
    assert len(diverged) == 2 and (diverged["epochs_done"] == 3).all()


def test_one_figure_set_per_noise_level(report):
    pngs = {p.stem for p in (report.parent / "figures").glob("*.png")}
    for suffix in ("_noise0", "_noise20"):
        for name in ("lr_sensitivity", "lr_heatmaps", "robust_overfitting", "norms", "lambda_trajectory", "pruning"):
            assert f"{name}{suffix}" in pngs
    assert "label_noise_memorisation" in pngs
    text = report.read_text()
    assert "### Label noise 0%" in text and "### Label noise 20%" in text
    assert all(f"](figures/{name}.png)" in text for name in pngs)


def test_label_noise_table_has_each_arm_at_each_rate(report):
    table = pd.read_csv(report.parent / "tables" / "label_noise.csv")
    assert sorted(zip(table["label_noise"], table["method"], strict=True)) == sorted(
        (level, arm) for level in LEVELS for arm in ("awd", "wd")
    )
    noisy = table[table["label_noise"] > 0]
    assert noisy["last_noisy_fit_acc_mean"].between(0, 1).all()
    assert table.loc[table["label_noise"] == 0, "last_noisy_fit_acc_mean"].isna().all()


def test_autoattack_columns_and_pruning_table(report):
    comparison = pd.read_csv(report.parent / "tables" / "comparison_noise0.csv")
    assert comparison["autoattack_best_mean"].notna().all()
    assert "AA best (%)" in (report.parent / "tables" / "comparison_noise0.md").read_text()
    pruning = pd.read_csv(report.parent / "tables" / "pruning.csv")
    assert sorted(pruning["sparsity"].unique()) == [0.0, 0.5, 0.8, 0.9]
    assert (pruning.groupby(["label_noise", "method"]).size() == 4).all()


def test_sanity_section_lists_the_crafted_row(report):
    section = report.read_text().split("## Sanity checks")[1]
    assert "**1 warning(s)**" in section and "autoattack_acc" in section and "checkpoint best" in section


@pytest.mark.slow
def test_report_on_100k_epoch_rows_takes_seconds(tmp_path):
    from bench.report_speed import build

    assert build(tmp_path / "run") == 100_000
    start = time.perf_counter()
    write_report(tmp_path / "run", tmp_path / "out")
    assert time.perf_counter() - start < 30
