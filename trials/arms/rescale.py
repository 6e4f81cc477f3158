"""Weight rescaling (WRS) instead of weight decay on the scale-invariant weights, fixed decay on the rest:
after Liu, Cui, Wan, Mao & Chan, "Weight Rescaling: Effective and Robust Regularization for Deep Neural
Networks with Batch Normalization", arXiv 2102.03497 (2021).

In a network with BatchNorm, a conv or linear weight whose output feeds only BatchNorm layers (and which
has no bias) is scale-invariant: scaling it does not change the function, only its effective learning
rate (∝ lr/‖w‖²). Weight decay then acts on such a weight only by shrinking ‖w‖, i.e. by raising the
effective learning rate; WRS fixes the norm instead. What decaylab does, after every optimizer step:

* **rescaled**: each scale-invariant weight (`scale_invariant_weights`: in PreAct ResNet-18 the first
  convolution of each of the 8 blocks; in small_cnn its 3 convolutions) is set back to its target norm,
  per tensor (`granularity: layer`) or per output channel (`filter`). `target: init` (the default) is
  its norm at initialisation, so the first step leaves the effective learning rate where the
  initialisation put it and the arm differs from plain SGD only by holding it there; `target: unit`
  is norm 1, the paper's choice, which also changes the effective learning rate at once (a conv's
  initial norm is far from 1).
* **decayed**: every other parameter that `train.decay` decays — the classifier head, the convolutions
  feeding a residual sum (whose scale matters), BatchNorm's weights and biases under `decay: all` —
  gets the reference coupled decay λ·w in its gradient, exactly as the `fixed` arm (`lambda`, a grid
  axis: give the fixed arm's best λ). These weights are not scale-invariant, so rescaling them would
  change the function; leaving them without decay would compare "WRS" with "no decay at all" on them.

So the arm differs from fixed decay with the same λ only on the scale-invariant weights. Where decaylab's
reading differs from the paper: the paper rescales to the unit norm and does not say what the weights
that are not scale-invariant get (its code was not available to us); decaylab gives them the reference
decay and, by default, rescales to the initial norm. `lambda: 0, target: unit` is decaylab's earlier
reading (no decay at all on the other weights); those trials keep their earlier ids and labels
(`ID_DEFAULTS`). `prescale_norm` logs ‖w‖ of the scale-invariant weights before the rescaling (mean
over the epoch's steps); `lambda_*` log λ; `grad_norm` is over all of `train.decay`'s parameters.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from trials.arms.base import ArmGrid, Hooks, global_norm, torch
from trials.fields import NonNegative, grid, non_negative

TAKES_MODEL = True  # needs the network's structure, not just its parameters


def _granularity(value: str) -> str | None:
    return None if value in ("layer", "filter") else "must be layer or filter"


def _target(value: str) -> str | None:
    return None if value in ("init", "unit") else "must be init or unit"


class Grid(ArmGrid):
    kind: Literal["rescale"]
    lam: grid(NonNegative, non_negative, allow_empty=True) | None = Field(
        None, alias="lambda", description="coupled decay λ ≥ 0 of the weights that are not scale-invariant (head, "
        "convolutions feeding a residual sum, BatchNorm's parameters where train.decay includes them): the fixed "
        "arm's reference λ (0 with target unit: decaylab's earlier reading of the arm, whose trial ids it keeps)")
    granularity: grid(str, _granularity, allow_empty=True) | None = Field(
        ("layer",), description="layer: one norm per weight tensor; filter: one per output channel")
    target: grid(str, _target, allow_empty=True) | None = Field(
        ("init",), description="norm the scale-invariant weights are rescaled to after every step: init, their "
        "norm at initialisation (the effective learning rate stays where it started); unit, norm 1 (the paper's)")
    SYMBOLS: ClassVar[dict[str, str]] = {"lam": "λ"}
    # the arm before `lambda` and `target` existed was λ = 0 and unit norms: at those values a trial keeps the
    # id and label it had then, and a configuration stored then builds the same arm
    ID_DEFAULTS: ClassVar[dict[str, Any]] = {"lam": 0.0, "target": "unit"}
    # λ applies to the weights that are not scale-invariant only: not the fixed arm's quantity
    DECAY_QUANTITY: ClassVar[tuple[str, str] | None] = (
        "λ", "coupled L2 coefficient on the weights that are not scale-invariant")


def scale_invariant_weights(model) -> list:
    """Weights of bias-free conv/linear layers whose output is used only by BatchNorm layers."""
    from torch import fx, nn

    graph = fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    batchnorm = nn.modules.batchnorm._BatchNorm  # noqa: SLF001 - torch's common base of BatchNorm1d/2d/3d
    out = []
    for node in graph.nodes:
        module = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(module, nn.Conv2d | nn.Linear) or module.bias is not None:
            continue
        users = list(node.users)
        if users and all(u.op == "call_module" and isinstance(modules.get(u.target), batchnorm) for u in users):
            out.append(module.weight)
    return out


def _norms(weights: list, granularity: str) -> list:
    """‖w‖ of each tensor (0-d), or of each output channel (a vector), in fp32."""
    if granularity == "layer":
        return list(torch._foreach_norm(weights, 2.0, dtype=torch.float32))  # noqa: SLF001 - one fused kernel
    return [torch.linalg.vector_norm(w.flatten(1), dim=1, dtype=torch.float32) for w in weights]


class WeightRescaling(Hooks):
    def __init__(self, params, model, lam: float, granularity: str, target: str):
        invariant = scale_invariant_weights(model)
        if not invariant:
            raise ValueError("the rescale arm found no scale-invariant weight in the model (a bias-free conv or "
                             "linear layer whose output feeds only BatchNorm)")
        super().__init__(params)  # the decayed parameters of train.decay: `grad_norm` is over all of them
        ids = {id(w) for w in invariant}
        self.invariant = invariant
        self.decayed = [p for p in self.params if id(p) not in ids]
        self.lam, self.granularity, self.target = float(lam), str(granularity), str(target)
        with torch.no_grad():
            norms = _norms([w.detach() for w in invariant], granularity)
            self.targets = norms if target == "init" else [torch.ones_like(n) for n in norms]
        self.coefficient.fill_(self.lam)
        self.prescale_norm = torch.zeros((), device=self.coefficient.device)

    def apply(self):
        with torch.no_grad():
            self.grad_norm = global_norm([p.grad for p in self.params if p.grad is not None])
            pairs = [(p.detach(), p.grad) for p in self.decayed if p.grad is not None]
            if self.lam and pairs:
                torch._foreach_add_([g for _, g in pairs], [w for w, _ in pairs], alpha=self.lam)
        return self.coefficient

    def after_step(self, lr_factor: float) -> None:
        with torch.no_grad():
            weights = [w.detach() for w in self.invariant]
            self.prescale_norm = global_norm(weights)
            norms = _norms(weights, self.granularity)
            torch._foreach_clamp_min_(norms, 1e-12)  # a zero weight (never in practice) stays zero
            scales = torch._foreach_div(self.targets, norms)  # noqa: SLF001 - one fused kernel
            if self.granularity == "filter":
                scales = [s.view(-1, *([1] * (w.dim() - 1))) for s, w in zip(scales, weights, strict=True)]
            torch._foreach_mul_(weights, scales)

    def step_stats(self) -> dict:
        return {"lambda": self.coefficient, "prescale_norm": self.prescale_norm}

    def state_dict(self) -> dict:
        return {"lam": self.lam, "granularity": self.granularity, "target": self.target,
                "targets": [t.detach().clone() for t in self.targets]}

    def load_state_dict(self, state: dict) -> None:
        # a checkpoint of the arm before λ and target existed holds only the granularity: λ = 0, unit norms
        self.lam, self.granularity = float(state.get("lam", 0.0)), str(state["granularity"])
        self.target = str(state.get("target", "unit"))
        if "targets" in state:
            self.targets = [t.to(self.coefficient.device) for t in state["targets"]]
        else:
            self.targets = [torch.ones_like(t) for t in _norms([w.detach() for w in self.invariant], self.granularity)]
        self.coefficient.fill_(self.lam)


def build(params, *, model, lam: float, granularity: str, target: str) -> WeightRescaling:
    return WeightRescaling(params, model, lam, granularity, target)
