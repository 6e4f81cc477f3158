"""Every arm kind at once, label noise, pruning, AutoAttack, importance, sanity checks, the generator, speed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import analysis as fx

from analysis import importance, plotting, sanity
from analysis.load import load_run
from analysis.pipeline import analyse
from analysis.report import write_report
from bench.synthetic import DEFAULT_ARMS, MANY_KINDS, make_results, write_run_dir
from trials import arms, schema

LEVELS = (0.0, 0.2)


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """An arm of every kind, with pruning and AutoAttack, and one crafted bad evaluation row."""
    root = tmp_path_factory.mktemp("many")
    run = write_run_dir(
        root / "run",
        arms=MANY_KINDS,
        lrs=(0.02, 0.1),
        seeds=(0, 1, 2),
        epochs=6,
        evaluations=True,
        autoattack=True,
        diverged=[("wd", "λ=0.005", 0.1, None)],
    )
    evals = pd.read_parquet(run / "evaluations.parquet")
    evals.loc[0, "autoattack_acc"] = evals.loc[0, "pgd_acc"] + 0.1
    evals.to_parquet(run / "evaluations.parquet")
    return write_report(run, root / "out")


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("noisy")
    run = write_run_dir(
        root / "run",
        lrs=(0.01, 0.05),
        seeds=(0, 1),
        epochs=6,
        label_noise=LEVELS,
        failed=[("awd", "λ_awd=0.05", 0.01, 0)],
    )
    return write_report(run, root / "out")


@pytest.mark.slow
def test_every_arm_kind_is_compared_with_the_reference(many):
    tests = pd.read_csv(many.parent / "tables" / "headline_test.csv")
    assert tests["method"].tolist() == ["awd", "dwd", "ew", "sad", "rs", "rw", "sch"]  # study order, no reference
    assert set(tests["reference"]) == {"wd"}
    comparison = pd.read_csv(many.parent / "tables" / "comparison.csv")
    assert comparison["method"].tolist() == list(MANY_KINDS)
    assert comparison["best_autoattack_acc_mean"].notna().all()
    text = many.read_text()
    for arm in ("dwd", "ew", "sad", "rs", "rw", "sch"):
        assert f"**{arm} vs wd**" in text


def test_one_colour_per_arm_in_study_order():
    colors = plotting.arm_colors(list(MANY_KINDS))
    assert len(set(colors.values())) == len(MANY_KINDS)
    assert colors == plotting.arm_colors(list(MANY_KINDS))  # the same arm, the same colour, every figure
    assert list(colors.values())[:2] == list(plotting.OKABE_ITO[:2])
    arms = [f"arm{i}" for i in range(13)]  # digits_arms has 9; no two arms share a colour up to 13
    assert len(set(plotting.arm_colors(arms).values())) == 13


def test_a_constant_decay_gets_a_readable_log_axis():
    from analysis.figures_epochs import lambda_figure

    epochs = np.arange(1, 6)
    curves = pd.DataFrame({"method": "wrs", "epoch": epochs, "lambda_mean_mean": 5e-4, "lambda_min_min": 5e-4,
                           "lambda_max_max": 5e-4})
    best = pd.DataFrame({"method": ["wrs"], "kind": ["rescale"], "setting": ["λ=0.0005"]})
    fig = lambda_figure(curves, best, ["wrs"], {"wrs": "#0072B2"})
    low, high = fig.axes[0].get_ylim()
    assert low < 5e-4 / 2 and high > 5e-4 * 2, (low, high)  # not a sliver around one value, labelled 0.0005 × 5


def test_coinciding_decays_are_drawn_one_inside_the_other_and_the_legend_covers_no_curve():
    from analysis.figures_epochs import lambda_figure

    epochs = np.arange(1, 7)
    early = np.where(epochs <= 3, 5e-3, 0.0)  # a window of wd's λ: the same value in its first half, then none
    curves = pd.DataFrame({"method": ["wd"] * 6 + ["early"] * 6 + ["awd"] * 6, "epoch": np.tile(epochs, 3),
                           "lambda_mean_mean": [*[5e-3] * 6, *early, *np.linspace(1e-3, 8e-3, 6)]})
    curves["lambda_min_min"] = curves["lambda_max_max"] = curves["lambda_mean_mean"]
    best = pd.DataFrame({"method": ["wd", "early", "awd"], "kind": ["fixed", "windowed", "adaptive"],
                         "setting": ["λ=0.005", "λ=0.005, stop=0.5", "λ_awd=0.02"]})
    fig = lambda_figure(curves, best, ["wd", "early", "awd"], {"wd": "#0072B2", "early": "#E69F00", "awd": "#D55E00"})
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    widths = {line.get_label().split(" ")[0]: line.get_linewidth() for line in ax.lines}
    assert widths["wd"] > widths["early"] == widths["awd"]  # wd shows around early, awd is not widened
    assert ax.get_legend() is None and len(fig.legends) == 1  # under the panels, not over a curve


@pytest.mark.slow
def test_importance_is_computed_per_arm_with_the_arms_own_parameters(many):
    table = pd.read_csv(many.parent / "tables" / "importance.csv")
    params = table.groupby("method")["param"].unique().map(set).to_dict()
    assert params["wd"] == {"lam", "lr", "seed"}
    assert params["ew"] == {"stop", "lr", "seed"}  # λ and start take a single value: skipped
    assert params["rs"] == {"granularity", "lr", "seed"}
    assert set(table["evaluator"]) == {"ped_anova", "fanova"}
    sums = table.groupby(["method", "evaluator"])["importance"].sum()
    assert sums.to_numpy() == pytest.approx(1.0, abs=1e-4)  # CSV keeps 6 significant digits


def test_tiny_studies_say_why_no_importance_is_shown():
    outcomes = pd.DataFrame(
        {
            "label_noise": 0.0,
            "method": "wd",
            "kind": "fixed",
            "lam": [1e-4, 1e-4],
            "lr": [0.1, 0.1],
            "seed": [0, 1],
            "score": [0.4, 0.5],
        }
    )
    rows, notes = importance.importances(outcomes)
    assert rows.empty and notes[(0.0, "wd", "fixed")] == "not computed: only 2 scored trial(s)."


@pytest.mark.slow
def test_pruning_and_autoattack_sections(many):
    pruning = pd.read_csv(many.parent / "tables" / "pruning.csv")
    assert sorted(pruning["sparsity"].unique()) == [0.0, 0.5, 0.8, 0.9]
    assert (pruning.groupby("method").size() == 4).all()
    assert "AA best (%)" in (many.parent / "tables" / "comparison.md").read_text()


@pytest.mark.slow
def test_sanity_section_lists_the_crafted_row(many):
    section = many.read_text().split("## Sanity checks")[1]
    assert "**1 warning(s)**" in section and "autoattack\\_acc" in section and "checkpoint best" in section


def test_sanity_warnings_flag_exactly_the_bad_rows():
    messages = sanity.sanity_warnings(fx.bad_evaluations())
    assert len(messages) == 5
    assert "autoattack_acc 0.5500 > pgd_acc 0.5000" in messages[0] and "checkpoint last" in messages[0]


@pytest.mark.slow
def test_one_figure_set_and_section_per_noise_level(noisy):
    pngs = {p.stem for p in (noisy.parent / "figures").glob("*.png")}
    for suffix in ("_noise0", "_noise20"):
        for name in ("lr_sensitivity", "lr_heatmaps", "robust_overfitting", "tuning_budget", "pareto"):
            assert f"{name}{suffix}" in pngs
    assert "label_noise_memorisation" in pngs
    text = noisy.read_text()
    assert "### Label noise 0%" in text and "### Label noise 20%" in text
    assert "Validation labels: **same** as training" in text and "the choice does not matter" not in text


@pytest.mark.slow
def test_label_noise_table_has_each_arm_at_each_rate(noisy):
    table = pd.read_csv(noisy.parent / "tables" / "label_noise.csv")
    assert sorted(zip(table["label_noise"], table["method"], strict=True)) == sorted(
        (level, arm) for level in LEVELS for arm in ("awd", "wd")
    )
    assert table.loc[table["label_noise"] > 0, "last_noisy_fit_acc_mean"].between(0, 1).all()


def test_synthetic_frames_conform_to_the_schema():
    results = make_results(arms=MANY_KINDS, epochs=4, diverged=[("wd", "λ=0", 0.2, None)], evaluations=True)
    for frame, columns in (
        (results.epochs, schema.EPOCH_COLUMNS),
        (results.trials, schema.TRIAL_COLUMNS),
        (results.evaluations, schema.EVAL_COLUMNS),
    ):
        assert list(frame.columns) == list(columns)
        assert [str(t) for t in frame.dtypes] == [str(pd.Series([], dtype=d).dtype) for d in columns.values()]
    assert set(results.trials["kind"]) == set(schema.KINDS)
    diverged = results.trials[results.trials["status"] == "diverged"]
    assert len(diverged) == 2 and (diverged["epochs_done"] == 3).all() and (diverged["score"] == 0).all()
    evals = results.evaluations
    best = evals[(evals["checkpoint"] == "best") & (evals["sparsity"] == 0)].set_index("trial_id")["epoch"]
    ok = results.trials[results.trials["status"] == "ok"].set_index("trial_id")
    assert (best.loc[ok.index].to_numpy() == ok["best_epoch"].to_numpy()).all()


def test_a_run_where_nothing_finished_still_reports(tmp_path):
    failed = [
        (arm, arms.label(kind, s), 0.05, None) for arm, (kind, settings) in DEFAULT_ARMS.items() for s in settings
    ]
    run = write_run_dir(tmp_path / "run", lrs=(0.05,), seeds=(0,), epochs=3, failed=failed)
    a = analyse(load_run(run))
    assert a.best.empty and a.headline.empty
    write_report(run, tmp_path / "out")


def test_an_arm_with_one_configuration_gets_no_importance():
    """Only the seed varies: it would get an importance of 1 whatever the scores, so none is shown."""
    outcomes = pd.DataFrame(
        {
            "label_noise": 0.0,
            "method": "wd",
            "kind": "fixed",
            "lam": 1e-4,
            "lr": 0.1,
            "seed": [0, 1, 2, 3, 4, 5],
            "score": [0.4, 0.5, 0.45, 0.41, 0.47, 0.44],
        }
    )
    rows, notes = importance.importances(outcomes)
    assert rows.empty and notes[(0.0, "wd", "fixed")] == "not computed: only the seed varies (one configuration)."


def test_epoch_curves_with_every_other_epoch_missing_are_drawn():
    """eval.every = 2 leaves NaN on odd epochs: the line goes through the evaluated ones (a plain plot
    draws nothing), and the band is clipped to what an accuracy can be."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(1, 11)
    y = np.where(x % 2 == 0, x * 10.0, np.nan)
    fig, ax = plt.subplots()
    plotting.finite_line(ax, x, y, color="k")
    plotting.band(ax, x, y - 50, y + 50, "k", (0, 100))
    line = ax.lines[0]
    assert list(line.get_xdata()) == [2, 4, 6, 8, 10] and np.isfinite(line.get_ydata()).all()
    (_, _), (low, high) = ax.collections[0].get_datalim(ax.transData).get_points()
    assert low >= 2 and high <= 100
    plt.close(fig)
