"""SGD with momentum: `torch.optim.SGD`'s update, bit for bit, in a class that is not a torch optimizer.

Every `torch.optim.Optimizer` imports `torch._dynamo` when it is built (its methods are wrapped by
`torch._disable_dynamo`, which imports the compiler on first call): 1.7–1.9 s of one core on the 2-core
machine, paid by every process that trains — each sweep worker before its first trial, the driver's
estimate, `decaylab validate --estimate`. Nothing else in a trial needs the compiler unless the study
asks for `train.compile`.

The update is torch's (weight decay 0, dampening 0; decay is the arm's business, added to `p.grad`
before `step`):

    b ← g                      on the first step of a parameter
    b ← μ·b + g                after
    d = g + μ·b  (Nesterov)    or  d = b
    w ← w − lr·d

done with the `torch._foreach_*` kernels over all parameters at once (what `torch.optim.SGD` uses on
CUDA; on the CPU the same element-wise arithmetic as its per-tensor loop). Parameters without a
gradient are left alone, and their momentum with them. `state_dict()` has `torch.optim.SGD`'s layout, so
checkpoints written with either load into the other.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class SGD:
    """SGD with (Nesterov) momentum over one parameter group; `param_groups[0]["lr"]` may change between steps."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.0,
                 nesterov: bool = False):
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.params = list(params)
        self.param_groups = [{"params": self.params, "lr": float(lr), "momentum": float(momentum),
                              "nesterov": bool(nesterov)}]
        self.momentum_buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, mu = group["lr"], group["momentum"]
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        grads = [self.params[i].grad for i in live]
        if mu != 0:
            old = [i for i in live if self.momentum_buffers[i] is not None]
            if old:
                bufs = [self.momentum_buffers[i] for i in old]
                torch._foreach_mul_(bufs, mu)
                torch._foreach_add_(bufs, [self.params[i].grad for i in old])
            for i in live:
                if self.momentum_buffers[i] is None:
                    self.momentum_buffers[i] = torch.clone(self.params[i].grad).detach()
            bufs = [self.momentum_buffers[i] for i in live]
            grads = torch._foreach_add(grads, bufs, alpha=mu) if group["nesterov"] else bufs
        torch._foreach_add_(params, grads, alpha=-lr)

    def state_dict(self) -> dict:
        """`torch.optim.SGD.state_dict()`'s layout: parameters by index, buffers under `momentum_buffer`."""
        group = self.param_groups[0]
        return {"state": {i: {"momentum_buffer": b} for i, b in enumerate(self.momentum_buffers) if b is not None},
                "param_groups": [{"lr": group["lr"], "momentum": group["momentum"], "dampening": 0.0,
                                  "weight_decay": 0.0, "nesterov": group["nesterov"], "maximize": False,
                                  "foreach": None, "differentiable": False, "fused": None,
                                  "params": list(range(len(self.params)))}]}

    def load_state_dict(self, state: dict) -> None:
        """Load a state of this class or of `torch.optim.SGD` over the same parameters."""
        groups = state["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            raise ValueError(f"an optimizer state for {sum(len(g['params']) for g in groups)} parameters in "
                             f"{len(groups)} group(s), not {len(self.params)} in one")
        group = groups[0]
        if group.get("dampening", 0) or group.get("weight_decay", 0) or group.get("maximize", False):
            raise ValueError("an optimizer state with dampening, weight decay or maximize, which this SGD "
                             "does not do")
        self.param_groups[0].update(lr=float(group["lr"]), momentum=float(group["momentum"]),
                                    nesterov=bool(group["nesterov"]))
        buffers: list[torch.Tensor | None] = [None] * len(self.params)
        for slot, index in enumerate(group["params"]):
            buf = state["state"].get(index, {}).get("momentum_buffer")
            if buf is not None:
                p = self.params[slot]
                buffers[slot] = buf.detach().to(device=p.device, dtype=p.dtype, copy=True)
        self.momentum_buffers = buffers
