"""A run directory records what was run, not where its side effects go: resuming someone's run directory sends
nothing to the trackers, Optuna journal or download location its study names unless the user says so; tracker
URIs are checked and their destinations said; a local Ray cluster is this user's alone."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
import yaml
from helpers.sweep import write_study

from orchestrator.cli import main
from orchestrator.errors import UserError
from orchestrator.run.directory import continued
from orchestrator.run.storage import RunDir
from orchestrator.study.checks import credential_warnings, tracker_destinations
from orchestrator.study.load import study_from_dict
from orchestrator.sweep.optuna import journal_path

BASE = {"methods": {"wd": {"kind": "fixed", "lambda": [0.0]}}}


def shared_run(tmp_path: Path, **study) -> Path:
    """A run directory as someone else might hand it over: a recorded study and nothing run yet."""
    run = tmp_path / "shared"
    run.mkdir()
    recorded = study_from_dict({**BASE, **study}, "s", check_data=False).to_dict()
    (run / "study.yaml").write_text(yaml.safe_dump(recorded))
    return run


def test_a_shared_run_directory_s_trackers_journal_and_download_are_not_used_on_resume(tmp_path):
    outside = tmp_path / "outside" / "journal.log"
    run = shared_run(tmp_path, tracking={"mlflow": {"uri": "https://attacker.example"}, "wandb": {"project": "x"}},
                     search={"kind": "optuna", "storage": str(outside), "n_trials": 1,
                             "space": {"lr": {"low": 0.01, "high": 0.1}, "wd.lambda": {"low": 1e-5, "high": 1e-2}}},
                     data={"dataset": "digits", "root": str(tmp_path / "elsewhere"), "download": True})
    _, study, dropped = continued(str(run))
    assert study.tracking.mlflow is None and study.tracking.wandb is None and study.tracking.tensorboard
    assert study.search.storage is None and not study.data.download
    assert any("https://attacker.example" in d for d in dropped) and any("journal.log" in d for d in dropped)
    assert any("data.download" in d for d in dropped)
    assert not outside.parent.exists()  # nothing was written there
    outside.parent.mkdir()  # (a trusted journal outside must be somewhere that exists)
    _, trusted, none = continued(str(run), trust=True)
    assert trusted.tracking.mlflow.uri == "https://attacker.example" and none == []
    _, given, _ = continued(str(run), sets=["tracking.mlflow.uri=https://mine.example"])
    assert given.tracking.mlflow.uri == "https://mine.example"
    with pytest.raises(UserError, match="takes only"):
        continued(str(run), sets=["train.epochs=3"])


def test_resume_says_what_it_leaves_out(tmp_path):
    study = write_study(tmp_path, methods=BASE["methods"], lr=[0.05], train={"epochs": 1, "batch_size": 64})
    assert main(["sweep", str(study), "--storage", str(tmp_path / "r"), "--executor", "local"]) == 0
    run = tmp_path / "r" / "tiny"
    recorded = yaml.safe_load((run / "study.yaml").read_text())
    recorded["tracking"]["mlflow"] = {"uri": "https://attacker.example", "experiment": None}
    (run / "study.yaml").write_text(yaml.safe_dump(recorded))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["resume", str(run), "--executor", "local"]) == 0
    assert "tracking.mlflow (uri https://attacker.example): not used here" in err.getvalue()
    # what ran is what the run directory records now: no tracker
    assert yaml.safe_load((run / "study.yaml").read_text())["tracking"]["mlflow"] is None
    (run / "study.yaml").write_text(yaml.safe_dump(recorded))
    with contextlib.redirect_stderr(io.StringIO()) as err:  # trusted, the local executor cannot log to MLflow
        assert main(["resume", str(run), "--executor", "local", "--trust-run-config"]) == 2
    assert "tracking.mlflow: logs through Ray" in err.getvalue()


def test_a_relative_journal_lies_in_the_run_directory_and_the_default_too(tmp_path):
    run = RunDir(str(tmp_path / "run"))
    optuna = {"kind": "optuna", "n_trials": 1, "space": {"lr": {"low": 0.01, "high": 0.1}, "wd.lambda":
                                                           {"low": 1e-5, "high": 1e-2}}}
    relative = study_from_dict({**BASE, "search": {**optuna, "storage": "tune/journal.log"}}, "s")
    assert journal_path(run, relative) == tmp_path / "run" / "tune" / "journal.log"
    assert journal_path(run, study_from_dict({**BASE, "search": optuna}, "s")) == tmp_path / "run" / "optuna.journal"
    assert journal_path(RunDir("s3://bucket/run"), relative) is None  # no file to append to on an object store


def test_tracker_uris_are_checked_and_their_destinations_said():
    with pytest.raises(UserError, match=r"ftp:// is not one MLflow tracks to"):
        study_from_dict({**BASE, "tracking": {"mlflow": {"uri": "ftp://host/x"}}}, "s")
    study = study_from_dict({**BASE, "tracking": {"mlflow": {"uri": "https://u:secret@other.example"}}}, "s")
    lines = tracker_destinations(study)
    assert any("https://u:***@other.example" in line for line in lines) and "secret" not in str(lines)
    env = {"MLFLOW_TRACKING_TOKEN": "t", "MLFLOW_TRACKING_URI": "https://mine.example"}
    assert "other.example" in credential_warnings(study, env)[0]
    mine = study_from_dict({**BASE, "tracking": {"mlflow": {"uri": "https://mine.example/x"}}}, "s")
    assert credential_warnings(mine, env) == [] and credential_warnings(study, {}) == []


def test_a_local_ray_cluster_is_this_user_s_alone(monkeypatch):
    """Token authentication with a token made for the run, in the environment (no file another user could
    read), and a private temporary directory; all set before Ray is imported, which reads them."""
    import subprocess
    import sys

    code = ("import os; from orchestrator.ray import environment as e; env = {}; ok = e.for_local_cluster(env); "
            "tmp = env['RAY_TMPDIR']; mode = os.stat(tmp).st_mode & 0o777; e.remove_own_tmp(env); "
            "print(ok, env['RAY_AUTH_MODE'], len(env['RAY_AUTH_TOKEN']), oct(mode), len(tmp) < 20, "
            "os.path.exists(tmp), 'RAY_TMPDIR' in env)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if not k.startswith("RAY_")})
    assert out.stdout.split() == ["True", "token", "64", "0o700", "True", "False", "False"], out.stderr
    given = {"RAY_AUTH_TOKEN_PATH": "/secure/token"}  # the user's own token is kept
    code = ("from orchestrator.ray import environment as e; env = {'RAY_AUTH_TOKEN_PATH': '/secure/token'}; "
            "e.for_local_cluster(env); e.remove_own_tmp(env); print(sorted(env))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(sorted([*given, "RAY_AUTH_MODE"])), out.stderr


def test_address_auto_refuses_another_user_s_cluster(monkeypatch, tmp_path):
    from orchestrator.ray import cluster

    found = tmp_path / "ray" / "ray_current_cluster"
    found.parent.mkdir()
    found.write_text("127.0.0.1:6379")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    cluster.check_address("auto")  # this user's own: fine
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    os.chown(found, os.getuid() + 4242, -1)
    with pytest.raises(UserError, match="started by another user"):
        cluster.check_address("auto")
