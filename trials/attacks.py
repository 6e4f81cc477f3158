"""L∞ attacks in pixel scale ([0, 1] inputs). Gradients only w.r.t. the adversarial input.

`torch.autograd.grad(loss, x_adv)` lets autograd skip every weight-gradient kernel, so one
attack step costs a forward and an input-only backward: a PGD-K training step costs about
2K+3 forward-equivalents (K forwards and K input-only backwards, then a forward and a full
backward), and `p.grad` of the weights is never touched.
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
    lo, hi = box(x, eps)
    if random_start:
        x_adv = (x + torch.empty_like(x).uniform_(-eps, eps, generator=generator)).clamp_(lo, hi)
    else:
        x_adv = x.clone()  # the steps update x_adv in place: never the caller's storage
    ctx = autocast or contextlib.nullcontext()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad(), ctx:
            loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        # the graph is freed, so x_adv's storage can take the step: three ops, no allocation
        x_adv = x_adv.detach().add_(grad.sign_(), alpha=step_size).clamp_(lo, hi)
    return x_adv


def box(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The ε-ball around x intersected with the image box [0, 1], as per-pixel bounds (lo, hi).

    Computed once per batch, so projecting a step onto both sets is one clamp:
    clamp(clamp(x + δ, x − ε, x + ε), 0, 1) = clamp(x + δ, max(x − ε, 0), min(x + ε, 1)).
    """
    return (x - eps).clamp_(min=0), (x + eps).clamp_(max=1)


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
    lo, hi = box(x, eps)
    with torch.no_grad(), ctx:
        p_clean = F.softmax(model(x).float(), dim=1)
    x_adv = x + 0.001 * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad(), ctx:
            kl = F.kl_div(F.log_softmax(model(x_adv).float(), dim=1), p_clean, reduction="sum")
        (grad,) = torch.autograd.grad(kl, x_adv)
        x_adv = x_adv.detach().add_(grad.sign_(), alpha=step_size).clamp_(lo, hi)
    model.train(was_training)
    return x_adv.detach()


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
