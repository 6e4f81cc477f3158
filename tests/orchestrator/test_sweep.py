"""End-to-end sweeps through the real CLI: one on a real (local) Ray cluster, the others with the local
executor, which runs the same trial runner in this process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import time

import pandas as pd
import pytest
from helpers import faults
from helpers.sweep import comparable, decaylab, start_decaylab, write_study

from orchestrator.cli import main
from trials.schema import EPOCH_COLUMNS, EVAL_COLUMNS, TRIAL_COLUMNS


def local(*argv) -> tuple[int, str]:
    """`decaylab ARGV --executor local` in this process: (status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([*map(str, argv), "--executor", "local"])
    return status, err.getvalue()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The tiny study run once on a local Ray cluster, uninterrupted: 8 trials × 2 epochs."""
    base = tmp_path_factory.mktemp("ref")
    study = write_study(base)
    out = decaylab("sweep", study, "--storage", base / "results")
    assert out.returncode == 0, out.stderr[-3000:]
    return base / "results" / "tiny", out


@pytest.mark.slow
@pytest.mark.ray
def test_tiny_sweep_writes_the_design_files(reference_run):
    run, out = reference_run
    epochs = pd.read_parquet(run / "epochs.parquet")
    trials = pd.read_parquet(run / "trials.parquet")
    evals = pd.read_parquet(run / "evaluations.parquet")
    assert list(epochs.columns) == list(EPOCH_COLUMNS)
    assert list(trials.columns) == list(TRIAL_COLUMNS)
    assert list(evals.columns) == list(EVAL_COLUMNS)
    for frame, schema in ((epochs, EPOCH_COLUMNS), (trials, TRIAL_COLUMNS)):
        assert {c: str(t) for c, t in frame.dtypes.items()} == {c: str(pd.Series(dtype=d).dtype)
                                                               for c, d in schema.items()}
    assert len(trials) == 8 and set(trials["status"]) == {"ok"}
    assert len(epochs) == 16 and sorted(epochs["epoch"].unique()) == [1, 2]
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert set(epochs.loc[epochs["kind"] == "fixed", "method"]) == {"wd"}
    assert set(epochs["setting"]) == {"λ=0", "λ=0.0005", "λ_awd=0.01", "λ_awd=0.02"}
    assert epochs.loc[epochs["kind"] == "fixed", "lambda_awd"].isna().all()
    assert epochs.loc[epochs["kind"] == "adaptive", "lam"].isna().all()
    acc = epochs[["val_clean_acc", "val_robust_acc", "test_clean_acc", "test_robust_acc"]]
    assert ((acc >= 0) & (acc <= 1)).all().all()
    # best and last checkpoints of every trial were evaluated on the same test examples
    assert len(evals) == 16 and set(evals["checkpoint"]) == {"best", "last"}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["trials_planned"] == 8 and manifest["finished"]
    assert {"torch", "ray", "optuna"} <= set(manifest["versions"])
    assert "8 ok" in out.stderr and str(run) in out.stderr
    # the run directory's own records: a result and the final checkpoint per trial, nothing else left
    for trial in trials["trial_id"]:
        names = sorted(p.name for p in (run / "trials" / trial).iterdir())
        assert names == ["checkpoint-0002.pt", "result.json"], names
    assert (run / "sweep.log").read_text().splitlines()[-1].startswith("done in ")  # the log ends with the summary
    status = decaylab("status", run)
    assert status.returncode == 0 and "8 ok" in status.stdout and "best awd" in status.stdout
    assert list(run.glob("sweep-000/*/events.out.tfevents.*")), "no TensorBoard events from Ray's logger"


@pytest.mark.slow
@pytest.mark.ray
def test_both_executors_record_the_same_rows(reference_run, tmp_path):
    """The local executor trains through the same runner as Ray's trials: the same study gives the same rows."""
    ref_run, _ = reference_run
    status, err = local("sweep", write_study(tmp_path), "--storage", tmp_path / "r")
    assert status == 0, err[-3000:]
    run = tmp_path / "r" / "tiny"
    pd.testing.assert_frame_equal(comparable(pd.read_parquet(run / "epochs.parquet")),
                                  comparable(pd.read_parquet(ref_run / "epochs.parquet")))
    keys = ["trial_id", "checkpoint", "sparsity"]

    def evaluations(where):
        return pd.read_parquet(where / "evaluations.parquet").sort_values(keys, ignore_index=True)

    pd.testing.assert_frame_equal(evaluations(run), evaluations(ref_run))
    assert list(run.glob("sweep-000/*/events.out.tfevents.*")), "no TensorBoard events from the local executor"


@pytest.mark.slow
def test_killed_driver_resumes_to_the_same_rows(tmp_path):
    study = write_study(tmp_path, train={"epochs": 2, "batch_size": 64})
    status, err = local("sweep", study, "--storage", tmp_path / "reference")
    assert status == 0, err[-3000:]
    ref_run = tmp_path / "reference" / "tiny"
    proc = start_decaylab("sweep", study, "--storage", tmp_path / "results", "--executor", "local",
                          log=tmp_path / "log")
    run = tmp_path / "results" / "tiny"
    deadline = time.monotonic() + 240
    # wait until some trial has checkpointed but the sweep is not over, then SIGKILL the driver
    while time.monotonic() < deadline:
        if len(list(run.glob("trials/*/checkpoint-*.pt"))) >= 3 or proc.poll() is not None:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    status, err = local("resume", run)
    assert status == 0, err[-3000:]
    resumed = pd.read_parquet(run / "epochs.parquet")
    reference = pd.read_parquet(ref_run / "epochs.parquet")
    assert not resumed.duplicated(["trial_id", "epoch"]).any()
    pd.testing.assert_frame_equal(comparable(resumed), comparable(reference))
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == 8 and set(trials["status"]) == {"ok"}


def test_a_trial_that_raises_once_is_retried_and_finishes(tmp_path, monkeypatch):
    study = write_study(tmp_path, lr=[0.05], methods={"wd": {"kind": "fixed", "lambda": [0.0]}},
                        train={"epochs": 3, "batch_size": 64})
    faults.inject(monkeypatch, [{"trial": "wd-0-lr0.05-s0", "epoch": 2, "action": "raise",
                                 "once": str(tmp_path / "fired")}])
    status, err = local("sweep", study, "--storage", tmp_path / "r")
    assert status == 0, err[-3000:]
    assert (tmp_path / "fired").exists() and "retrying from its checkpoint" in err
    epochs = pd.read_parquet(tmp_path / "r" / "tiny" / "epochs.parquet")
    assert list(epochs["epoch"]) == [1, 2, 3]  # retried from the epoch-2 checkpoint, nothing repeated
    assert pd.read_parquet(tmp_path / "r" / "tiny" / "trials.parquet")["status"].tolist() == ["ok"]


def test_a_diverged_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    study = write_study(tmp_path, lr=[0.05, 1.0e6], methods={"wd": {"kind": "fixed", "lambda": [0.0]}})
    status, err = local("sweep", study, "--storage", tmp_path / "r")
    assert status == 0, err[-3000:]
    trials = pd.read_parquet(tmp_path / "r" / "tiny" / "trials.parquet").set_index("lr")
    assert trials.loc[1.0e6, "status"] == "diverged" and trials.loc[0.05, "status"] == "ok"
    epochs = pd.read_parquet(tmp_path / "r" / "tiny" / "epochs.parquet")
    diverged = epochs[epochs["lr"] == 1.0e6]
    assert len(diverged) == 1 and diverged["status"].tolist() == ["diverged"]  # kept, stopped at once


def test_gpu_on_a_cpu_only_machine_fails_fast(tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    study = write_study(tmp_path)
    status, err = local("sweep", study, "--storage", tmp_path / "r", "--device", "gpu")
    assert status == 2 and "no CUDA GPU" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # started nothing, wrote nothing


@pytest.mark.slow
def test_extend_runs_only_the_new_trials(tmp_path):
    study = write_study(tmp_path, lr=[0.05], methods={"wd": {"kind": "fixed", "lambda": [0.0]}})
    assert local("sweep", study, "--storage", tmp_path / "r")[0] == 0
    first = pd.read_parquet(tmp_path / "r" / "tiny" / "epochs.parquet")
    grown = write_study(tmp_path, lr=[0.05], seeds=[0, 1], methods={"wd": {"kind": "fixed", "lambda": [0.0]}})
    status, err = local("sweep", grown, "--storage", tmp_path / "r")
    assert status == 0 and "1 trials to run (2 planned, 1 already finished)" in err
    both = pd.read_parquet(tmp_path / "r" / "tiny" / "epochs.parquet")
    assert sorted(both["seed"].unique()) == [0, 1] and len(both) == 4
    pd.testing.assert_frame_equal(both[both["seed"] == 0].reset_index(drop=True), first)
    changed = write_study(tmp_path, lr=[0.05], train={"epochs": 5, "batch_size": 64})
    status, err = local("sweep", changed, "--storage", tmp_path / "r")
    assert status == 2 and "train.epochs: 2 → 5" in err
