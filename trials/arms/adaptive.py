"""Adaptive weight decay (AWD), Ghiasi, Shafahi & Ardekani, NeurIPS 2023, Algorithm 1.

λ is recomputed every step so that ‖λ̄·w‖ / ‖g‖ stays near λ_awd:
λ = λ_awd·‖g‖/‖w‖ (one global norm over the decayed parameters), λ̄ ← 0.1·λ̄ + 0.9·λ, and
λ̄·w is added to the gradient (coupled, like fixed decay). g is the gradient of the whole
training loss: cross-entropy on the adversarial batch, or the TRADES loss under
`attack.train.objective: trades`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from trials.arms.base import ArmGrid
from trials.checks import Positive, grid, positive

KIND = "adaptive"


class Grid(ArmGrid):
    kind: Literal["adaptive"]
    lambda_awd: grid(Positive, positive, allow_empty=True) | None = Field(
        None, description="target ratio λ_awd = ‖λ̄·w‖ / ‖g‖ > 0 (re-implementations use ≈ 0.022)")
    SYMBOLS: ClassVar[dict[str, str]] = {"lambda_awd": "λ_awd"}


def build(params, *, lambda_awd: float):
    from trials.weight_decay import AdaptiveWeightDecay

    return AdaptiveWeightDecay(params, lambda_awd)
