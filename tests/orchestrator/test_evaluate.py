"""`decaylab evaluate`: AutoAttack (the official pyautoattack) on kept checkpoints, merged, idempotent."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers.sweep import decaylab, write_study

pytestmark = pytest.mark.slow  # evaluate through Ray: test_cluster.py, on a two-node cluster


def test_evaluate_fills_autoattack_and_is_idempotent(tmp_path):
    study = write_study(tmp_path, data={"dataset": "digits"}, lr=[0.1], seeds=[0],
                        methods={"wd": {"kind": "fixed", "lambda": [5.0e-4]},
                                 "awd": {"kind": "adaptive", "lambda_awd": [0.02]}},
                        train={"epochs": 4, "batch_size": 32})
    assert decaylab("sweep", study, "--storage", tmp_path / "r", "--executor", "local").returncode == 0
    run = tmp_path / "r" / "tiny"
    before = pd.read_parquet(run / "trials.parquet")
    assert before["autoattack_best"].isna().all()
    sets = ["--set", "eval.autoattack.enabled=true", "eval.autoattack.examples=30"]
    out = decaylab("evaluate", run, *sets, "--executor", "local", timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    trials = pd.read_parquet(run / "trials.parquet")
    evals = pd.read_parquet(run / "evaluations.parquet")
    assert trials["autoattack_best"].notna().all() and trials["autoattack_last"].notna().all()
    assert len(evals) == 4 and (evals["examples"] == 30).all()
    # on the same examples: AutoAttack ≤ PGD ≤ clean and FGSM ≤ clean (PGD ≤ FGSM is only a heuristic
    # for a barely trained model, so it is reported as a warning, not asserted)
    assert (evals["autoattack_acc"] <= evals["pgd_acc"]).all()
    assert (evals["pgd_acc"] <= evals["clean_acc"]).all() and (evals["fgsm_acc"] <= evals["clean_acc"]).all()
    assert (evals["clean_acc"] > 0.5).all()
    # epochs are untouched; a second run changes nothing and duplicates nothing
    again = decaylab("evaluate", run, *sets, "--executor", "local")
    assert again.returncode == 0 and "nothing to evaluate" in again.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(run / "evaluations.parquet"), evals)
    pd.testing.assert_frame_equal(pd.read_parquet(run / "trials.parquet"), trials)
    report = decaylab("report", run, "--out", tmp_path / "rep")
    assert report.returncode == 0
    assert "AutoAttack" in (tmp_path / "rep" / "report.md").read_text()
