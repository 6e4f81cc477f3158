"""Adaptive weight decay (AWD), Ghiasi, Shafahi & Ardekani, NeurIPS 2023, Algorithm 1.

λ is recomputed every step so that ‖λ̄·w‖ / ‖g‖ stays near λ_awd:
λ = λ_awd·‖g‖/‖w‖ (one global norm over the decayed parameters), λ̄ ← avg·λ̄ + (1 − avg)·λ, and
λ̄·w is added to the gradient (coupled, like fixed decay). g is the gradient of the whole
training loss: cross-entropy on the adversarial batch, or the TRADES loss under
`attack.train.objective: trades`. Algorithm 1 uses avg = 0.1 (the new value gets weight 0.9),
decaylab's default; `avg` is a grid axis so the smoothing can be studied, and at 0.1 it is left
out of trial ids and labels (the ids of runs made before it existed stay valid).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from trials.arms.base import ArmGrid
from trials.fields import Number, Positive, fraction, grid, positive


class Grid(ArmGrid):
    kind: Literal["adaptive"]
    lambda_awd: grid(Positive, positive, allow_empty=True) | None = Field(
        None, description="target ratio λ_awd = ‖λ̄·w‖ / ‖g‖ > 0 (re-implementations use ≈ 0.022)")
    avg: grid(Number, fraction, allow_empty=True) | None = Field(
        (0.1,), description="smoothing constant of λ̄ ← avg·λ̄ + (1 − avg)·λ in [0, 1): the weight of the previous "
        "λ̄ (Algorithm 1: 0.1; 0 = no smoothing); left out of trial ids and labels at 0.1")
    SYMBOLS: ClassVar[dict[str, str]] = {"lambda_awd": "λ_awd"}
    ID_DEFAULTS: ClassVar[dict[str, Any]] = {"avg": 0.1}
    # λ̄, the coefficient Algorithm 1 applies (g ← g + λ̄·w), is a coupled L2 coefficient like fixed decay's λ:
    # one axis with the fixed, windowed and scheduled arms (the scheduled arm replays it)
    DECAY_QUANTITY: ClassVar[tuple[str, str] | None] = ("λ", "coupled L2 coefficient")


def build(params, *, lambda_awd: float, avg: float):
    from trials.weight_decay import AdaptiveWeightDecay

    return AdaptiveWeightDecay(params, lambda_awd, avg)
