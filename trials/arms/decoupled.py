"""Decoupled weight decay (SGDW): Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, Alg. 1.

The SGD-momentum step uses the bare gradient (no decay enters the momentum buffer); then every
decayed parameter shrinks, w ← w·(1 − (lr_t/lr_0)·λ): the decay follows the schedule's
multiplier lr_t/lr_0, not the peak learning rate (as Composer's DecoupledSGDW; PyTorch's AdamW
uses lr_t·λ instead). λ is therefore a per-step shrink at the peak: λ = 5e-5 matches coupled
decay 5e-4 at lr 0.1. decaylab shrinks the weights after the step, as the hook order puts it;
Alg. 1 shrinks the weights of before the step, a difference of lr_t·λ times the update.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from trials.arms.base import ArmGrid, Hooks, torch
from trials.fields import NonNegative, grid, non_negative


class Grid(ArmGrid):
    kind: Literal["decoupled"]
    lam: grid(NonNegative, non_negative, allow_empty=True) | None = Field(
        None, alias="lambda", description="per-step shrink λ at the peak learning rate (5e-5 ≈ coupled 5e-4 at lr 0.1)")
    SYMBOLS: ClassVar[dict[str, str]] = {"lam": "λ"}
    # logged per step: the shrink actually applied, λ·lr_t/lr_0 (not comparable with a coupled λ)
    DECAY_QUANTITY: ClassVar[tuple[str, str] | None] = ("λ·lr_t/lr_0", "per-step shrink factor")


class DecoupledWeightDecay(Hooks):
    def __init__(self, params, lam: float):
        super().__init__(params)
        self.lam = float(lam)

    def after_step(self, lr_factor: float) -> None:
        shrink = lr_factor * self.lam
        self.coefficient.fill_(shrink)
        if shrink:
            with torch.no_grad():
                torch._foreach_mul_([p.detach() for p in self.params], 1.0 - shrink)

    def state_dict(self) -> dict:
        return {"lam": self.lam}

    def load_state_dict(self, state: dict) -> None:
        self.lam = float(state["lam"])


def build(params, *, lam: float) -> DecoupledWeightDecay:
    return DecoupledWeightDecay(params, lam)
