"""The confirmation stage: each arm's configuration selected on the tuning seeds (validation only) is trained
again on fresh seeds, after the tuning stage, by `sweep` or later by `decaylab confirm`; it resumes like
everything else, and its seeds are never tuning seeds."""

from __future__ import annotations

import contextlib
import io

import pandas as pd
import pytest
from helpers import faults
from helpers.sweep import comparable, write_study

from orchestrator.cli import main
from orchestrator.errors import UserError
from orchestrator.study.load import study_from_dict
from orchestrator.study.plan import confirmation_seeds, planned_trials
from trials import selection

TUNED = {"lr": [0.02, 0.05], "seeds": [0, 1], "methods": {"wd": {"kind": "fixed", "lambda": [5.0e-4]},
                                                       "awd": {"kind": "adaptive", "lambda_awd": [0.02]}}}


def local(*argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([*map(str, argv), "--executor", "local"])
    return status, err.getvalue()


def test_confirmation_seeds_are_fresh():
    study = study_from_dict({**TUNED, "confirm": {"seeds": 3}}, "s")
    assert confirmation_seeds(study) == (2, 3, 4)  # after the largest tuning seed
    assert planned_trials(study) == 2 * 2 * 2 + 2 * 3  # the grid, then each arm's selection on 3 seeds
    assert confirmation_seeds(study_from_dict({**TUNED, "confirm": {"seeds": [7, 9]}}, "s")) == (7, 9)
    with pytest.raises(UserError, match=r"confirm\.seeds: \[1\] are also tuning seeds"):
        study_from_dict({**TUNED, "confirm": {"seeds": [1, 5]}}, "s")
    with pytest.raises(UserError, match=r"confirm\.seeds"):
        study_from_dict({**TUNED, "confirm": {"seeds": 0}}, "s")


def assert_confirmed(run, seeds: list[int]) -> pd.DataFrame:
    """Every tuning trial and each arm's selected configuration on every confirmation seed, each once."""
    trials = pd.read_parquet(run / "trials.parquet")
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert trials["trial_id"].is_unique and not epochs.duplicated(["trial_id", "epoch"]).any()
    assert set(trials["status"]) == {"ok"}
    tune, confirm = trials[trials["stage"] == "tune"], trials[trials["stage"] == "confirm"]
    assert len(tune) == 8 and set(tune["seed"]) == {0, 1}
    assert set(confirm["seed"]).isdisjoint(tune["seed"]) and sorted(set(confirm["seed"])) == seeds
    for arm in ("wd", "awd"):
        best = selection.best_tuned(tune[tune["method"] == arm].to_dict("records"))
        mine = confirm[confirm["method"] == arm]
        assert set(zip(mine["setting"], mine["lr"], strict=True)) == {(best["setting"], best["lr"])}
        assert len(mine) == len(seeds) and all(t.endswith("-confirm") for t in mine["trial_id"])
    return epochs


@pytest.mark.slow
def test_a_confirmation_interrupted_and_resumed_gives_every_trial_once(tmp_path, monkeypatch):
    study = write_study(tmp_path, **TUNED, confirm={"seeds": 2})
    assert local("sweep", study, "--storage", tmp_path / "reference")[0] == 0
    reference = assert_confirmed(tmp_path / "reference" / "tiny", [2, 3])
    victim = reference.loc[reference["stage"] == "confirm", "trial_id"].iloc[0]
    faults.inject(monkeypatch, [{"trial": victim, "epoch": 1, "action": "term", "once": str(tmp_path / "fired")}])
    status, err = local("sweep", study, "--storage", tmp_path / "r")
    assert status == 143 and (tmp_path / "fired").exists() and "decaylab resume" in err.splitlines()[-1]
    run = tmp_path / "r" / "tiny"
    status, err = local("resume", run)
    assert status == 0, err[-3000:]
    pd.testing.assert_frame_equal(comparable(assert_confirmed(run, [2, 3])), comparable(reference))


@pytest.mark.slow
def test_confirm_adds_and_then_extends_a_confirmation_on_an_existing_run(tmp_path):
    study = write_study(tmp_path, **TUNED)
    assert local("sweep", study, "--storage", tmp_path / "r")[0] == 0
    run = tmp_path / "r" / "tiny"
    assert set(pd.read_parquet(run / "trials.parquet")["stage"]) == {"tune"}
    status, err = local("confirm", run, "--seeds", "1")
    assert status == 0, err[-3000:]
    assert_confirmed(run, [2])
    status, err = local("confirm", run, "--seeds", "2")
    assert status == 0 and "2 trials to run" in err, err[-3000:]  # only the new seed, for each arm
    assert_confirmed(run, [2, 3])
