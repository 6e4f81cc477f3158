"""The contract every arm keeps, checked for every kind in `trials.arms.KINDS`; and every dataset × network trains.

Every arm: its example section is one valid grid point with a stable trial id and label; a run resumed
from a mid-training checkpoint is bit-identical to an uninterrupted one (CPU); a diverging run is
recorded as `diverged` and stops; a training step reads nothing on the host; its `state_dict` round-trips;
it acts on exactly the parameters `train.decay` names. A kind registered without an entry in `EXAMPLES`
(or a dataset or network without one in `WRITERS` / `ARCHES`) fails `test_every_*_has_an_entry`.
"""

from __future__ import annotations

import copy
import io
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers.datasets import (
    gray_images,
    rgb_images,
    write_cifar10,
    write_cifar100,
    write_flowers102,
    write_mnist_style,
    write_svhn,
    write_tiny_imagenet,
)
from helpers.trial import count_host_reads, rows_equal, same_value, single_thread, small_trial_config

from trials import arms
from trials import data as data_mod
from trials.config import GridPoint, ModelConfig, TrainAttackSpec, TrialConfig, resolved_train_attack
from trials.datasets import DATASETS
from trials.models import build_model, decayed_parameters
from trials.train import build_trainer, run_trial, step, train_epoch, train_step


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


@dataclass(frozen=True)
class Example:
    """A small valid setting of an arm: its study-file section, the trial id and label it must give, and
    whether the arm changes the decayed parameters (their gradients or values) at all."""

    section: dict
    trial_id: str
    label: str
    decays: bool = True
    extra: dict = field(default_factory=dict)  # non-grid fields of the section (schedules)


EXAMPLES: dict[str, Example] = {
    "fixed": Example({"lambda": 5e-3}, "fixed-0.005-lr0.1-s0", "λ=0.005"),
    "adaptive": Example({"lambda_awd": 0.05}, "adaptive-0.05-lr0.1-s0", "λ_awd=0.05"),
    "decoupled": Example({"lambda": 5e-4}, "decoupled-0.0005-lr0.1-s0", "λ=0.0005"),
    "rescale": Example({"lambda": 5e-3, "granularity": "filter"}, "rescale-0.005-filter-init-lr0.1-s0",
                       "λ=0.005, granularity=filter, target=init"),
    "windowed": Example({"lambda": 5e-3, "stop": 0.5}, "windowed-0.005-0-0.5-lr0.1-s0", "λ=0.005, start=0, stop=0.5"),
    "softad": Example({"theta": 0.5}, "softad-0.5-1-lr0.1-s0", "θ=0.5, σ=1", decays=False),
    "reweight": Example({"tau": 1.0}, "reweight-1-lr0.1-s0", "τ=1", decays=False),
    "scheduled": Example({"schedule": "down"}, "scheduled-down-lr0.1-s0", "schedule=down",
                         extra={"schedules": {"down": [2e-2, 5e-3]}}),
}


def test_every_kind_has_an_entry():
    assert set(EXAMPLES) == set(arms.KINDS), "give every registered arm an example setting here"


def test_every_arms_study_section_reads_without_torch():
    """The study reader imports every arm's Grid (and the schema, the config) and must stay fast: no torch."""
    import subprocess
    import sys

    code = ("import sys; import trials.config, trials.schema; from trials import arms\n"
            "for kind in arms.KINDS: arms.grid_class(kind), arms.decay_quantity(kind)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def grid_point(kind: str, lr: float = 0.1) -> GridPoint:
    """The example's single grid point, as the study reader would build it (series included)."""
    example = EXAMPLES[kind]
    grid = arms.grid_class(kind).model_validate({"kind": kind, **example.section, **example.extra})
    (point,) = grid.points()
    return GridPoint(arm=kind, kind=kind, params=point, lr=lr, seed=0, series=grid.series(point))


def tiny(kind: str, lr: float = 0.1, epochs: int = 3, **train) -> TrialConfig:
    """60 digits, batches of 20 (3 steps an epoch), PGD-2, 30 examples per evaluation."""
    base = small_trial_config(epochs=epochs, batch_size=20, data={"subset": 60}, train=train or None,
                              evaluation={"val_examples": 30, "test_examples": 30, "train_examples": 30,
                                          "final_examples": 30})
    attack = base.attack.model_copy(update={
        "train": TrainAttackSpec(kind="pgd", eps=0.2, steps=2, step_size=0.1),
        "eval": base.attack.eval.model_copy(update={"steps": 2})})
    return base.model_copy(update={"point": grid_point(kind, lr), "attack": attack})


def collect(config: TrialConfig, state: dict | None = None) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    final = run_trial(config, lambda row, checkpoint: rows.append(row), state=state, device="cpu")
    return rows, final


def differences(a, b, where: str = "state") -> list[str]:
    """Where two checkpoints (nested dicts, lists, tensors, numbers) differ, bit for bit."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype \
            and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [where]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(map(str, set(a) ^ set(b)))}"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{where}: lengths {len(a)} and {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if same_value(a, b) else [f"{where}: {a!r} != {b!r}"]


# ------------------------------------------------------------------------------- the grid


@pytest.mark.parametrize("kind", arms.KINDS)
def test_example_is_one_grid_point_with_a_stable_id_and_label(kind):
    config, again = tiny(kind), tiny(kind)
    example = EXAMPLES[kind]
    assert config.trial_id == again.trial_id == example.trial_id
    assert config.setting == again.setting == example.label
    assert TrialConfig.from_dict(config.to_dict()).trial_id == example.trial_id, "a stored config keeps its id"
    columns = config.key_columns()
    assert columns["setting"] == example.label and columns["kind"] == kind
    assert all(columns[name] == value for name, value in config.params.items())
    assert not set(config.point.series) & set(columns), "series are not result columns"
    assert set(config.point.series) == set(arms.grid_class(kind).SERIES)


# ---------------------------------------------------------------------------------- resume


@pytest.mark.parametrize("kind", arms.KINDS)
def test_resume_from_a_mid_training_checkpoint_is_bit_identical(kind):
    config = tiny(kind)
    saved = io.BytesIO()
    rows: list[dict] = []

    def report(row: dict, checkpoint: dict) -> None:
        rows.append(row)
        if row["epoch"] == 1:  # through bytes, as the orchestrator's file: nothing may alias the live state
            torch.save(checkpoint, saved)

    full = run_trial(config, report, device="cpu")
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    resumed_rows, resumed = collect(config, state=state)
    assert [r["epoch"] for r in resumed_rows] == [2, 3] and full["status"] == "ok"
    assert rows_equal(resumed_rows, rows[1:]) == []
    assert rows[1]["train_loss"] != rows[2]["train_loss"], "nothing trained: the comparison is vacuous"
    assert differences({k: v for k, v in resumed.items() if k != "train_seconds"},
                       {k: v for k, v in full.items() if k != "train_seconds"}) == []


# ------------------------------------------------------------------------------ divergence


@pytest.mark.parametrize("kind", arms.KINDS)
def test_a_diverging_run_is_recorded_as_diverged_and_stops(kind):
    rows, final = collect(tiny(kind, lr=1e6))
    assert [r["status"] for r in rows] == ["diverged"], "a diverged trial stops at the epoch it diverges"
    assert final["status"] == "diverged" and final["epoch"] == 1 and final["evaluations"] == []
    assert math.isnan(rows[0]["val_robust_acc"]) and math.isnan(rows[0]["val_robust_loss"])


# ------------------------------------------------------------------------------ host reads


@pytest.mark.parametrize("kind", arms.KINDS)
def test_no_host_read_inside_a_training_step(kind):
    config = tiny(kind)
    tr = build_trainer(config, "cpu")
    tr.arm.set_progress(0.0, 0)
    model = tr.model.train()
    x, y = data_mod.to_float(tr.data.train.x[:20]), tr.data.train.y[:20]
    before = [p.detach().clone() for p in model.parameters()]
    with count_host_reads() as counts:
        for _ in range(2):
            train_step(model, tr.optimizer, tr.arm, x, y, resolved_train_attack(config), 0.05,
                       generator=tr.attack_gen)
    assert counts == {}, f"host reads in a training step of {kind}: {dict(counts)}"
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)), "it trained"
    with count_host_reads() as counts:
        train_epoch(tr)
    assert counts == {"tolist": 1}, f"host reads in an epoch of {kind}: {dict(counts)} (only the epoch-end read)"


# ------------------------------------------------------------------------------ state dict


@pytest.mark.parametrize("kind", arms.KINDS)
def test_the_arms_state_dict_round_trips(kind):
    config = tiny(kind)
    a = build_trainer(config, "cpu")
    attack = resolved_train_attack(config)
    x, y = data_mod.to_float(a.data.train.x[:20]), a.data.train.y[:20]

    def one_step(tr, epoch: int) -> None:
        tr.arm.set_progress(epoch / 3, epoch)
        train_step(tr.model.train(), tr.optimizer, tr.arm, x, y, attack, 0.05, 0.5,
                   generator=torch.Generator().manual_seed(epoch))

    one_step(a, 0)
    one_step(a, 1)
    saved = io.BytesIO()
    torch.save({"arm": a.arm.state_dict(), "model": a.model.state_dict(), "optimizer": a.optimizer.state_dict()},
               saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    b = build_trainer(config.model_copy(update={"point": config.point.model_copy(update={"seed": 1})}), "cpu")
    b.model.load_state_dict(state["model"])
    b.optimizer.load_state_dict(state["optimizer"])
    b.arm.load_state_dict(state["arm"])
    assert differences(b.arm.state_dict(), a.arm.state_dict()) == []
    one_step(a, 1)  # the same epoch again: the restored arm must continue exactly as the original
    one_step(b, 1)
    assert differences(b.model.state_dict(), a.model.state_dict()) == []
    assert differences(b.arm.state_dict(), a.arm.state_dict()) == []


# ---------------------------------------------------------------------- decayed parameters


@pytest.mark.parametrize("decay", ["all", "no_bn_bias"])
@pytest.mark.parametrize("kind", arms.KINDS)
def test_the_arm_acts_on_exactly_the_parameters_train_decay_names(kind, decay):
    tr = build_trainer(tiny(kind, decay=decay), "cpu")
    decayed = {id(p) for p in decayed_parameters(tr.model, decay)}
    assert [id(p) for p in tr.arm.params] == [id(p) for p in decayed_parameters(tr.model, decay)]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in tr.model.parameters():  # no zero weights (BatchNorm biases start at 0), a gradient everywhere
            p.copy_(torch.randn(p.shape, generator=gen))
            p.grad = torch.randn(p.shape, generator=gen)
    values = {id(p): p.detach().clone() for p in tr.model.parameters()}
    grads = {id(p): p.grad.clone() for p in tr.model.parameters()}
    tr.arm.set_progress(0.0, 0)
    tr.arm.apply()
    tr.arm.after_step(1.0)
    touched = {id(p) for p in tr.model.parameters()
               if not torch.equal(p.detach(), values[id(p)]) or not torch.equal(p.grad, grads[id(p)])}
    assert touched == (decayed if EXAMPLES[kind].decays else set()), \
        f"{kind} with train.decay {decay} changed {len(touched)} parameters, {len(decayed)} are decayed"
    bn = {id(p) for m in tr.model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    assert (bn <= decayed) == (decay == "all")


# ----------------------------------------------------------------- every dataset × network


def _labels(n: int, classes: int = 10) -> np.ndarray:
    return np.arange(n) % classes


def _mnist(folder: str):
    def write(root: Path, monkeypatch) -> None:
        write_mnist_style(root, folder, gray_images(40, 0), _labels(40), gray_images(10, 1), _labels(10))

    return write


def _cifar(writer):
    def write(root: Path, monkeypatch) -> None:
        writer(root, rgb_images(40, 0), _labels(40), rgb_images(10, 1), _labels(10), monkeypatch)

    return write


def _svhn(root: Path, monkeypatch) -> None:  # SVHN labels digit 0 as 10
    write_svhn(root, rgb_images(40, 0), _labels(40) + 1, rgb_images(10, 1), _labels(10) + 1, monkeypatch)


def _image_folder(root: Path, monkeypatch) -> None:
    write_tiny_imagenet(root, ["n01", "n02"], train_per_class=8, val_per_class=2, size=16)


def _flowers102(root: Path, monkeypatch) -> None:
    labels = np.arange(60) % 3
    write_flowers102(root, labels, {"trnid": list(range(1, 21)), "valid": list(range(21, 41)),
                                    "tstid": list(range(41, 61))})


# dataset → (writer of its files under a root, or None when it needs none; extra data settings)
WRITERS = {
    "digits": (None, {}),
    "mnist": (_mnist("MNIST"), {}),
    "fashion_mnist": (_mnist("FashionMNIST"), {}),
    "cifar10": (_cifar(write_cifar10), {}),
    "cifar100": (_cifar(write_cifar100), {}),
    "svhn": (_svhn, {}),
    "image_folder": (_image_folder, {"image_size": 16, "subset": 4}),
    "flowers102": (_flowers102, {"image_size": 16}),
}
ARCHES = {"small_cnn": {}, "preact_resnet18": {}, "wide_resnet": {"depth": 10, "width": 1}}


def test_every_dataset_and_network_has_an_entry():
    assert set(WRITERS) == set(DATASETS), "give every registered dataset a writer (or None) here"
    assert set(ARCHES) == set(typing.get_args(ModelConfig.model_fields["arch"].annotation))


@pytest.mark.parametrize(("arch", "size", "parameters", "convolutions"), [
    ("preact_resnet18", {}, 11_172_170, 20),  # He et al. 2016's pre-activation net with Rice et al.'s last BN
    ("wide_resnet", {"depth": 28, "width": 10}, 36_479_194, 28),  # Zagoruyko & Komodakis 2016: 36.5M
])
def test_the_published_networks_have_their_published_size(arch, size, parameters, convolutions):
    # the tests train these networks shrunk (depth 10, width 1) or on few images: their full size is checked here
    model = build_model(ModelConfig(arch=arch, **size), DATASETS["cifar10"][0])
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == convolutions
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


# PreAct ResNet-18 (11M parameters) takes seconds a case on 32×32 images: on digits only in the fast suite
CASES = [pytest.param(dataset, arch, marks=pytest.mark.slow if arch == "preact_resnet18" and dataset != "digits"
                      else ()) for dataset in WRITERS for arch in ARCHES]


@pytest.mark.parametrize(("dataset", "arch"), CASES)
def test_one_tiny_epoch_trains_and_evaluates_on_every_dataset_and_network(dataset, arch, tmp_path, monkeypatch):
    writer, extra = WRITERS[dataset]
    if writer is not None:
        writer(tmp_path, monkeypatch)
    data = {"dataset": dataset, "root": None if writer is None else str(tmp_path), "val_fraction": 0.25,
            "subset": 10, **extra}
    base = small_trial_config(epochs=1, batch_size=10, evaluation={
        "val_examples": 4, "test_examples": 4, "train_examples": 4, "final_examples": 4})
    config = base.model_copy(update={
        "data": base.data.model_copy(update=data),
        "model": ModelConfig(arch=arch, **ARCHES[arch]),
        "attack": base.attack.model_copy(update={
            "train": TrainAttackSpec(kind="pgd", eps=0.1, steps=1, step_size=0.1),
            "eval": base.attack.eval.model_copy(update={"steps": 1})})})
    tr = build_trainer(config, "cpu")
    info = tr.data.info
    assert tr.data.train.x.shape[1:] == (info.channels, info.size, info.size)
    before = copy.deepcopy(tr.model.state_dict())
    row, _ = step(tr)
    assert row["status"] == "ok" and tr.steps_per_epoch == 1
    for key in ("train_loss", "train_adv_ce", "val_clean_loss", "test_robust_loss", "train_clean_loss"):
        assert math.isfinite(row[key]), key
    assert all(0.0 <= row[k] <= 1.0 for k in ("val_clean_acc", "test_robust_acc", "train_clean_acc"))
    assert any(not torch.equal(v, tr.model.state_dict()[k]) for k, v in before.items()), "it trained"
    with torch.no_grad():
        assert tr.model.eval()(data_mod.to_float(tr.data.test.x[:2])).shape == (2, info.classes)
    assert {r["checkpoint"] for r in tr.evaluations} == {"best", "last"}
