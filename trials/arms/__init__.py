"""The arm registry: one module per kind of regularisation compared in a study.

    trials.arms.build(kind, params, **hyperparameters) -> Hooks

`params` is the list of parameters the arm acts on (the decayed parameters of `train.decay`),
or the model itself for arms that need its structure (`rescale`). Adding an arm is adding one
module here and its name to `KINDS`: a `Grid` (its study-file section, one grid per
hyperparameter) and a `build` function returning the step hooks (see `trials.arms.base`).
Importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType
from typing import Any

from trials.arms.base import ArmGrid, Hooks, format_value

KINDS = ("fixed", "adaptive", "decoupled", "rescale", "windowed", "softad")


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


def takes_model(kind: str) -> bool:
    return bool(getattr(module(kind), "TAKES_MODEL", False))


def build(kind: str, params, **hyperparameters: Any) -> Hooks:
    """The step hooks of arm `kind` acting on `params`, e.g. `build("decoupled", model.parameters(), lam=5e-5)`."""
    expected = set(hyperparameters_of := grid_class(kind).hyperparameters())
    if set(hyperparameters) != expected:
        raise TypeError(f"arm {kind!r} takes hyperparameters {', '.join(hyperparameters_of)}; "
                        f"got {', '.join(sorted(hyperparameters)) or 'none'}")
    return module(kind).build(params, **hyperparameters)


__all__ = ["KINDS", "ArmGrid", "Hooks", "build", "format_value", "grid_class", "hyperparameter_columns", "label"]
