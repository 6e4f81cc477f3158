"""Scheduled weight decay: coupled decay whose λ follows a given per-epoch schedule, not adapted to the run.

The control that separates "AWD's λ̄ changes over training" from "AWD's λ̄ reacts to this run's
gradients": replay a λ trajectory (e.g. the per-epoch `lambda_mean` of an adaptive run) without the
feedback. Epoch e (0-based) decays with λ_e = values[min(e, len − 1)]: a list shorter than the
training holds its last value. Within an epoch the step is exactly the `fixed` arm's with λ_e (λ_e·w
added to the gradient, through the momentum buffer). decaylab's own control; no paper defines it.

The study-file section names its schedules once, `schedules: {name: [λ₀, λ₁, ...]}`, and the grid
axis `schedule` picks names (trial ids and labels show the name); each trial receives its concrete
list as the per-trial series `values` (`GridPoint.series`), so the trial does not depend on the study.
A schedule may also be read from a finished adaptive run (`{from: {run, arm, setting, lr}}` in the
study file, resolved when the study is loaded): its per-epoch mean λ̄ averaged over the source's
seeds, and, in `seed_schedules`, each seed's own, which a trial of the same seed replays.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator

from trials.arms.base import ArmGrid, Hooks, global_norm, torch
from trials.fields import NonNegative, as_tuple, checked, fail, grid

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.]*")  # part of trial ids, which are directory names


def _name(value: str) -> str | None:
    return None if NAME.fullmatch(value) else "must be a name of letters, digits, '_' and '.' (it is part of trial ids)"


Schedule = Annotated[tuple[NonNegative, ...], BeforeValidator(as_tuple, json_schema_input_type=list[float])]
ScheduleName = checked(str, _name)  # a key of `schedules`: bounded like the names the grid axis picks


class Grid(ArmGrid):
    kind: Literal["scheduled"]
    schedule: grid(str, _name, allow_empty=True) | None = Field(
        None, description="names of the schedules to train with (keys of `schedules`), one setting each")
    schedules: dict[ScheduleName, Schedule] = Field(
        default_factory=dict, description="the schedules, {name: [λ for epoch 0, λ for epoch 1, ...]} (coupled "
        "decay coefficients ≥ 0; a list shorter than the training holds its last value), or {name: {from: {run: "
        "RUN_DIR, arm: ARM, setting: LABEL, lr: LR}}} to replay a finished adaptive configuration's per-epoch mean "
        "λ̄. Not a grid axis")
    seed_schedules: dict[ScheduleName, dict[int, Schedule]] = Field(
        default_factory=dict, description="filled when a `from:` schedule is resolved: {name: {seed: [λ per "
        "epoch]}}, the source's own seeds, which a trial of the same seed replays (others take `schedules`)")
    sources: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="filled when a `from:` schedule is resolved: where each schedule was "
        "read from ({name: {run, arm, setting, lr, label_noise, seeds}})")
    SYMBOLS: ClassVar[dict[str, str]] = {}
    NON_GRID_FIELDS: ClassVar[tuple[str, ...]] = ("schedules", "seed_schedules", "sources")
    SERIES: ClassVar[tuple[str, ...]] = ("values",)
    DECAY_QUANTITY: ClassVar[tuple[str, str] | None] = ("λ", "coupled L2 coefficient")

    @model_validator(mode="after")
    def _named_schedules_exist(self) -> Grid:
        for name, values in self.schedules.items():
            if not values:
                fail(f"schedules.{name}: the schedule is empty", "give λ for at least the first epoch")
        strays = [name for name in self.seed_schedules if name not in self.schedules]
        if strays:
            fail(f"seed_schedules {', '.join(map(repr, strays))} are not in schedules",
                 "name each per-seed schedule after one of `schedules`")
        missing = [name for name in self.schedule or () if name not in self.schedules]
        if missing:
            fail(f"schedule {', '.join(map(repr, missing))} is not in schedules "
                 f"({', '.join(map(repr, self.schedules)) or 'none given'})",
                 "define it under `schedules: {name: [λ per epoch, ...]}`")
        return self

    def series(self, point: dict[str, Any], seed: int | None = None) -> dict[str, tuple[float, ...]]:
        own = self.seed_schedules.get(point["schedule"], {})
        return {"values": tuple(own[seed] if seed in own else self.schedules[point["schedule"]])}


class ScheduledWeightDecay(Hooks):
    """Coupled L2 decay with λ_e in epoch e, as `trials.weight_decay.FixedWeightDecay` with λ = λ_e."""

    def __init__(self, params, schedule: str, values: tuple[float, ...]):
        super().__init__(params)
        if not values:
            raise ValueError("the scheduled arm needs at least one value")
        self.schedule = str(schedule)
        self.values = tuple(float(v) for v in values)
        self.lam = self.values[0]
        self.coefficient.fill_(self.lam)

    def set_progress(self, fraction: float, epoch: int = 0) -> None:
        self.lam = self.values[min(epoch, len(self.values) - 1)]
        self.coefficient.fill_(self.lam)  # a host value written to the device: no read

    def apply(self):
        with torch.no_grad():
            pairs = [(p.detach(), p.grad) for p in self.params if p.grad is not None]
            self.grad_norm = global_norm([g for _, g in pairs])
            if self.lam and pairs:
                torch._foreach_add_([g for _, g in pairs], [w for w, _ in pairs], alpha=self.lam)
        return self.coefficient

    def state_dict(self) -> dict:
        return {"schedule": self.schedule, "values": list(self.values), "lam": self.lam}

    def load_state_dict(self, state: dict) -> None:
        self.schedule, self.values = str(state["schedule"]), tuple(float(v) for v in state["values"])
        self.lam = float(state["lam"])
        self.coefficient.fill_(self.lam)


def build(params, *, schedule: str, values: tuple[float, ...]) -> ScheduledWeightDecay:
    return ScheduledWeightDecay(params, schedule, values)
