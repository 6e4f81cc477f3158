"""The headline and LR tests on the constructed lr trap, their wording, and summary.json against an independent
recomputation."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from helpers import analysis as fx

from analysis import compare, findings, summary_json
from analysis.load import load_run
from analysis.pipeline import analyse
from bench.synthetic import manifest, write_results


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


def test_headline_pairs_the_selected_configurations_by_seed(analysis):
    best = analysis.best.set_index("method")
    for arm, (setting, lr) in fx.BEST.items():
        assert (best.loc[arm, "setting"], best.loc[arm, "lr"]) == (setting, lr)
    row = analysis.headline.set_index("method").loc["awd"]
    assert row["reference"] == "wd" and row["n"] == 3 and row["stage"] == "cross-fit"
    assert row["mean_diff"] == pytest.approx(-0.005) and row["hodges_lehmann"] == pytest.approx(-0.005)
    assert (row["wins"], row["ties"], row["losses"]) == (0, 0, 3)
    assert row["p_value"] == pytest.approx(0.25) and row["min_attainable_p"] == pytest.approx(0.25)
    assert np.isnan(row["ci_level"])  # below 6 seeds no interval exists
    assert row["family_size"] == 2 and row["p_adjusted"] >= row["p_value"]  # headline and LR, one level
    assert pd.isna(row["seeds_needed"])  # three equal differences: no spread to plan with


def test_the_trap_is_never_called_better(analysis):
    """Pooling (lr, seed) pairs would call awd better; selected vs selected it lost on every seed."""
    items = _flatten(findings.findings(analysis, 0.0))
    headline = next(item for item in items if item.startswith("*Headline*"))
    assert "better" not in headline and "reliabl" not in " ".join(items)
    assert "mean −0.5 points" in headline and "0/0/3 wins/ties/losses" in headline
    assert "**too few seeds** (exploratory, cross-fitted over 3 tuning seeds; seeds only varied;" in headline
    assert "any verdict needs at least 7 seeds" in headline  # 2 comparisons: 2/2^n ≤ 0.025 needs 7


def test_lr_test_is_peak_normalised_per_seed(analysis):
    stats = analysis.lr_stats.set_index(["method", "seed"])
    for seed in fx.SEEDS:
        awd = np.array([0.46, 0.455, 0.44, 0.36]) + 0.01 * seed
        wd = np.array([0.41, 0.46, 0.39, 0.0]) + np.array([0.01, 0.01, 0.01, 0.0]) * seed  # lr 0.3 diverged: 0
        assert stats.loc[("awd", seed), "peak_normalised"] == pytest.approx(np.mean(awd - awd.max()))
        assert stats.loc[("wd", seed), "peak_normalised"] == pytest.approx(np.mean(wd - wd.max()))
        assert stats.loc[("wd", seed), "worst_lr"] == 0.0
    row = analysis.lr_robustness.set_index("method").loc["awd"]
    assert row["n"] == 3 and (row["wins"], row["losses"]) == (3, 0)
    items = _flatten(findings.findings(analysis, 0.0))
    across = next(item for item in items if item.startswith("*Across the lr grid*"))
    assert "**too few seeds**" in across and "better" not in across


def test_a_higher_peak_alone_does_not_win_the_lr_test():
    """The statistic measures flatness: a curve raised by the same amount everywhere scores the same."""
    cells = pd.DataFrame(
        {
            "label_noise": 0.0,
            "method": ["low"] * 2 + ["high"] * 2,
            "kind": "fixed",
            "seed": 0,
            "lr": [0.03, 0.1] * 2,
            "value": [0.40, 0.45, 0.40, 0.48],  # "high" peaks higher, and is steeper
            "missing": "",
        }
    )
    stats = compare.lr_seed_stats(cells).set_index("method")
    assert stats.loc["high", "peak_normalised"] < stats.loc["low", "peak_normalised"]  # −4 vs −2.5 points
    shifted = cells.assign(value=cells["value"] + 0.1)
    assert compare.lr_seed_stats(shifted)["peak_normalised"].to_numpy() == pytest.approx(stats["peak_normalised"])


def test_diverged_seeds_count_zero_and_are_flagged(analysis):
    configs = analysis.configs.set_index(["method", "setting", "lr"])
    diverged = configs.loc[("wd", "λ=0.001", 0.3)]
    assert diverged["n_diverged"] == 3 and diverged["score"] == 0.0 and not diverged["eligible"]
    assert diverged["value_mean"] == 0.0
    assert analysis.best_per_lr.query("method == 'wd'")["lr"].tolist() == [0.01, 0.03, 0.1]


def test_seeds_missing_on_one_side_are_left_out_and_named(tmp_path):
    trials = [fx.known_trial(m, v, 0.03, s, 0.45, 0.45) for m, v in (("wd", 1e-3), ("awd", 0.02)) for s in (0, 1, 2)]
    trials += [fx.known_trial("wd", 1e-3, 0.03, s, 0.45, 0.45, stage="confirm") for s in (10, 11)]
    trials += [fx.known_trial("awd", 0.02, 0.03, s, 0.45, 0.46, stage="confirm") for s in (10, 11, 12)]
    trials += [fx.known_trial("wd", 1e-3, 0.03, 12, 0.45, 0.45, stage="confirm", status="failed")]
    trials += [fx.known_trial("awd", 0.02, 0.03, 13, 0.45, 0.46, stage="confirm", status="running")]
    run = fx.write_known_run(tmp_path / "run", trials, tuning_seeds=(0, 1, 2), confirm={"seeds": [10, 11, 12, 13]})
    row = analyse(load_run(run)).headline.set_index("method").loc["awd"]
    assert row["n"] == 2 and row["stage"] == "confirm" and row["seeds"] == [10, 11]
    assert row["missing"] == "seed 12 (reference: failed); seed 13 (arm: running, reference: not run)"


def _independent(run_dir) -> dict:
    """The headline and LR numbers recomputed from the parquet files with numpy/scipy only.

    In this run every held-out seed's choice equals the all-seeds choice (the settings differ by the same
    amount on every seed), so the cross-fitted values are those of the selected configurations.
    """
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
        curves = pd.concat(columns, axis=1).to_numpy()
        per_lr[arm] = (curves - curves.max(axis=1, keepdims=True)).mean(axis=1)
    return {"headline": d, "lr_robustness": per_lr["awd"] - per_lr["wd"]}


def _expected_test(d: np.ndarray) -> dict:
    signs = np.array(list(itertools.product((-1, 1), repeat=len(d))))
    p = np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-12)
    walsh = [(d[i] + d[j]) / 2 for i in range(len(d)) for j in range(i, len(d))]
    return {
        "n": len(d),
        "mean_diff": d.mean(),
        "hodges_lehmann": float(np.median(walsh)),
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
        assert got["ci_low"] is None and got["ci_level"] is None  # 3 seeds: no interval, null in JSON
    assert level["selected"]["awd"]["best"]["pgd_acc"]["mean"] == pytest.approx(np.mean([0.455, 0.465, 0.475]))


def test_summary_json_has_every_key_and_is_strict(run_dir, summary, analysis):
    text = summary_json.dumps(analysis)
    json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))
    assert {"study", "metric", "smoke_test", "val_label_noise", "levels", "search", "analysis"} <= set(summary)
    level = summary["levels"]["0"]
    assert set(level) >= {
        "reference",
        "selected",
        "headline",
        "lr_robustness",
        "secondary",
        "weight_norm_ratio",
        "tuning_budget",
        "importance",
        "pareto",
        "lr_sensitivity",
        "selection_left_out",
        "tuning_seeds",
    }
    headline = level["headline"]["awd"]
    kept = {"n", "mean_diff", "ci_low", "ci_high", "p_value", "wins", "ties", "losses", "min_attainable_p"}
    kept |= {"seeds_needed", "verdict", "left_out", "arm_setting", "arm_lr", "reference_setting", "reference_lr"}
    added = {"stage", "seeds", "tuning_seeds", "ci_level", "p_adjusted", "adjustment", "hodges_lehmann"}
    added |= {"min_effect", "power_at_min_effect", "varied", "family_size", "choices", "two_level_ci_low"}
    assert kept | added <= set(headline) and not {"ci_method", "detectable_effect", "sd_diff"} & set(headline)
    assert headline["verdict"] == "too few seeds" and headline["stage"] == "cross-fit"
    assert headline["seeds"] == headline["tuning_seeds"] == [0, 1, 2] and headline["adjustment"] == "maxT"
    assert [c["arm_setting"] for c in headline["choices"]] == ["λ_awd=0.02"] * 3
    assert set(level["secondary"]) == {"spread", "lr_auc", "worst_lr"}
    assert set(level["selected"]["wd"]["best"]) == {"clean_acc", "fgsm_acc", "pgd_acc", "autoattack_acc"}
    assert level["selected"]["wd"]["best"]["autoattack_acc"]["mean"] is None  # not run: null, never NaN
    budget = level["tuning_budget"]["awd"]
    assert [entry["n"] for entry in budget] == list(range(1, 9))
    assert set(budget[0]) == {"n", "expected_best", "low", "high", "spread_low", "spread_high", "diff", "diff_low",
                              "diff_high", "compute_hours"}
    assert set(level["importance"]) == {"wd", "awd"}


@pytest.mark.slow
def test_a_single_lr_study_claims_nothing_about_the_lr(tmp_path):
    """With one lr there is no spread, no LR-AUC and no LR test: the summary says so."""
    from bench.synthetic import make_results

    results = make_results(lrs=(0.1,), seeds=(0, 1, 2), evaluations=True)
    write_results(tmp_path / "run", results, manifest(results))
    a = analyse(load_run(tmp_path / "run"))
    assert set(a.tests["test"]) == {"headline"} and a.secondary.empty  # one lr: no LR comparison in the family
    items = _flatten(findings.findings(a, 0.0))
    across = [item for item in items if item.startswith("*Across the lr grid*")]
    curves = [item for item in items if item.startswith("*Secondary comparisons")]
    assert across and all("one lr only (0.1)" in item and "lrs" not in item for item in across)
    assert curves and all("not defined" in item for item in curves)
    from analysis.report import write_report

    report = write_report(tmp_path / "run", tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "One lr only (0.1): robustness to the lr cannot be assessed" in text
    assert "One lr only (0.1): sensitivity to the lr needs" in text
    assert "lr_sensitivity.png" not in text and not (tmp_path / "report" / "figures" / "lr_heatmaps.png").exists()
    assert report is not None
