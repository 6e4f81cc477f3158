"""The two tests on the constructed lr trap, their wording, and summary.json against an independent recomputation."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from helpers import analysis as fx
from helpers.synthetic import manifest, write_results
from scipy import stats as sps

from analysis import findings, summary_json
from analysis.load import load_run
from analysis.pipeline import analyse


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return fx.write_run(tmp_path_factory.mktemp("trap") / "run")


@pytest.fixture(scope="module")
def analysis(run_dir):
    return analyse(load_run(run_dir))


@pytest.fixture(scope="module")
def summary(analysis):
    return json.loads(summary_json.dumps(analysis))


def _flatten(items) -> list[str]:
    out = []
    for item in items:
        out += [item] if isinstance(item, str) else [item[0], *item[1]]
    return out


def test_headline_pairs_the_best_tuned_configurations_by_seed(analysis):
    best = analysis.best.set_index("method")
    for arm, (setting, lr) in fx.BEST.items():
        assert (best.loc[arm, "setting"], best.loc[arm, "lr"]) == (setting, lr)
    row = analysis.headline.set_index("method").loc["awd"]
    assert row["reference"] == "wd" and row["n"] == 3
    assert row["mean_diff"] == pytest.approx(-0.005)
    assert (row["wins"], row["ties"], row["losses"]) == (0, 0, 3)
    assert row["p_value"] == pytest.approx(0.25) and row["min_attainable_p"] == pytest.approx(0.25)
    assert row["seeds_needed"] == 6


def test_the_trap_is_never_called_better(analysis):
    """Pooling (lr, seed) pairs would call awd better; best-tuned vs best-tuned it lost on every seed."""
    items = _flatten(findings.findings(analysis, 0.0))
    headline = next(item for item in items if item.startswith("*Best-tuned vs best-tuned*"))
    assert "better" not in headline and "reliabl" not in " ".join(items)
    assert "mean difference −0.5 points" in headline and "0/0/3 wins/ties/losses" in headline
    assert "**too few seeds**" in headline and "about 6 seeds would be needed" in headline


def test_lr_robustness_uses_the_seed_as_the_unit(analysis):
    means = analysis.lr_seed_means.set_index(["method", "seed"])["lr_mean"]
    for seed in fx.SEEDS:
        awd = np.mean([0.46, 0.455, 0.44, 0.36]) + 0.01 * seed
        wd = np.mean([0.41, 0.46, 0.39, 0.0]) + 0.0075 * seed  # every wd trial at lr 0.3 diverged: 0
        assert means[("awd", seed)] == pytest.approx(awd)
        assert means[("wd", seed)] == pytest.approx(wd)
    row = analysis.lr_robustness.set_index("method").loc["awd"]
    assert row["n"] == 3 and (row["wins"], row["losses"]) == (3, 0)
    items = _flatten(findings.findings(analysis, 0.0))
    across = next(item for item in items if item.startswith("*Across the lr grid*"))
    assert "**too few seeds**" in across and "better" not in across


def test_diverged_seeds_count_zero_and_are_flagged(analysis):
    configs = analysis.configs.set_index(["method", "setting", "lr"])
    diverged = configs.loc[("wd", "λ=0.001", 0.3)]
    assert diverged["n_diverged"] == 3 and diverged["score"] == 0.0 and not diverged["eligible"]
    assert diverged["value_mean"] == 0.0
    assert analysis.best_per_lr.query("method == 'wd'")["lr"].tolist() == [0.01, 0.03, 0.1]


def test_seeds_missing_on_one_side_are_left_out_and_named(tmp_path):
    extra = [(fx.config("wd", 1e-3, 0.03, 3), "failed"), (fx.config("awd", 0.02, 0.03, 4), "running")]
    results = fx.build(extra=extra)
    write_results(tmp_path / "run", results, manifest(results))
    row = analyse(load_run(tmp_path / "run")).headline.set_index("method").loc["awd"]
    assert row["n"] == 3
    assert row["missing"] == "seed 3 (arm: not run, reference: failed); seed 4 (arm: running, reference: not run)"


def _independent(run_dir) -> dict:
    """The headline and LR-robustness numbers recomputed from the parquet files with numpy/scipy only."""
    trials = pd.read_parquet(run_dir / "trials.parquet")
    evals = pd.read_parquet(run_dir / "evaluations.parquet")
    best_eval = evals[(evals["checkpoint"] == "best") & (evals["sparsity"] == 0)].set_index("trial_id")["pgd_acc"]
    trials["value"] = np.where(trials["status"] == "diverged", 0.0, trials["trial_id"].map(best_eval))
    configs = trials.groupby(["method", "setting", "lr"]).agg(
        score=("score", "mean"), n_ok=("status", lambda s: (s == "ok").sum())
    )
    eligible = configs[configs["n_ok"] > 0]
    chosen = {arm: eligible.loc[arm]["score"].idxmax() for arm in ("wd", "awd")}

    def seed_values(arm, setting, lr):
        rows = trials[(trials["method"] == arm) & (trials["setting"] == setting) & (trials["lr"] == lr)]
        return rows.set_index("seed")["value"].sort_index()

    d = (seed_values("awd", *chosen["awd"]) - seed_values("wd", *chosen["wd"])).to_numpy()
    per_lr = {}
    for arm in ("wd", "awd"):
        columns = []
        for lr in fx.LRS:
            at_lr = (
                eligible.loc[arm].xs(lr, level="lr") if lr in eligible.loc[arm].index.get_level_values("lr") else None
            )
            columns.append(
                seed_values(arm, at_lr["score"].idxmax(), lr) if at_lr is not None else pd.Series(0.0, fx.SEEDS)
            )
        per_lr[arm] = pd.concat(columns, axis=1).mean(axis=1)
    d_lr = (per_lr["awd"] - per_lr["wd"]).to_numpy()
    return {"headline": d, "lr_robustness": d_lr}


def _expected_test(d: np.ndarray) -> dict:
    signs = itertools.product((-1, 1), repeat=len(d))
    p = np.mean([abs(np.dot(s, d)) >= abs(d.sum()) - 1e-12 for s in signs])
    low, high = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d)) if np.std(d) > 0 else (d[0], d[0])
    return {
        "n": len(d),
        "mean_diff": d.mean(),
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "wins": int((d > 1e-12).sum()),
        "ties": int((abs(d) <= 1e-12).sum()),
        "losses": int((d < -1e-12).sum()),
        "min_attainable_p": 2 / 2 ** int((abs(d) > 1e-12).sum()),
    }


def test_summary_json_agrees_with_an_independent_recomputation(run_dir, summary):
    level = summary["levels"]["0"]
    expected = _independent(run_dir)
    for test in ("headline", "lr_robustness"):
        got = level[test]["awd"]
        for key, value in _expected_test(expected[test]).items():
            assert got[key] == pytest.approx(value, abs=1e-9), (test, key)
    assert level["selected"]["awd"]["best"]["pgd_acc"]["mean"] == pytest.approx(np.mean([0.455, 0.465, 0.475]))


def test_summary_json_has_every_key_and_is_strict(run_dir, summary, analysis):
    text = summary_json.dumps(analysis)
    json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))
    assert {"study", "metric", "smoke_test", "val_label_noise", "levels"} <= set(summary)
    level = summary["levels"]["0"]
    assert set(level) >= {
        "reference",
        "selected",
        "headline",
        "lr_robustness",
        "tuning_budget",
        "importance",
        "pareto",
        "lr_sensitivity",
    }
    headline = level["headline"]["awd"]
    keys = {
        "n",
        "mean_diff",
        "ci_low",
        "ci_high",
        "p_value",
        "wins",
        "ties",
        "losses",
        "min_attainable_p",
        "seeds_needed",
        "verdict",
    }
    assert keys <= set(headline) and headline["verdict"] == "too few seeds"
    assert set(level["selected"]["wd"]["best"]) == {"clean_acc", "fgsm_acc", "pgd_acc", "autoattack_acc"}
    assert level["selected"]["wd"]["best"]["autoattack_acc"]["mean"] is None  # not run: null, never NaN
    budget = level["tuning_budget"]["awd"]
    assert [entry["n"] for entry in budget] == list(range(1, 9))
    assert set(budget[0]) == {"n", "expected_best", "low", "high", "compute_hours"}
    assert set(level["importance"]) == {"wd", "awd"}


def test_a_single_lr_study_claims_nothing_about_the_lr(tmp_path):
    """With one lr there is no spread, no LR-AUC and no LR-robustness test: the summary says so."""
    from helpers.synthetic import make_results

    results = make_results(lrs=(0.1,), seeds=(0, 1, 2), evaluations=True)
    write_results(tmp_path / "run", results, manifest(results))
    items = _flatten(findings.findings(analyse(load_run(tmp_path / "run")), 0.0))
    across = [item for item in items if item.startswith("*Across the lr grid*")]
    sensitivity = [item for item in items if item.startswith("*LR sensitivity*")]
    assert across and all("one lr only (0.1)" in item and "lrs" not in item for item in across)
    assert sensitivity and all("not defined" in item and "spread (max" not in item for item in sensitivity)
    from analysis.report import write_report

    report = write_report(tmp_path / "run", tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "One lr only (0.1): robustness to the lr cannot be assessed" in text
    assert "One lr only (0.1): sensitivity to the lr needs" in text
    assert "lr_sensitivity.png" not in text and not (tmp_path / "report" / "figures" / "lr_heatmaps.png").exists()
    assert report is not None
