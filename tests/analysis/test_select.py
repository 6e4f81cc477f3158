"""Selection happens on validation only, with the one rule of `trials.selection`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import analysis as fx

from analysis import select
from analysis.load import load_run
from analysis.outcomes import trial_outcomes
from analysis.pipeline import analyse
from trials import schema, selection


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return load_run(fx.write_run(tmp_path_factory.mktemp("select") / "run", partial=True))


@pytest.fixture(scope="module")
def outcomes(run):
    return trial_outcomes(run, "pgd_acc")


def test_selection_reads_the_score_trials_selection_produced(outcomes):
    ok = outcomes[outcomes["status"] == "ok"]
    assert (ok["best_epoch"] == 3).all()  # validation ties at epochs 3 and 4: the first wins (test peaks at 1)
    configs = select.config_table(outcomes).set_index(["method", "setting", "lr"])
    assert configs.loc[("wd", "λ=0.001", 0.03), "score"] == pytest.approx(np.mean([0.47, 0.48, 0.49]))


def test_selection_ignores_test_numbers(run):
    rng = np.random.default_rng(1)
    shuffled = run.evaluations.copy()
    shuffled["pgd_acc"] = rng.permutation(shuffled["pgd_acc"].to_numpy())
    again = type(run)(run.run_dir, run.epochs, run.trials, shuffled, run.manifest)
    first = select.best_tuned(select.config_table(trial_outcomes(run, "pgd_acc")))
    second = select.best_tuned(select.config_table(trial_outcomes(again, "pgd_acc")))
    pd.testing.assert_frame_equal(first[select.CONFIG_KEYS], second[select.CONFIG_KEYS])


def test_running_and_failed_trials_are_absent_and_never_chosen(outcomes):
    unfinished = outcomes[outcomes["status"].isin(["running", "failed"])]
    assert sorted(unfinished["status"]) == ["failed", "running"]
    assert unfinished["value"].isna().all() and not unfinished["counted"].any()
    best = select.best_tuned(select.config_table(outcomes))
    assert "λ_awd=0.05" not in best["setting"].tolist()  # their 0.99 validation accuracy is never eligible


def test_ties_go_to_the_first_setting_in_hyperparameter_order():
    configs = pd.DataFrame(
        {
            "label_noise": 0.0,
            "method": "wd",
            "kind": "fixed",
            "setting": ["λ=0.01", "λ=0.001", "λ=0.001"],
            "setting_rank": [1, 0, 0],
            "lr": [0.1, 0.2, 0.1],
            "score": [0.5, 0.5, 0.5],
            "eligible": True,
        }
    )
    best = select.best_tuned(configs).iloc[0]
    assert (best["setting"], best["lr"]) == ("λ=0.001", 0.1)


def test_setting_order_follows_the_hyperparameter_values(outcomes):
    ranks = outcomes.drop_duplicates(["method", "setting"]).set_index("setting")["setting_rank"]
    assert ranks["λ=0.0001"] < ranks["λ=0.001"] and ranks["λ_awd=0.01"] < ranks["λ_awd=0.02"] < ranks["λ_awd=0.05"]


@pytest.mark.slow
def test_reference_is_the_studys_choice_else_its_first_fixed_arm(tmp_path):
    default = analyse(load_run(fx.write_run(tmp_path / "a")))
    assert default.references == {0.0: "wd"}
    chosen = analyse(load_run(fx.write_run(tmp_path / "b", analysis={"reference": "awd"})))
    assert chosen.references == {0.0: "awd"}
    assert chosen.headline["method"].tolist() == ["wd"] and chosen.headline["reference"].tolist() == ["awd"]


def _random_trials(rng: np.random.Generator, table: int) -> pd.DataFrame:
    """One arm's tuning trials: up to 3 settings × 2 lrs × 4 seeds, some diverged, failed, running or not
    started, scores with ties. `table` is the level key, so that many tables go through one call."""
    settings, lrs, seeds = int(rng.integers(1, 4)), [0.05, 0.1][: int(rng.integers(1, 3))], 4
    rows = []
    for rank in range(settings):
        for lr in lrs:
            for seed in range(seeds):
                draw = rng.random()
                if draw < 0.05:
                    continue  # not started
                status = "diverged" if draw < 0.2 else "failed" if draw < 0.25 else "running" if draw < 0.3 else "ok"
                score = {"ok": float(rng.integers(40, 44)) / 70, "diverged": 0.0}.get(status, np.nan)  # k/70: ties
                rows.append({"label_noise": float(table), "method": "wd", "kind": "fixed", "setting": f"λ={rank}",
                             "setting_rank": rank, "lr": lr, "seed": seed, "status": status, "score": score})
    return pd.DataFrame(rows)


def test_the_report_selects_with_the_rule_of_trials_selection():
    """On 300 random tables (ties in the scores; diverged, unfinished and missing seeds) the report and
    `trials.selection.best_tuned` (what the confirmation stage and `export --best` use) choose alike."""
    rng = np.random.default_rng(7)
    tables = [_random_trials(rng, table) for table in range(300)]
    trials = pd.concat(tables, ignore_index=True)
    trials["trial_id"] = [f"t{i}" for i in range(len(trials))]
    trials["counted"], trials["no_eval"] = True, False
    numbers = {m: np.nan for m in select.CONFIG_METRICS}
    hyper = {h: (pd.NA if t == "string" else np.nan) for h, t in schema.HYPERPARAMETER_COLUMNS.items()}
    trials = trials.assign(**numbers, **hyper)
    due = {float(i): list(range(4)) for i in range(len(tables))}
    best = select.best_tuned(select.config_table(trials, due)).set_index("label_noise")
    for table, rows in enumerate(tables):
        records = rows.sort_values(["setting_rank", "lr", "seed"]).to_dict("records")  # study order
        expected = selection.best_tuned(records, seeds=due[float(table)])
        if expected is None:
            assert float(table) not in best.index
        else:
            chosen = best.loc[float(table)]
            assert (chosen["setting"], chosen["lr"]) == (expected["setting"], expected["lr"])
