"""pydantic's validation errors → decaylab's one-line messages: file, dotted key, reason, hint.

    studies/x.yaml: train.epochs: must be ≥ 1 (got 0)
      hint: the default is 60; `decaylab options` lists every key with its meaning

Only the first error is shown (fixing it usually fixes the others); its location becomes the
dotted key the study file uses (aliases such as `lambda`, list indices as `[i]`, the tag that
pydantic adds inside a tagged union dropped).
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator.errors import UserError
from trials import arms

TYPE_MESSAGES = {
    "int_type": "expected an integer", "int_parsing": "expected an integer", "int_from_float": "expected an integer",
    "float_type": "expected a number", "float_parsing": "expected a number",
    "bool_type": "expected true or false", "bool_parsing": "expected true or false",
    "string_type": "expected a string", "model_type": "expected a mapping of keys", "dict_type": "expected a mapping",
    "tuple_type": "expected a list", "list_type": "expected a list",
}
TYPE_HINTS = {
    "expected an integer": "write a whole number without quotes, e.g. 5",
    "expected a number": "write a number without quotes, e.g. 0.05 or 5.0e-4",
    "expected true or false": "write true or false, without quotes",
    "expected a string": "put the value in quotes",
}


def show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list | tuple):
        return f"a list {list(v)!r}"[:80]
    return repr(v)


def join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def did_you_mean(key: str, names: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{join(prefix, close[0])}`?"
    return f"known keys{' under ' + prefix if prefix else ''}: {', '.join(names)}"


def field_keys(model: type[BaseModel]) -> list[str]:
    """The keys a section accepts, as the study file spells them."""
    return [f.alias or name for name, f in model.model_fields.items()]


def _field(model: type[BaseModel], key: str):
    for name, f in model.model_fields.items():
        if (f.alias or name) == key:
            return f
    return None


def _section(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section(arg)
        if found is not None:
            return found
    return None


def walk(root: type[BaseModel], loc: tuple) -> tuple[str, type[BaseModel] | None, Any]:
    """(dotted key, the section holding its last key, that key's field) of a pydantic error location."""
    key, model, field = "", root, None
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if isinstance(part, int):
            key += f"[{part}]"
            continue
        key = join(key, str(part))
        if model is None:
            continue
        field = _field(model, str(part))
        if field is None:
            return key, model, None  # a key the section does not have
        if typing.get_origin(field.annotation) is dict:
            model = None
            if parts and isinstance(parts[0], str):  # the mapping's own key: an arm's name, a space key
                key = join(key, parts.pop(0))
                if parts and parts[0] in arms.KINDS:  # pydantic's tag inside the tagged union of arms
                    model = arms.grid_class(parts.pop(0))
                else:
                    model = _section(typing.get_args(field.annotation)[1])
            continue
        if parts:
            model = _section(field.annotation)
    return key, model, field


def default_hint(field) -> str:
    if field is None:
        return "`decaylab options` lists every key with its meaning"
    if field.is_required():
        return "this key has no default: give it; `decaylab options` lists every key with its meaning"
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        return "`decaylab options` lists every key with its meaning"
    shown = yaml.safe_dump(_plain(default), default_flow_style=True).strip().removesuffix("...").strip()
    return f"the default is {shown}; `decaylab options` lists every key with its meaning"


def _plain(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v


def to_user_error(error: ValidationError, root: type[BaseModel], where: str) -> UserError:
    """The first of pydantic's errors as a UserError naming the file, the key and a fix."""
    err = error.errors(include_url=False)[0]
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    key, section, field = walk(root, loc)
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(where, key, section)
    if kind == "missing":
        return UserError(where, f"{key}: missing", f"give `{key}`; `decaylab options` lists every key")
    if kind == "literal_error":
        allowed = [a.strip().strip("'") for a in ctx.get("expected", "").replace(" or ", ", ").split(",")]
        return UserError(where, f"{key}: {show(value)} is not one of {', '.join(allowed)}",
                         did_you_mean(str(value), allowed, ""))
    if kind == "union_tag_invalid":
        return UserError(where, f"{key}.kind: {show(ctx.get('tag'))} is not one of {', '.join(arms.KINDS)}",
                         did_you_mean(str(ctx.get("tag")), list(arms.KINDS), ""))
    if kind == "union_tag_not_found":
        return UserError(where, f"{key}: expected {{kind: {'|'.join(arms.KINDS)}, ...}}, got {show(value)}",
                         f"write e.g. `{key.split('.')[-1]}: {{kind: fixed, lambda: [5.0e-4]}}`")
    if kind in TYPE_MESSAGES:
        reason = TYPE_MESSAGES[kind]
        hint = TYPE_HINTS.get(reason) or f"write `{key}: {{key: value, ...}}`; `decaylab options` lists the keys"
        return UserError(where, f"{key}: {reason}, got {show(value)}", hint)
    message = err["msg"].removeprefix("Value error, ")
    hint = ctx.get("hint") or default_hint(field)
    return UserError(where, f"{key}: {message} (got {show(value)})" if kind == "decaylab" else f"{key}: {message}",
                     hint)


def _unknown_key(where: str, key: str, section: type[BaseModel] | None) -> UserError:
    prefix, _, bad = key.rpartition(".")
    names = field_keys(section) if section is not None else []
    if section is not None and issubclass(section, arms.ArmGrid):
        kind = section.model_fields["kind"].annotation.__args__[0]
        own = [section.study_key(n) for n in section.hyperparameters()]
        others = {cls.study_key(n) for cls in arms.grid_classes() for n in cls.hyperparameters()} - set(own)
        if bad in others:
            takes = ", ".join(f"`{k}`" for k in own)
            return UserError(where, f"{key}: a {kind} arm takes {takes}, not `{bad}`",
                             f"rename the key to {takes} or change `kind`")
    return UserError(where, f"{key}: unknown key", did_you_mean(bad, names, prefix))
