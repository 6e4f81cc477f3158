"""The GPU-path options (bf16 autocast, channels_last, torch.compile) exercised on the CPU."""

from __future__ import annotations

import math

import pytest

from orchestrator.study.load import study_from_dict
from orchestrator.study.plan import expand_grid
from trials.train import run_trial

SMALL = {"name": "p", "data": {"subset": 200}, "train": {"epochs": 1, "batch_size": 50},
         "attack": {"train": {"kind": "pgd", "eps": 0.2, "steps": 2, "step_size": 0.1}, "eval": {"steps": 2}},
         "eval": {"val_examples": 60, "test_examples": 60},
         "methods": {"awd": {"kind": "adaptive", "lambda_awd": [0.02]}}, "lr": [0.05]}


def one_epoch(**train) -> dict:
    study = study_from_dict({**SMALL, "train": {**SMALL["train"], **train}}, "t")
    rows: list[dict] = []
    run_trial(expand_grid(study)[0], lambda row, state: rows.append(row), device="cpu")
    return rows[0]


def test_bf16_autocast_and_channels_last_train_on_cpu():
    fp32 = one_epoch()
    bf16 = one_epoch(precision="bf16", channels_last=True)
    for key in ("train_loss", "grad_norm", "lambda_mean", "val_clean_acc", "test_robust_acc", "weight_norm"):
        assert math.isfinite(bf16[key]), key
    # same initialisation and data: bf16 only perturbs the arithmetic, so the epoch stays close
    assert abs(bf16["train_loss"] - fp32["train_loss"]) < 0.05 * fp32["train_loss"]
    assert bf16["status"] == "ok"


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one():
    eager = one_epoch()
    compiled = one_epoch(compile=True)
    assert compiled["status"] == "ok"
    assert abs(compiled["train_loss"] - eager["train_loss"]) < 1e-2 * eager["train_loss"]
    assert abs(compiled["weight_norm"] - eager["weight_norm"]) < 1e-3 * eager["weight_norm"]
