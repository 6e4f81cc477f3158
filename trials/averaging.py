"""Weight averaging (`train.ema`): an exponential moving average of the parameters, kept on the device.

After every optimizer step s (0-based, of T in the whole training),

    w̄ ← w                          while s < start·T   (the average tracks the weights),
    w̄ ← d·w̄ + (1 − d)·w            afterwards,

so k steps into the averaging w̄ = dᵏ·w_{s₀−1} + (1 − d)·Σⱼ dᵏ⁻ʲ·w_{s₀−1+j} (j = 1..k). No bias
correction: w̄ starts from the weights it tracked, not from zero. BatchNorm's running statistics are
not averaged: the averaged model uses the live model's (copied whenever the average is evaluated or
saved). That is decaylab's choice, and an approximation: SWA (Izmailov et al.) recomputes them for the
averaged weights with a pass over the training data, which decaylab does not do.

Sources: Izmailov, Podoprikhin, Garipov, Vetrov & Wilson, "Averaging Weights Leads to Wider Optima and
Better Generalization", UAI 2018 (SWA, an equal-weight average of late iterates); Gowal, Qin, Uesato,
Mann & Kohli, "Uncovering the Limits of Adversarial Training against Norm-Bounded Adversarial
Examples", arXiv 2010.03593 (2020), whose exponential average of the weights (per step, as here)
raises robust accuracy. The motivation for evaluating it beside the live weights is robust overfitting
(Rice, Wong & Kolter, "Overfitting in adversarially robust deep learning", ICML 2020): the robust
test accuracy of adversarial training peaks early and then falls, and averaging flattens that fall.
The averaged weights get their own best epoch (by `ema_val_robust_acc`, `trials.selection`'s rule).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn


class WeightAverage:
    """The average w̄ of `model`'s parameters, held in `self.model` (a copy of the network)."""

    def __init__(self, model: nn.Module, decay: float, start_step: int):
        self.live = model
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.decay = float(decay)
        self.start_step = int(start_step)
        self._live_params = list(model.parameters())
        self._avg_params = list(self.model.parameters())

    @classmethod
    def for_training(cls, model: nn.Module, decay: float, start: float, total_steps: int) -> WeightAverage:
        """Averaging from the first step s with s ≥ start·T (T = `total_steps`)."""
        return cls(model, decay, math.ceil(start * total_steps))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After optimizer step `step` (0-based, counted over the whole training); no host read."""
        live = [p.detach() for p in self._live_params]
        if step < self.start_step:
            torch._foreach_copy_(self._avg_params, live)
        else:
            torch._foreach_lerp_(self._avg_params, live, 1.0 - self.decay)  # w̄ + (1 − d)·(w − w̄)

    @torch.no_grad()
    def sync_buffers(self) -> nn.Module:
        """Copy the live model's buffers (BatchNorm's running statistics) into the average; returns it."""
        for avg, live in zip(self.model.buffers(), self.live.buffers(), strict=True):
            avg.copy_(live)
        return self.model

    def state_dict(self) -> dict:
        """The averaged model's state (parameters averaged, buffers the live model's now), a snapshot."""
        self.sync_buffers()
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
