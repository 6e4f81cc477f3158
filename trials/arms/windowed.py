"""Early-only (or late-only) weight decay: coupled fixed decay λ, active only in a window of training.

Golatkar, Achille & Soatto, "Time Matters in Regularizing Deep Networks: Weight Decay and Data
Augmentation Affect Early Dynamics, Not Final Performance", NeurIPS 2019: removing decay after
the initial transient barely changes generalisation, while decay applied only late has little
effect. The window `[start, stop)` is given in fractions of training: epoch e (0-based) of E
decays when start ≤ e/E < stop. `stop: 0.25` is "decay only in the first quarter";
`start: 0.25, stop: 1.0` is the late-only control. Inside the window the step is exactly the
`fixed` arm's; outside it is plain SGD.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from trials.arms.base import ArmGrid, Hooks, torch
from trials.fields import NonNegative, UnitInterval, fraction, grid, non_negative, unit_interval
from trials.fields import Number as _Number


class Grid(ArmGrid):
    kind: Literal["windowed"]
    lam: grid(NonNegative, non_negative, allow_empty=True) | None = Field(
        None, alias="lambda", description="decay coefficient λ inside the window")
    start: grid(_Number, fraction, allow_empty=True) | None = Field(
        (0.0,), description="window start, fraction of training in [0, 1)")
    stop: grid(UnitInterval, unit_interval, allow_empty=True) | None = Field(
        None, description="window end, fraction of training in (0, 1]")
    SYMBOLS: ClassVar[dict[str, str]] = {"lam": "λ"}
    # λ inside the window, 0 outside: the fixed arm's quantity
    DECAY_QUANTITY: ClassVar[tuple[str, str] | None] = ("λ", "coupled L2 coefficient")

    @classmethod
    def check_point(cls, point: dict[str, Any]) -> str | None:
        if point["start"] >= point["stop"]:
            return f"start {point['start']!r} is not before stop {point['stop']!r}"
        return None


class WindowedWeightDecay(Hooks):
    def __init__(self, params, lam: float, start: float, stop: float):
        super().__init__(params)
        self.lam, self.start, self.stop = float(lam), float(start), float(stop)
        self.active = start == 0.0

    def set_progress(self, fraction: float, epoch: int = 0) -> None:
        self.active = self.start <= fraction < self.stop
        self.coefficient.fill_(self.lam if self.active else 0.0)

    def apply(self):
        coefficient = super().apply()
        if self.active and self.lam:
            with torch.no_grad():
                pairs = [(p.detach(), p.grad) for p in self.params if p.grad is not None]
                torch._foreach_add_([g for _, g in pairs], [w for w, _ in pairs], alpha=self.lam)
        return coefficient

    def state_dict(self) -> dict:
        return {"lam": self.lam, "start": self.start, "stop": self.stop}

    def load_state_dict(self, state: dict) -> None:
        self.lam, self.start, self.stop = float(state["lam"]), float(state["start"]), float(state["stop"])


def build(params, *, lam: float, start: float, stop: float) -> WindowedWeightDecay:
    return WindowedWeightDecay(params, lam, start, stop)
