"""The study-file reference, read from the schema itself: `decaylab options` and the generated page
docs/reference/study-file.md (`python -m orchestrator.docs`).

Every key's type, default, allowed values and meaning come from the pydantic fields: the type from
the annotation (a `Literal` gives the allowed values), the meaning from the field's `description`.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

import yaml

from orchestrator.study.errors import join
from orchestrator.study.schema import Study
from trials import arms
from trials.config import Section

SCALARS = {bool: "boolean", int: "integer", float: "number", str: "text"}


@dataclass(frozen=True)
class Option:
    """One study-file key as the reference lists it."""

    key: str
    type: str
    default: str
    allowed: tuple[str, ...]  # the values a `Literal` admits; empty when any value of the type may be given
    doc: str


def options() -> list[Option]:
    """Every key of the study file outside the arms' own sections, in the schema's order."""
    rows: list[Option] = []

    def walk(model: type[Section], prefix: str) -> None:
        for name, f in model.model_fields.items():
            key = join(prefix, f.alias or name)
            default = f.get_default(call_default_factory=True)
            if isinstance(default, Section):
                walk(type(default), key)
                continue
            rows.append(_option(key, f, "required" if f.is_required() else yaml_text(default)))
            if (optional := optional_section(f.annotation)) is not None:  # e.g. train.ema: null, or its keys
                walk(optional, key + _member(f.annotation))

    walk(Study, "")
    return rows


def arm_options(kind: str) -> list[Option]:
    """The keys of one kind of arm's section, `methods.<arm>.<key>`: its grids, then its other fields."""
    cls = arms.grid_class(kind)
    rows = []
    for name in [*cls.hyperparameters(), *cls.NON_GRID_FIELDS]:
        f = cls.model_fields[name]
        default = f.get_default(call_default_factory=True)
        rows.append(_option(cls.study_key(name), f, "required" if default is None else yaml_text(default)))
    return rows


def _option(key: str, field: Any, default: str) -> Option:
    kind, allowed = type_text(field.annotation)
    return Option(key, kind, default, allowed, field.description or "")


def type_text(annotation: Any) -> tuple[str, tuple[str, ...]]:
    """A reader's name for a field's type, and the values a `Literal` in it allows."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin is typing.Literal:
        return "text", tuple(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [type_text(a) for a in args if a is not type(None)]
        text = " or ".join(dict.fromkeys(p[0] for p in parts))
        allowed = tuple(v for p in parts for v in p[1])
        return (f"{text} or null" if type(None) in args else text), allowed
    if origin is tuple:
        inner, allowed = type_text(args[0])
        return f"list of {inner}", allowed
    if origin is dict:
        key, value = type_text(args[0])[0], type_text(args[1])
        return f"mapping: {key} → {value[0]}", value[1]
    if isinstance(annotation, type) and issubclass(annotation, Section | arms.ArmGrid):
        return "section", ()
    return SCALARS.get(annotation, "value"), ()


def _member(annotation: Any) -> str:
    """How a key inside a mapping (`search.space.<name>.low`) or a list (`reference_results[].arm`) is named."""
    origin = typing.get_origin(typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated
                               else annotation)
    return ".<name>" if origin is dict else "[]" if origin is tuple else ""


def optional_section(annotation: Any) -> type[Section] | None:
    """The section class of a `Section | None` field (documented key by key), else None."""
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, Section):
            return arg
    return None


def yaml_text(value: Any) -> str:
    """A default as a study file would spell it."""
    if isinstance(value, str) and value:
        return value
    plain = list(value) if isinstance(value, tuple) else value
    return yaml.safe_dump(plain, default_flow_style=True).strip().removesuffix("...").strip()
