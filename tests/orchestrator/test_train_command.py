"""`decaylab train`: one trial of a bundled study in this process, whose run directory the report reads."""

from __future__ import annotations

import pytest
import yaml
from helpers.sweep import decaylab


@pytest.mark.slow
def test_one_arm_of_a_study_with_a_reference_arm_trains_and_reports(tmp_path):
    """digits_arms names wd as its reference: a trial of another arm writes a study without it, not a
    run directory the report refuses as damaged."""
    run = tmp_path / "run"
    out = decaylab("train", "digits_arms", "--set", "arm=awd", "lambda_awd=0.02", "seed=0", "train.epochs=1",
                   "data.subset=60", "eval.val_examples=20", "eval.test_examples=20", "--out", run, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    study = yaml.safe_load((run / "study.yaml").read_text())
    assert list(study["methods"]) == ["awd"] and study["analysis"].get("reference") is None
    report = decaylab("report", run, "--out", tmp_path / "report", timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert (tmp_path / "report" / "report.md").is_file()


def test_train_refuses_a_run_directory_another_decaylab_is_writing(tmp_path):
    from orchestrator.run import lock
    from orchestrator.run.storage import RunDir

    run = tmp_path / "run"
    run.mkdir()
    with lock.hold(RunDir(str(run)), "sweep"):
        out = decaylab("train", "digits", "--set", "train.epochs=1", "data.subset=60", "--run-dir", run, timeout=300)
    assert out.returncode == 1 and "another decaylab" in out.stderr and "`decaylab sweep`" in out.stderr, out.stderr
    assert not (run / "study.yaml").exists(), "nothing was written"
