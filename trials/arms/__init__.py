"""The arm registry: one module per kind of regularisation compared in a study.

    trials.arms.build(kind, params, **hyperparameters) -> Hooks

`params` is the list of parameters the arm acts on (the decayed parameters of `train.decay`);
arms that need the network's structure (`rescale`, `TAKES_MODEL`) also get `model=`, and arms
with per-trial arrays (`scheduled`, `Grid.SERIES`) get them as `series=`. Adding an arm is adding
one module here and its name to `KINDS`: a `Grid` (its study-file section, one grid per
hyperparameter, and its `DECAY_QUANTITY`) and a `build` function returning the step hooks (see
`trials.arms.base`). Importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType
from typing import Any

from trials.arms.base import ArmGrid, Hooks, format_value

KINDS = ("fixed", "adaptive", "decoupled", "rescale", "windowed", "softad", "reweight", "scheduled")


@cache
def module(kind: str) -> ModuleType:
    if kind not in KINDS:
        raise KeyError(f"unknown arm kind {kind!r}; known: {', '.join(KINDS)}")
    return importlib.import_module(f"trials.arms.{kind}")


def grid_class(kind: str) -> type[ArmGrid]:
    return module(kind).Grid


def grid_classes() -> list[type[ArmGrid]]:
    return [grid_class(kind) for kind in KINDS]


def hyperparameters(kind: str) -> list[str]:
    return grid_class(kind).hyperparameters()


@cache
def hyperparameter_columns() -> dict[str, str]:
    """Every hyperparameter name of every kind → its result-column dtype ("float64" or "string")."""
    columns: dict[str, str] = {}
    for cls in grid_classes():
        for name in cls.hyperparameters():
            element = cls.model_fields[name].annotation
            columns.setdefault(name, "string" if "str" in str(element) else "float64")
    return columns


def label(kind: str, point: dict[str, Any]) -> str:
    return grid_class(kind).label(point)


def complete(kind: str, point: dict[str, Any]) -> dict[str, Any]:
    """`point` with the defaults of hyperparameters added after it was stored (`ArmGrid.ID_DEFAULTS`)."""
    return grid_class(kind).complete(point)


def decay_quantity(kind: str) -> tuple[str, str] | None:
    """What arm `kind`'s `lambda_mean/min/max` columns hold, as (symbol, quantity), e.g. ("λ", "coupled L2
    coefficient"); None when they hold no decay coefficient. Figures share an axis only between equal values."""
    return grid_class(kind).DECAY_QUANTITY


def takes_model(kind: str) -> bool:
    return bool(getattr(module(kind), "TAKES_MODEL", False))


def build(kind: str, params, /, *, model=None, series: dict[str, Any] | None = None,
          **hyperparameters: Any) -> Hooks:
    """The step hooks of arm `kind` acting on `params`, e.g. `build("decoupled", model.parameters(), lam=5e-5)`.

    `model` is the network, required by the arms that need its structure (`takes_model`) and not passed to
    the others; `series` holds the per-trial arrays the arm's `Grid.SERIES` names (`GridPoint.series`).
    Hyperparameters missing from `ID_DEFAULTS` get their default.
    """
    cls = grid_class(kind)
    hyperparameters = cls.complete(hyperparameters)
    if set(hyperparameters) != set(names := cls.hyperparameters()):
        raise TypeError(f"arm {kind!r} takes hyperparameters {', '.join(names)}; "
                        f"got {', '.join(sorted(hyperparameters)) or 'none'}")
    series = dict(series or {})
    if set(series) != set(cls.SERIES):
        raise TypeError(f"arm {kind!r} takes the per-trial series {', '.join(cls.SERIES) or 'none'}; "
                        f"got {', '.join(sorted(series)) or 'none'}")
    extra = {}
    if takes_model(kind):
        from torch import nn

        if not isinstance(model, nn.Module):
            raise TypeError(f"the {kind} arm needs the model (an nn.Module, `model=`) besides the parameters")
        extra["model"] = model
    return module(kind).build(params, **hyperparameters, **series, **extra)


__all__ = ["KINDS", "ArmGrid", "Hooks", "build", "complete", "decay_quantity", "format_value", "grid_class",
           "hyperparameter_columns", "label"]
