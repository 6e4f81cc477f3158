"""decaylab's SGD: torch.optim.SGD's update bit for bit, its checkpoints interchangeable, no compiler import."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from trial_helpers import small_cnn

from trials.optim import SGD

LRS = (0.1, 0.1, 0.05, 0.05, 0.01, 0.01)


def gradients(model: torch.nn.Module, step: int) -> None:
    """Deterministic gradients of a batch seeded by `step`; the last layer gets none on odd steps (a frozen
    or unused parameter must keep its weights and its momentum)."""
    gen = torch.Generator().manual_seed(step)
    x = torch.rand(8, 1, 8, 8, generator=gen)
    y = torch.randint(0, 10, (8,), generator=gen)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    if step % 2:
        list(model.parameters())[-1].grad = None


def train(model: torch.nn.Module, optimizer, lrs=LRS, first_step: int = 0) -> None:
    for i, lr in enumerate(lrs, start=first_step):
        optimizer.zero_grad(set_to_none=True)
        gradients(model, i)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()


def assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("foreach", [False, True])
def test_the_update_is_torch_sgds_bit_for_bit(nesterov, foreach):
    ours, theirs = small_cnn(), small_cnn()
    train(ours, SGD(ours.parameters(), lr=0.1, momentum=0.9, nesterov=nesterov))
    train(theirs, torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, nesterov=nesterov, foreach=foreach))
    assert_same(ours, theirs)
    assert not all(torch.equal(p, q) for p, q in zip(ours.parameters(), small_cnn().parameters(), strict=True))


def test_without_momentum_it_is_plain_gradient_descent():
    ours, theirs = small_cnn(), small_cnn()
    optimizer = SGD(ours.parameters(), lr=0.1)
    train(ours, optimizer)
    train(theirs, torch.optim.SGD(theirs.parameters(), lr=0.1))
    assert_same(ours, theirs)
    assert optimizer.state_dict()["state"] == {}


@pytest.mark.parametrize("direction", ["torch → ours", "ours → torch"])
def test_checkpoints_of_either_resume_in_the_other(direction):
    """An optimizer state saved by one class after three steps continues in the other exactly as an
    uninterrupted run of six (checkpoints written before decaylab had its own SGD still resume)."""
    build = {"torch": lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True),
             "ours": lambda m: SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True)}
    first, second = (side.strip() for side in direction.split("→"))
    reference = small_cnn()
    train(reference, build["torch"](reference))
    model = small_cnn()
    optimizer = build[first](model)
    train(model, optimizer, LRS[:3])
    state = torch.load(_saved(optimizer.state_dict()), weights_only=True)
    optimizer = build[second](model)
    optimizer.load_state_dict(state)
    train(model, optimizer, LRS[3:], first_step=3)
    assert_same(model, reference)


def _saved(state: dict) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def test_a_state_of_other_parameters_or_other_arithmetic_is_refused():
    optimizer = SGD(small_cnn().parameters(), lr=0.1, momentum=0.9)
    other = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="parameters"):
        optimizer.load_state_dict(other.state_dict())
    decayed = torch.optim.SGD(small_cnn().parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    with pytest.raises(ValueError, match="weight decay"):
        optimizer.load_state_dict(decayed.state_dict())


def test_training_a_trial_does_not_import_the_compiler():
    """The reason this class exists: a torch optimizer imports torch._dynamo (1.7–1.9 s of a core) in every
    process that trains. A whole trial (epoch, evaluations, checkpoint), from a fresh process, must not."""
    code = textwrap.dedent("""
        import sys
        from trial_helpers import small_trial_config
        from trials.train import run_trial
        run_trial(small_trial_config(epochs=1), lambda row, state: None, device="cpu")
        print("torch._dynamo" in sys.modules)
    """)
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": f"{root / 'tests'}{os.pathsep}{root}"})
    assert out.stdout.strip() == "False"
