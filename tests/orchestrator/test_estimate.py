"""`decaylab validate --estimate`: the cost model, and (slow) the estimate against a measured sweep."""

from __future__ import annotations

import pytest

from orchestrator.cli import main
from orchestrator.study.catalog import study_file
from orchestrator.study.load import load_study
from orchestrator.sweep.estimate import estimate, representative
from trials import cost

# the default study shrunk to 4 trials × 2 epochs (its data, model, attack and batch size unchanged)
SHRUNK = ["lr=[0.1]", "seeds=[0]", "confirm=null", "train.epochs=2", "methods.wd.lambda=[0.0,5.0e-4]",
          "methods.awd.lambda_awd=[0.01,0.02]"]


def test_forward_equivalents_of_the_default_study():
    cfg = representative(load_study(study_file("digits")))
    splits = cost.split_sizes(cfg, 1797, None)  # digits: no official test split, 20% held out
    assert (splits.test, splits.val) == (359, 144) and splits.train == 1797 - 359 - 144
    fe = cost.forward_equivalents(cfg, splits)
    assert fe.train == 20 * splits.train * (2 * 5 + 3)  # PGD-5 training
    # PGD-10 every epoch on the validation split and 180 test images, train-clean on 144
    assert fe.evaluation == 20 * ((144 + 180) * (2 * 10 + 2) + 144)
    assert fe.final == 2 * 359 * (1 + 3 + 21)  # best and last weights: clean, FGSM, PGD-10


def test_a_gpu_study_without_a_gpu_uses_the_flop_model():
    study = load_study(study_file("cifar10_preact18"), check_data=False)
    result = estimate(study, device="cuda", measure=False)
    assert result.trials == 128  # 108 tuning trials, then 2 arms × 10 confirmation seeds
    assert result.gpu_hours == pytest.approx(30.8, rel=0.02)  # the study file's header: 31 at 36% MFU
    assert "assumed 36% MFU" in result.text()
    assert estimate(study, device="cuda", measure=False, mfu=0.18).gpu_hours == pytest.approx(2 * result.gpu_hours)


@pytest.mark.slow
def test_validate_estimate_prints_counts_and_a_measured_time(capsys):
    assert main(["validate", "digits", "--estimate", "--set", *SHRUNK]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("estimate: 4 trials × 2 epochs") and "measured on this machine's CPU" in line


@pytest.mark.slow
def test_a_sweep_estimates_from_the_cached_measurement_and_never_times_training(tmp_path, monkeypatch):
    """A sweep's first line reads what `validate --estimate` measured; without it, it says how to get one."""
    from orchestrator.sweep import estimate as module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    study = load_study(study_file("digits"), SHRUNK)
    unknown = estimate(study, measure=False)
    assert unknown.seconds is None and "validate --estimate" in unknown.text()
    measured = estimate(study)
    assert (tmp_path / "decaylab" / "speed.json").is_file()

    def no_timing(*args, **kwargs):
        raise AssertionError("a sweep timed training")

    monkeypatch.setattr(module, "seconds_per_forward", no_timing)
    cached = estimate(study, measure=False)
    assert cached.seconds == pytest.approx(measured.seconds) and "measured on this machine's CPU" in cached.text()
