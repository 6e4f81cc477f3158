"""The Optuna tuning stage: conditional, seeded spaces; a small search end to end; its grid export."""

from __future__ import annotations

import os

import optuna
import pandas as pd
import pytest
import yaml
from helpers.sweep import decaylab, write_study

from orchestrator.errors import UserError
from orchestrator.study.load import load_study, study_from_dict
from orchestrator.study.plan import expand_grid
from orchestrator.sweep.optuna import OptunaSpace, make_sampler

OPTUNA = {
    "name": "tune",
    "methods": {"wd": {"kind": "fixed"}, "awd": {"kind": "adaptive"}},
    "lr": [0.05],
    "seeds": [0, 1],
    "search": {"kind": "optuna", "n_trials": 4, "seed": 3,
               "space": {"lr": {"low": 0.01, "high": 0.4}, "wd.lambda": {"low": 1e-5, "high": 1e-2},
                         "awd.lambda_awd": {"low": 0.005, "high": 0.05}}},
}


def sample(study, n: int) -> list[dict]:
    opt = optuna.create_study(sampler=make_sampler(study), direction="maximize")
    space = OptunaSpace(study)
    out = []
    for _ in range(n):
        trial = opt.ask()
        constants = space(trial)
        out.append({**trial.params, **constants})
        opt.tell(trial, trial.params["lr"])  # any objective: we test the space, not the optimiser
    return out


def test_space_is_conditional_on_the_arm_and_balanced():
    samples = sample(study_from_dict(OPTUNA, "t"), 8)
    assert [s["arm"] for s in samples] == ["wd", "awd"] * 4  # exactly n_trials per arm
    for s in samples:
        own, other = ("wd.lambda", "awd.lambda_awd") if s["arm"] == "wd" else ("awd.lambda_awd", "wd.lambda")
        assert own in s and other not in s  # never a λ_awd for the fixed arm, nor a λ for AWD
        assert 0.01 <= s["lr"] <= 0.4
    assert all(1e-5 <= s["wd.lambda"] <= 1e-2 for s in samples if s["arm"] == "wd")


def test_space_is_seeded():
    study = study_from_dict(OPTUNA, "t")
    assert sample(study, 6) == sample(study, 6)
    other = study_from_dict({**OPTUNA, "search": {**OPTUNA["search"], "seed": 4}}, "t")
    assert sample(other, 6) != sample(study, 6)


def test_an_arm_without_a_range_or_a_grid_is_rejected():
    space = {"lr": {"low": 0.01, "high": 0.4}, "wd.lambda": {"low": 1e-5, "high": 1e-2}}
    with pytest.raises(UserError, match=r"search\.space\.awd\.lambda_awd"):
        study_from_dict({**OPTUNA, "search": {**OPTUNA["search"], "space": space}}, "t")


def test_asha_stops_a_configuration_behind_its_rung_and_tells_optuna(tmp_path):
    """The tuning stage asks Optuna for each configuration when an executor has room, and after each epoch
    the successive-halving pruner may stop it; how each ended is told back (pruned ones as pruned)."""
    from orchestrator.run.storage import RunDir
    from orchestrator.sweep.optuna import OptunaWork

    study = study_from_dict({**OPTUNA, "search": {**OPTUNA["search"], "n_trials": 2, "scheduler": "asha",
                                                  "grace_period": 1, "reduction_factor": 2}}, "t")
    work = OptunaWork(RunDir(str(tmp_path)), study)
    assert work.total == 4
    first, second = work.next(), work.next()
    assert {first.params["arm"], second.params["arm"]} == {"wd", "awd"}
    assert [m.seed for m in first.members] == [0, 1]  # every seed of the study, trained in lockstep
    assert not work.epoch(first, {"objective": 0.9, "evaluations": 1})
    work.ended(first, "ok", {"objective": 0.9})
    assert work.epoch(second, {"objective": 0.1, "evaluations": 1})  # far behind the rung's best: stopped
    work.ended(second, "stopped", {"objective": 0.1})
    states = [t.state for t in work.ot.get_trials(deepcopy=False)]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    assert work.next() is not None and work.next() is not None and work.next() is None  # n_trials per arm


@pytest.mark.slow
@pytest.mark.ray
def test_optuna_search_end_to_end_writes_a_grid_study(tmp_path):
    study = write_study(tmp_path, name="tune", methods=OPTUNA["methods"], seeds=[0, 1],
                        search={**OPTUNA["search"], "n_trials": 2, "seeds_per_trial": 1, "scheduler": "asha",
                                "grace_period": 1, "reduction_factor": 2})
    out = decaylab("sweep", study, "--storage", tmp_path / "r")
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "r" / "tune"
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == 4 and sorted(trials["method"].value_counts().tolist()) == [2, 2]
    assert set(trials["seed"]) == {0}  # seeds_per_trial: 1
    best = load_study(run / "best_grid.yaml")
    assert best.search.kind == "grid" and set(best.arms) == {"wd", "awd"}
    assert len(best.arms["wd"].lam) == len(best.arms["awd"].lambda_awd) == 1 and best.seeds == (0, 1)
    assert len(expand_grid(best)) >= 4
    assert yaml.safe_load((run / "best_grid.yaml").read_text())["name"] == "tune-best"


@pytest.mark.slow
def test_a_killed_optuna_stage_resumes_from_its_records(tmp_path):
    """Resume rebuilds the Optuna study from decaylab's records (never Tuner.restore): every planned
    configuration ends exactly once and the unfinished ones continue from their checkpoints."""
    import signal
    import time

    from helpers.sweep import start_decaylab

    study = write_study(tmp_path, name="tune", methods=OPTUNA["methods"], seeds=[0],
                        train={"epochs": 3, "batch_size": 64}, search={**OPTUNA["search"], "n_trials": 3})
    proc = start_decaylab("sweep", study, "--storage", tmp_path / "r", "--executor", "local", log=tmp_path / "log")
    run = tmp_path / "r" / "tune"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(run.glob("trials/*/result.json"))) >= 2 and list(run.glob("trials/*/epoch-*.json")):
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the stage ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)
    out = decaylab("resume", run, "--executor", "local")
    assert out.returncode == 0, out.stderr[-3000:]
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == 6 and set(trials["status"]) == {"ok"}
    assert sorted(trials["method"].value_counts().tolist()) == [3, 3]
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any() and len(epochs) == 18
