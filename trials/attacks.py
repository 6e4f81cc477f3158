"""L∞ attacks in pixel scale ([0, 1] inputs). Gradients only w.r.t. the perturbation.

`torch.autograd.grad(loss, delta)` lets autograd skip every weight-gradient kernel, so one
attack step costs a forward and an input-only backward — the (2K+3) forward-equivalents per
PGD-K training step of ANCHORS.md — and `p.grad` of the weights is never touched.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, step_size: float, steps: int,
        random_start: bool = True, generator: torch.Generator | None = None,
        autocast: contextlib.AbstractContextManager | None = None) -> torch.Tensor:
    """Projected gradient descent on the cross-entropy, within the L∞ ε-ball and [0, 1].

    The model's train/eval mode is left as found (callers choose: train mode while training,
    eval mode for evaluation). Returns detached adversarial inputs.
    """
    x = x.detach()
    if random_start:
        delta = torch.empty_like(x).uniform_(-eps, eps, generator=generator)
        delta = (x + delta).clamp_(0, 1) - x
    else:
        delta = torch.zeros_like(x)
    ctx = autocast or contextlib.nullcontext()
    for _ in range(steps):
        delta.requires_grad_(True)
        with torch.enable_grad(), ctx:
            loss = F.cross_entropy(model(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = delta + step_size * grad.sign()
            # project onto the ε-ball, then onto the image box [0, 1]
            delta = delta.clamp(-eps, eps)
            delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def fgsm_rs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, step_size: float,
            generator: torch.Generator | None = None,
            autocast: contextlib.AbstractContextManager | None = None) -> torch.Tensor:
    """FGSM from a random start (Wong, Rice & Kolter 2020, "Fast is better than free")."""
    return pgd(model, x, y, eps=eps, step_size=step_size, steps=1, random_start=True,
               generator=generator, autocast=autocast)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
         autocast: contextlib.AbstractContextManager | None = None) -> torch.Tensor:
    """Plain FGSM (one step of size ε from x) — the weak reference for sanity checks."""
    return pgd(model, x, y, eps=eps, step_size=eps, steps=1, random_start=False, autocast=autocast)


@contextlib.contextmanager
def frozen_weights(model: nn.Module):
    """Temporarily stop the weights from requiring grad: the attack graph then saves no
    activations for weight gradients (less memory) and nothing can touch `p.grad`."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def trades_attack(model: nn.Module, x: torch.Tensor, *, eps: float, step_size: float, steps: int,
                  generator: torch.Generator | None = None,
                  autocast: contextlib.AbstractContextManager | None = None) -> torch.Tensor:
    """TRADES' inner maximisation (Zhang et al. 2019): PGD on KL(p(x) ‖ p(x + δ)) from δ = 0.001·N(0, I),
    with the model in eval mode (its mode is restored afterwards). Returns detached inputs."""
    ctx = autocast or contextlib.nullcontext()
    was_training = model.training
    model.eval()
    x = x.detach()
    with torch.no_grad(), ctx:
        p_clean = F.softmax(model(x).float(), dim=1)
    delta = 0.001 * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    for _ in range(steps):
        delta.requires_grad_(True)
        with torch.enable_grad(), ctx:
            kl = F.kl_div(F.log_softmax(model(x + delta).float(), dim=1), p_clean, reduction="sum")
        (grad,) = torch.autograd.grad(kl, delta)
        with torch.no_grad():
            delta = (delta + step_size * grad.sign()).clamp(-eps, eps)
            delta = (x + delta).clamp(0, 1) - x
    model.train(was_training)
    return (x + delta).detach()


def attack_batch(kind: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                 step_size: float, steps: int, random_start: bool = True,
                 generator: torch.Generator | None = None,
                 autocast: contextlib.AbstractContextManager | None = None, freeze: bool = True) -> torch.Tensor:
    """Dispatch on the configured attack kind; `none` returns the clean inputs.

    `freeze` stops the weights from requiring grad during the attack (less memory); a compiled
    model is attacked unfrozen (toggling requires_grad would recompile it), which computes the
    same thing, since the attack differentiates only w.r.t. δ.
    """
    if kind == "none":
        return x
    with frozen_weights(model) if freeze else contextlib.nullcontext():
        if kind == "pgd":
            return pgd(model, x, y, eps=eps, step_size=step_size, steps=steps, random_start=random_start,
                       generator=generator, autocast=autocast)
        if kind == "fgsm_rs":
            return fgsm_rs(model, x, y, eps=eps, step_size=step_size, generator=generator, autocast=autocast)
    raise ValueError(f"unknown attack kind {kind!r}")
