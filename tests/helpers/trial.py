"""Shared helpers of the trials/ tests: configs, a small trained trial, host-sync counting.

Kept out of conftest.py on purpose; test modules import it by name (`from trial_helpers import ...`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
from collections import Counter
from collections.abc import Iterator

import numpy as np
import torch

from orchestrator.study.load import study_from_dict
from orchestrator.study.plan import expand_grid
from trials.config import ModelConfig, TrialConfig
from trials.data import DATASETS
from trials.models import build_model
from trials.train import run_trial

# Tensor methods that copy a value to the host (a device synchronisation on an accelerator).
HOST_READS = ("item", "cpu", "tolist", "numpy", "__float__", "__bool__", "__int__", "__index__")

DIGITS = DATASETS["digits"][0]

# The small adversarial-training setting of the end-to-end tests (digits are 8x8 in [0, 1]).
TRAIN_ATTACK = {"kind": "pgd", "eps": 0.2, "steps": 3, "step_size": 0.1}
EVAL_ATTACK = {"kind": "pgd", "steps": 5}


def study_dict(*, kind: str = "fixed", value: float = 5e-4, lr: float = 0.1, seed: int = 0,
               epochs: int = 5, batch_size: int = 32, data: dict | None = None, train: dict | None = None,
               evaluation: dict | None = None, label_noise: float = 0.0) -> dict:
    """A one-trial study file (as parsed YAML) over digits."""
    arm = {"kind": kind, "lambda" if kind == "fixed" else "lambda_awd": [value]}
    return {
        "name": "test",
        "data": {"dataset": "digits", "label_noise": [label_noise], **(data or {})},
        "model": {"arch": "small_cnn"},
        "train": {"epochs": epochs, "batch_size": batch_size, "schedule": "cosine", **(train or {})},
        "attack": {"train": dict(TRAIN_ATTACK), "eval": dict(EVAL_ATTACK)},
        "eval": {"every": 1, **(evaluation or {})},
        "methods": {"wd" if kind == "fixed" else "awd": arm},
        "lr": [lr],
        "seeds": [seed],
    }


def trial_config(**kwargs) -> TrialConfig:
    """The single TrialConfig of `study_dict(**kwargs)`, built the way a sweep builds it."""
    (config,) = expand_grid(study_from_dict(study_dict(**kwargs), "test"))
    return config


def small_trial_config(**kwargs) -> TrialConfig:
    """A cheap trial: 200 training examples, 100 val/test examples per evaluation."""
    kwargs.setdefault("data", {"subset": 200})
    kwargs.setdefault("evaluation", {"val_examples": 100, "test_examples": 100, "train_examples": 100})
    return trial_config(**kwargs)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread: faster for these tiny models and bit-reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def trained_trial() -> tuple[TrialConfig, list[dict], dict]:
    """(config, rows, final checkpoint) of 5 epochs of PGD training on all of digits (~5 s, run once)."""
    config = trial_config(epochs=5, lr=0.1)
    rows: list[dict] = []
    with single_thread():
        final = run_trial(config, lambda row, state: rows.append(row), device="cpu")
    return config, rows, final


@contextlib.contextmanager
def count_host_reads(raise_on_call: bool = False) -> Iterator[Counter]:
    """Count (or forbid) calls of the tensor methods in HOST_READS inside the block."""
    counts: Counter = Counter()
    own = {name: name in vars(torch.Tensor) for name in HOST_READS}
    saved = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def spy(name, original):
        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            counts[name] += 1
            if raise_on_call:
                raise AssertionError(f"host read: Tensor.{name}")
            return original(*args, **kwargs)

        return wrapper

    try:
        for name, original in saved.items():
            setattr(torch.Tensor, name, spy(name, original))
        yield counts
    finally:
        for name, original in saved.items():
            if own[name]:
                setattr(torch.Tensor, name, original)
            else:  # inherited from torch._C.TensorBase: drop the spy to uncover it again
                delattr(torch.Tensor, name)


def example_multiset(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> Counter:
    """The (image bytes, label) pairs of a split as a multiset (digits has duplicate images)."""
    x = x.numpy() if isinstance(x, torch.Tensor) else x
    y = y.numpy() if isinstance(y, torch.Tensor) else y
    return Counter((hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest(), int(label))
                   for img, label in zip(x, y, strict=True))


def same_value(a, b) -> bool:
    """Equality where NaN equals NaN (rows carry NaN for metrics not measured)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def rows_equal(a: list[dict], b: list[dict], ignore: tuple[str, ...] = ("epoch_seconds",)) -> list[str]:
    """Differences between two lists of result rows, as readable strings (empty = equal)."""
    problems = [] if len(a) == len(b) else [f"{len(a)} rows vs {len(b)} rows"]
    for ra, rb in zip(a, b, strict=False):
        if set(ra) != set(rb):
            problems.append(f"epoch {ra.get('epoch')}: columns differ: {set(ra) ^ set(rb)}")
        for key in sorted(set(ra) & set(rb) - set(ignore)):
            if not same_value(ra[key], rb[key]):
                problems.append(f"epoch {ra.get('epoch')}: {key} {ra[key]!r} != {rb[key]!r}")
    return problems


def small_cnn(seed: int = 0) -> torch.nn.Module:
    """The digits-sized network, seeded."""
    torch.manual_seed(seed)
    return build_model(ModelConfig(arch="small_cnn"), DIGITS)
