"""SoftAD, soft ascent-descent: Holland & Nakatani, "Soft ascent-descent as a stable and flexible alternative
to flooding", NeurIPS 2024, arXiv 2310.10006 (official code: github.com/feedbackward/bdd-flood).

No weight decay at all: the per-example training losses ℓᵢ (cross-entropy of the adversarial
batch, or the TRADES loss) are combined as

    L = θ + σ²·meanᵢ ρ((ℓᵢ − θ)/σ),   ρ(x) = √(1 + x²) − 1,

so examples whose loss is below the threshold θ are pushed up (ascent) and those above it down,
softly (ρ′(x) = x/√(1 + x²) ∈ (−1, 1)): a smaller model norm without any decay term. θ is the
grid axis (robust cross-entropy sits near 1, so e.g. 0.1–1.5); σ = 1 by default. The attack
still maximises the plain cross-entropy. The epoch's `train_loss` is L, `train_adv_ce` the plain
cross-entropy of the same adversarial examples.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from trials.arms.base import ArmGrid, Hooks, torch
from trials.fields import NonNegative, Positive, grid, non_negative, positive


class Grid(ArmGrid):
    kind: Literal["softad"]
    theta: grid(NonNegative, non_negative, allow_empty=True) | None = Field(
        None, description="loss threshold θ ≥ 0 (robust cross-entropy is near 1: try 0.1–1.5)")
    sigma: grid(Positive, positive, allow_empty=True) | None = Field((1.0,), description="scale σ > 0")
    SYMBOLS: ClassVar[dict[str, str]] = {"theta": "θ", "sigma": "σ"}
    DECAY_QUANTITY: ClassVar[tuple[str, str] | None] = None  # no decay: lambda_* are 0


def soft_ascent_descent(per_example, theta: float, sigma: float):
    """θ + σ²·mean ρ((ℓ − θ)/σ) with ρ(x) = √(1 + x²) − 1."""
    x = (per_example - theta) / sigma
    return theta + sigma**2 * (torch.sqrt(1.0 + x * x) - 1.0).mean()


class SoftAD(Hooks):
    def __init__(self, params, theta: float, sigma: float):
        super().__init__(params)
        self.theta, self.sigma = float(theta), float(sigma)

    def loss(self, per_example):
        return soft_ascent_descent(per_example, self.theta, self.sigma)

    def state_dict(self) -> dict:
        return {"theta": self.theta, "sigma": self.sigma}

    def load_state_dict(self, state: dict) -> None:
        self.theta, self.sigma = float(state["theta"]), float(state["sigma"])


def build(params, *, theta: float, sigma: float) -> SoftAD:
    return SoftAD(params, theta, sigma)
