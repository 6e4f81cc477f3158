"""What every arm shares: its study-file section (one grid per hyperparameter) and its step hooks.

An arm module declares

* `Grid`, a subclass of `ArmGrid`: the study-file section `{kind: <kind>, <hyperparameter>: [...]}`,
  one tuple field per hyperparameter, in the order trial ids and labels list them;
* `build(params, **hyperparameters) -> Hooks`: the object the training step calls (arms that need the
  network's structure also get `model=`, arms with per-trial arrays get them by name, see `SERIES`).

`Hooks` has the three places an arm can change a step (DESIGN: gradient-, parameter- and
loss-shaped), and a default for each that does nothing:

    hooks.set_progress(epoch / epochs, epoch)      # before every epoch (windowed, scheduled)
    per_example = objective(model, x, y)          # CE on x_adv, or TRADES
    loss = hooks.loss(per_example)                 # loss-shaped (softad, reweight)
    loss.backward()
    hooks.apply()                                  # gradient-shaped (fixed, adaptive, windowed, scheduled, rescale)
    optimizer.step()
    hooks.after_step(lr_factor)                    # parameter-shaped (decoupled, rescale)

The study-file reader imports every arm module to validate a study, and `decaylab validate`
must start in well under a second: `torch` here is imported on first use, never at import.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class _LazyTorch:
    """`torch`, imported the first time an attribute is used (no import cost for the schema)."""

    def __getattr__(self, name: str) -> Any:
        import torch as real

        return getattr(real, name)


torch: Any = _LazyTorch()


class ArmGrid(BaseModel):
    """An arm's study-file section. Every hyperparameter is a tuple of values (a grid axis).

    A field left `None` was not given: a grid study needs it, an Optuna study may range it
    in `search.space` instead.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: str
    #: Greek or short names used in readable labels, e.g. {"lam": "λ"}; the field name otherwise.
    SYMBOLS: ClassVar[dict[str, str]] = {}
    #: Fields of the section that are not hyperparameters: no grid axis, no result column, not in
    #: trial ids or labels (e.g. the `scheduled` arm's `schedules`, the arrays its names refer to).
    NON_GRID_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: Hyperparameters added after results existed: at this value they are left out of trial ids and
    #: labels (so the ids of earlier runs stay valid), and a stored configuration without them has it.
    ID_DEFAULTS: ClassVar[dict[str, Any]] = {}
    #: Per-trial arrays `build` takes by name (`GridPoint.series`, filled by `series`).
    SERIES: ClassVar[tuple[str, ...]] = ()
    #: What the arm's `lambda_mean/min/max` columns hold, as (symbol, quantity), or None when they hold
    #: no decay coefficient. Every arm declares it, so figures never put different quantities on one axis.
    DECAY_QUANTITY: ClassVar[tuple[str, str] | None]

    @classmethod
    def hyperparameters(cls) -> list[str]:
        """Field names of the hyperparameters (the grid axes), in declaration order."""
        return [name for name in cls.model_fields if name != "kind" and name not in cls.NON_GRID_FIELDS]

    @classmethod
    def complete(cls, point: dict[str, Any]) -> dict[str, Any]:
        """`point` with the `ID_DEFAULTS` of the hyperparameters it lacks (a configuration stored before
        they existed)."""
        return {**{k: v for k, v in cls.ID_DEFAULTS.items() if k not in point}, **point}

    @classmethod
    def shown(cls, point: dict[str, Any]) -> list[str]:
        """The hyperparameters a trial id and a label spell out: all but those at their `ID_DEFAULTS` value."""
        return [k for k in cls.hyperparameters() if not (k in cls.ID_DEFAULTS and point.get(k, cls.ID_DEFAULTS[k])
                                                         == cls.ID_DEFAULTS[k])]

    @classmethod
    def study_key(cls, name: str) -> str:
        """How the study file spells a hyperparameter (its alias, e.g. `lambda` for `lam`)."""
        return cls.model_fields[name].alias or name

    @classmethod
    def check_point(cls, point: dict[str, Any]) -> str | None:
        """Why one combination of values is not a valid trial (None when it is)."""
        return None

    def grid(self) -> dict[str, tuple]:
        return {name: getattr(self, name) for name in self.hyperparameters()}

    def series(self, point: dict[str, Any], seed: int | None = None) -> dict[str, tuple[float, ...]]:
        """The per-trial arrays (`SERIES`) of grid point `point` for the trial of `seed`, from the section's
        non-grid fields."""
        return {}

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grids, in a stable order (first hyperparameter slowest)."""
        names = self.hyperparameters()
        axes = [getattr(self, name) or () for name in names]
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes)]

    @classmethod
    def label(cls, point: dict[str, Any]) -> str:
        """A readable setting label, e.g. 'λ=0.0005' or 'λ=0.0005, stop=0.25'."""
        return ", ".join(f"{cls.SYMBOLS.get(k, k)}={format_value(point[k])}" for k in cls.shown(point))


def format_value(value: Any) -> str:
    """One spelling of a number everywhere: the shortest that reads back exactly (0.0005, 1e-05)."""
    if isinstance(value, float):
        return repr(value) if not value.is_integer() or abs(value) >= 1e16 else repr(int(value))
    return str(value)


class Hooks:
    """The step hooks of an arm. Subclasses override what their arm changes.

    `coefficient` (a 0-d tensor on the parameters' device) is the arm's effective decay
    coefficient at the last step, logged per epoch as `lambda_mean/min/max`; `grad_norm` is
    ‖g‖ of the decayed parameters before any decay was added (`grad_norm`). Neither is ever
    read on the host inside a step.
    """

    def __init__(self, params) -> None:
        self.params = list(params)
        device = self.params[0].device if self.params else "cpu"
        self.coefficient = torch.zeros((), device=device)
        self.grad_norm = torch.zeros((), device=device)

    def set_progress(self, fraction: float, epoch: int = 0) -> None:
        """Called before every epoch with the fraction of training done (0 at the start) and the epoch
        about to run (0-based)."""

    def loss(self, per_example):
        """The scalar loss to differentiate from the per-example training losses."""
        return per_example.mean()

    def apply(self):
        """After `backward()`, before `optimizer.step()`: change `p.grad`. Returns `coefficient`."""
        with torch.no_grad():
            self.grad_norm = global_norm([p.grad for p in self.params if p.grad is not None])
        return self.coefficient

    def after_step(self, lr_factor: float) -> None:
        """After `optimizer.step()`; `lr_factor` = lr_t / lr_0 of the step just taken."""

    def step_stats(self) -> dict[str, Any]:
        """0-d tensors of the last step, accumulated per epoch (`lambda` → lambda_mean/min/max)."""
        return {"lambda": self.coefficient}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def global_norm(tensors: list) -> Any:
    """‖concat(tensors)‖₂ as a 0-d fp32 tensor, without concatenating."""
    if not tensors:
        return torch.zeros(())
    norms = torch._foreach_norm(tensors, 2.0, dtype=torch.float32)  # noqa: SLF001 - one fused kernel
    return torch.linalg.vector_norm(torch.stack(norms))
