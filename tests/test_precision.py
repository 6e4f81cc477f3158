"""The GPU-path options (bf16 autocast, channels_last, torch.compile) exercised on the CPU."""

from __future__ import annotations

import math

import pytest
import torch

from bench.common import synthetic_data, trial
from orchestrator.spec import expand_grid, study_from_dict
from trials.train import build_trainer, run_trial

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


def conv_input_layouts(tr) -> list[tuple[int, int, bool]]:
    """(input channels, map pixels, channels_last?) of each Conv2d input in one forward of `tr`'s model,
    its input in the layout the trainer gives it."""
    model = tr.model
    seen: list[tuple[int, int, bool]] = []
    handles = [m.register_forward_hook(
        lambda m, args, out: seen.append((args[0].shape[1], args[0].shape[-2] * args[0].shape[-1],
                                          args[0].is_contiguous(memory_format=torch.channels_last))))
               for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    model(torch.rand(2, 3, 32, 32).contiguous(memory_format=torch.channels_last if tr.channels_last
                                              else torch.contiguous_format))
    for h in handles:
        h.remove()
    return seen


def preact18_trainer(channels_last):
    cfg = trial(arch="preact_resnet18", dataset="cifar10", batch_size=8, steps=1, eps=8 / 255,
                channels_last=channels_last)
    return build_trainer(cfg, "cpu", data=synthetic_data(8))


def test_unset_channels_last_gives_each_cpu_convolution_the_layout_it_runs_faster_in():
    layouts = conv_input_layouts(preact18_trainer(None))
    assert len(layouts) == 20  # the stem, 16 in the blocks, 3 shortcuts
    # channels_last up to 128 input channels or from 16×16 up; NCHW for 256 and 512 channels on 8×8 and 4×4
    assert {(c, px) for c, px, cl in layouts if not cl} == {(256, 64), (512, 16)}
    assert any(cl for c, px, cl in layouts if c == 128 and px == 256)  # the first 256-channel block's input
    assert all(not cl for *_, cl in conv_input_layouts(preact18_trainer(False)))
    assert all(cl for *_, cl in conv_input_layouts(preact18_trainer(True)))


def test_per_convolution_layouts_compute_what_nchw_computes():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    plain, mixed = preact18_trainer(False).model.eval(), preact18_trainer(None).model.eval()
    mixed.load_state_dict(plain.state_dict())
    x_plain, x_mixed = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_plain, out_mixed = plain(x_plain), mixed(x_mixed)
    torch.testing.assert_close(out_mixed, out_plain, rtol=1e-4, atol=1e-5)
    (g_plain,) = torch.autograd.grad(out_plain.sum(), x_plain)
    (g_mixed,) = torch.autograd.grad(out_mixed.sum(), x_mixed)
    torch.testing.assert_close(g_mixed, g_plain, rtol=1e-4, atol=1e-5)
