"""Weight rescaling (WRS) instead of weight decay: Liu, Cui, Wan et al., arXiv 2102.03497 (2021).

In a network with BatchNorm, a conv or linear weight whose output feeds only a BatchNorm (and
which has no bias) is scale-invariant: scaling it does not change the function, only the
effective learning rate. WRS rescales such weights to the unit norm instead of decaying them.
The paper's method section was not available to us; this is decaylab's reading of "rescale to
the unit norm": after every optimizer step, each scale-invariant weight is divided by its norm
(`granularity: layer`, the whole tensor; `filter`, each output channel). Weights that are not
scale-invariant (the classifier head, convolutions feeding a residual sum) and BatchNorm's own
parameters get no decay at all. `prescale_norm` logs ‖w‖ of the scale-invariant weights before
the rescaling (mean over the epoch's steps; the norm right after is √(number of rescaled units)).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from trials.arms.base import ArmGrid, Hooks, global_norm, torch
from trials.checks import grid

KIND = "rescale"
TAKES_MODEL = True  # needs the network's structure, not just its parameters


def _granularity(value: str) -> str | None:
    return None if value in ("layer", "filter") else "must be layer or filter"


class Grid(ArmGrid):
    kind: Literal["rescale"]
    granularity: grid(str, _granularity, allow_empty=True) | None = Field(
        ("layer",), description="layer: one norm per weight tensor; filter: one per output channel")


def scale_invariant_weights(model) -> list:
    """Weights of bias-free conv/linear layers whose output is used only by BatchNorm layers."""
    from torch import fx, nn

    graph = fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    out = []
    for node in graph.nodes:
        module = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(module, nn.Conv2d | nn.Linear) or module.bias is not None:
            continue
        users = list(node.users)
        if users and all(u.op == "call_module" and isinstance(modules.get(u.target), nn.modules.batchnorm._BatchNorm)
                         for u in users):
            out.append(module.weight)
    return out


class WeightRescaling(Hooks):
    def __init__(self, model, granularity: str):
        weights = scale_invariant_weights(model)
        if not weights:
            raise ValueError("the rescale arm found no scale-invariant weight in the model (a bias-free conv or "
                             "linear layer whose output feeds only BatchNorm)")
        super().__init__(weights)
        self.granularity = granularity
        self.prescale_norm = torch.zeros((), device=self.coefficient.device)

    def after_step(self, lr_factor: float) -> None:
        with torch.no_grad():
            weights = [w.detach() for w in self.params]
            self.prescale_norm = global_norm(weights)
            if self.granularity == "layer":
                norms = torch._foreach_norm(weights)
                torch._foreach_clamp_min_(norms, 1e-12)  # a zero weight (never in practice) stays zero
                torch._foreach_div_(weights, norms)
            else:
                for w in weights:
                    norms = torch.linalg.vector_norm(w.flatten(1), dim=1).clamp_min(1e-12)
                    w.div_(norms.view(-1, *([1] * (w.dim() - 1))))

    def step_stats(self) -> dict:
        return {"lambda": self.coefficient, "prescale_norm": self.prescale_norm}

    def state_dict(self) -> dict:
        return {"granularity": self.granularity}

    def load_state_dict(self, state: dict) -> None:
        self.granularity = str(state["granularity"])


def build(params, *, granularity: str) -> WeightRescaling:
    from torch import nn

    if not isinstance(params, nn.Module):
        raise TypeError("the rescale arm needs the model (an nn.Module), not a list of parameters")
    return WeightRescaling(params, granularity)
