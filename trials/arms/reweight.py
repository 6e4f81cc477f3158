"""Instance reweighting by a KL-regularised worst case over the batch, after "Doubly Robust Instance-Reweighted
Adversarial Training" (DONE; Sow, Lin, Wang & Liang, ICLR 2024, openreview.net/forum?id=OF5x1dzWSS).

No weight decay. The per-example adversarial losses ℓᵢ of a batch of B (cross-entropy on x_adv, or the
TRADES loss) are combined with weights on the simplex,

    wᵢ = exp(ℓᵢ/τ) / Σⱼ exp(ℓⱼ/τ),     L = Σᵢ wᵢ·ℓᵢ,

the closed-form maximiser of the KL-regularised distributionally robust objective
max_w Σᵢ wᵢℓᵢ − τ·KL(w ‖ uniform) over the batch. The weights are computed from the detached losses
(a stop-gradient: ∂L/∂ℓᵢ = wᵢ) through the log-sum-exp (exp(ℓᵢ/τ − logsumexp(ℓ/τ)), finite for any
loss scale). τ > 0 is the grid axis: τ → ∞ gives uniform weights (plain adversarial training, the mean),
τ → 0 puts all the weight on the batch's worst example.

Where decaylab's reading differs: DONE treats the weights as the solution of the same KL-regularised
problem over the whole training set and estimates them with its own compositional, bilevel algorithm
(Compositional Implicit Differentiation, with a penalised log-barrier); that estimator is not reproduced.
decaylab solves the problem exactly per mini-batch, in closed form, which is the per-batch softmax above.

`weight_concentration` logs B·maxᵢ wᵢ per step (1 = uniform weights, B = one example carries the batch),
averaged over the epoch's steps; `train_loss` is L, `train_adv_ce` the unweighted mean.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from trials.arms.base import ArmGrid, Hooks, torch
from trials.fields import Positive, grid, positive


class Grid(ArmGrid):
    kind: Literal["reweight"]
    tau: grid(Positive, positive, allow_empty=True) | None = Field(
        None, description="temperature τ > 0 of the instance weights wᵢ ∝ exp(ℓᵢ/τ) (large τ: the plain mean; "
        "small τ: the batch's worst examples; robust cross-entropy is near 1, so e.g. 0.5–5)")
    SYMBOLS: ClassVar[dict[str, str]] = {"tau": "τ"}
    DECAY_QUANTITY: ClassVar[tuple[str, str] | None] = None  # no decay: lambda_* are 0


def instance_weights(per_example, tau: float):
    """wᵢ = exp(ℓᵢ/τ − logsumexp(ℓ/τ)) from the detached losses (they sum to 1; no gradient flows through them)."""
    z = per_example.detach().float() / tau
    return torch.exp(z - torch.logsumexp(z, 0))


def reweighted_loss(per_example, tau: float):
    """Σᵢ wᵢ·ℓᵢ with the stop-gradient weights of `instance_weights`."""
    return (instance_weights(per_example, tau).to(per_example.dtype) * per_example).sum()


class InstanceReweighting(Hooks):
    def __init__(self, params, tau: float):
        super().__init__(params)
        self.tau = float(tau)
        self.concentration = torch.ones((), device=self.coefficient.device)

    def loss(self, per_example):
        weights = instance_weights(per_example, self.tau)
        self.concentration = weights.max() * weights.shape[0]  # stays on the device
        return (weights.to(per_example.dtype) * per_example).sum()

    def step_stats(self) -> dict:
        return {"lambda": self.coefficient, "weight_concentration": self.concentration}

    def state_dict(self) -> dict:
        return {"tau": self.tau}

    def load_state_dict(self, state: dict) -> None:
        self.tau = float(state["tau"])


def build(params, *, tau: float) -> InstanceReweighting:
    return InstanceReweighting(params, tau)
