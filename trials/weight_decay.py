"""Fixed and adaptive weight decay, applied to the gradients between `backward()` and `step()`.

Both arms add `λ·w` to `p.grad` (coupled decay, through SGD's momentum buffer, exactly like
`torch.optim.SGD(weight_decay=λ)`), on the same parameter set, so they differ only in λ.
AWD (Ghiasi, Shafahi & Ardekani, NeurIPS 2023, Algorithm 1) recomputes λ every step:

    λ  = λ_awd · ‖g‖₂ / ‖w‖₂        (one global norm over all decayed parameters)
    λ̄ ← avg·λ̄ + (1 − avg)·λ        (avg = 0.1: the NEW value gets weight 0.9)
    g ← g + λ̄·w

λ̄ stays a 0-d tensor on the parameters' device: no host synchronisation per step. Both are
the step hooks of the `fixed` and `adaptive` arms (`trials.arms`); they keep this public form.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from trials.arms.base import Hooks, global_norm

__all__ = ["AdaptiveWeightDecay", "FixedWeightDecay", "global_norm"]


def _with_grads(params: list[torch.nn.Parameter]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    pairs = [(p, p.grad) for p in params if p.grad is not None]
    return [p.detach() for p, _ in pairs], [g for _, g in pairs]


class FixedWeightDecay(Hooks):
    """Coupled L2 decay with a constant λ (bit-identical to `SGD(weight_decay=λ)`)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lam: float):
        super().__init__(params)
        self.lam = float(lam)
        self.lam_bar = self.coefficient.fill_(self.lam)  # ‖g‖ before decay goes to `grad_norm`

    @torch.no_grad()
    def apply(self) -> torch.Tensor:
        weights, grads = _with_grads(self.params)
        self.grad_norm = global_norm(grads)
        if self.lam and grads:
            torch._foreach_add_(grads, weights, alpha=self.lam)
        return self.lam_bar

    def state_dict(self) -> dict:
        return {"lam": self.lam}

    def load_state_dict(self, state: dict) -> None:
        self.lam = float(state["lam"])
        self.lam_bar.fill_(self.lam)


class AdaptiveWeightDecay(Hooks):
    """Adaptive weight decay: keeps ‖λ̄w‖ / ‖g‖ ≈ λ_awd (Algorithm 1 of the paper)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lambda_awd: float, avg: float = 0.1):
        super().__init__(params)
        self.lambda_awd = float(lambda_awd)
        self.avg = float(avg)
        self.lam_bar = self.coefficient

    @torch.no_grad()
    def apply(self) -> torch.Tensor:
        weights, grads = _with_grads(self.params)
        if not grads:
            return self.lam_bar
        self.grad_norm = global_norm(grads)
        # clamp: a zero weight norm (never in practice) must not make λ infinite
        lam = self.lambda_awd * self.grad_norm / global_norm(weights).clamp_min(1e-12)
        self.lam_bar.mul_(self.avg).add_(lam.to(self.lam_bar.dtype), alpha=1.0 - self.avg)
        # λ̄ is a tensor (no host read), so `add_(w, alpha=λ̄)` is not available: one fused λ̄·w
        torch._foreach_add_(grads, torch._foreach_mul(weights, self.lam_bar))  # noqa: SLF001 - fused
        return self.lam_bar

    def state_dict(self) -> dict:
        return {"lam_bar": self.lam_bar.detach().clone(), "lambda_awd": self.lambda_awd, "avg": self.avg}

    def load_state_dict(self, state: dict) -> None:
        self.lam_bar.copy_(state["lam_bar"])
        self.lambda_awd = float(state["lambda_awd"])
        self.avg = float(state["avg"])
