"""Trust boundaries, without Ray: names and paths read from disk, checkpoints, storage locations.

A run directory, its storage root and a checkpoint may come from anyone: nothing in them is
executed, nothing decaylab writes lands outside the run directory, and a location decaylab cannot
use is refused before anything starts.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from orchestrator.errors import RunError, UserError
from orchestrator.run import records, storage
from orchestrator.run.storage import RunDir, check_location
from orchestrator.study.load import study_from_dict
from orchestrator.study.plan import expand_grid

TID = "wd-0-lr0.05-s0"


class Payload:
    """Unpickling it creates `marker`: what a crafted pickle would do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def checkpoint(epoch: int, trial_id: str = TID, **extra) -> bytes:
    buf = io.BytesIO()
    torch.save({"trial_id": trial_id, "epoch": epoch, "status": "running", "config": {}, **extra}, buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------- trial ids


def test_trial_ids_are_exact_and_stable():
    study = study_from_dict({"methods": {"wd": {"kind": "fixed", "lambda": [0.3, 0.30000000000000004]}},
                             "lr": [0.1]}, "t")
    ids = [c.trial_id for c in expand_grid(study)]
    assert ids == ["wd-0.3-lr0.1-s0", "wd-0.30000000000000004-lr0.1-s0"]  # different values, different ids
    code = ("from orchestrator.study.load import study_from_dict; from orchestrator.study.plan import expand_grid; "
            "print([c.trial_id for c in expand_grid(study_from_dict("
            "{'methods': {'wd': {'kind': 'fixed', 'lambda': [0.3, 0.30000000000000004]}}, "
            "'lr': [0.1]}, 't'))])")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "123"}, cwd=Path(__file__).resolve().parents[2])
    assert other.stdout.strip() == repr(ids)  # the same in another process: ids are stable across runs


@pytest.mark.parametrize("name", ["../evil", "wd-0/../../x", "wd-..", "a" * 300, "", None, 7, ["wd-0"], "wd"])
def test_names_read_from_disk_are_validated_before_use_in_a_path(tmp_path, name):
    assert not records.valid_trial_id(name)
    with pytest.raises(records.DamagedRecord):
        records.write_evaluation(RunDir(str(tmp_path)), name, {"rows": []})
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ symlinks


def test_a_symlinked_trial_directory_is_not_written_through(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "outside"
    (run / "trials").mkdir(parents=True)
    outside.mkdir()
    (outside / "result.json").write_text("theirs")
    (run / "trials" / TID).symlink_to(outside)
    r = RunDir(str(run))
    with pytest.raises(RunError, match="outside the run directory"):
        records.write_epoch_row(r, TID, {"epoch": 1})
    with pytest.raises(RunError, match="outside the run directory"):
        r.delete("trials", TID, "result.json")
    assert sorted(p.name for p in outside.iterdir()) == ["result.json"]
    assert (outside / "result.json").read_text() == "theirs"


def test_a_symlinked_run_directory_is_fine(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    r = RunDir(storage.absolute(str(tmp_path / "link")))
    records.write_epoch_row(r, TID, {"epoch": 1})
    assert (tmp_path / "real" / "trials" / TID / "epoch-0001.json").exists()


# ------------------------------------------------------------------------------- umask


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_result_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    storage.file_mode.cache_clear()
    try:
        RunDir(str(tmp_path)).write_atomic(b"x", "trials.parquet")
    finally:
        os.umask(old)
        storage.file_mode.cache_clear()
    assert stat.S_IMODE((tmp_path / "trials.parquet").stat().st_mode) == mode


# ---------------------------------------------------------------------------- checkpoints


def test_a_checkpoint_holding_code_is_refused_and_an_older_one_used(tmp_path):
    marker = tmp_path / "pwned"
    run = RunDir(str(tmp_path / "run"))
    run.write_atomic(checkpoint(1), "trials", TID, "checkpoint-0001.pt")
    run.write_atomic(checkpoint(2, w=Payload(marker)), "trials", TID, "checkpoint-0002.pt")
    state, warning = records.load_checkpoint(run, TID)
    assert state["epoch"] == 1 and "checkpoint-0002.pt is unusable" in warning and "resumes from epoch 1" in warning
    assert not marker.exists()


def test_a_checkpoint_that_loads_but_does_not_fit_falls_back(tmp_path):
    run = RunDir(str(tmp_path))
    run.write_atomic(checkpoint(1), "trials", TID, "checkpoint-0001.pt")
    run.write_atomic(checkpoint(2), "trials", TID, "checkpoint-0002.pt")

    def use(state):
        if state is not None and state["epoch"] == 2:
            raise KeyError("model")  # what the trainer raises for a checkpoint with the wrong keys
        return state

    state, warning = records.load_checkpoint(run, TID, use)
    assert state["epoch"] == 1 and "KeyError" in warning


def test_a_checkpoint_of_another_trial_is_not_used(tmp_path):
    """`evaluate` and resume take a checkpoint only when it names the trial whose directory holds it."""
    run = RunDir(str(tmp_path / "run"))
    run.write_atomic(checkpoint(1, trial_id="../../../evil"), "trials", TID, "checkpoint-0001.pt")
    state, warning = records.load_checkpoint(run, TID)
    assert state is None and "restarts from epoch 0" in warning
    assert not list(tmp_path.glob("**/evil*"))


def test_every_checkpoint_garbage_restarts_with_a_warning(tmp_path):
    run = RunDir(str(tmp_path))
    for epoch in (1, 2):
        run.write_atomic(b"garbage", "trials", TID, f"checkpoint-{epoch:04d}.pt")
    state, warning = records.load_checkpoint(run, TID)
    assert state is None and "restarts from epoch 0" in warning


# -------------------------------------------------------------------------------- storage


def test_an_unsupported_storage_scheme_is_refused(monkeypatch):
    with pytest.raises(UserError, match=r"ftp:// is not supported") as err:
        check_location("ftp://host/results")
    assert "s3://" in err.value.hint


@pytest.mark.parametrize("uri, hint", [("s3://bucket/results", "AWS_ACCESS_KEY_ID"),
                                       ("gs://bucket/results", "gcloud auth application-default login")])
def test_missing_cloud_credentials_are_refused_at_once(monkeypatch, tmp_path, uri, hint):
    for name in [n for n in os.environ if n.startswith(("AWS_", "GOOGLE_", "GCE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(RunError, match="no credentials") as err:
        check_location(uri)
    assert hint in err.value.hint
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/x.json")
    check_location(uri)
