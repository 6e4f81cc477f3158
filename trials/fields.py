"""Value types of the typed study schema, with decaylab's own wording of what is wrong.

Each type is an `Annotated` pydantic type: the check runs where the field is declared, and a
failure is a `PydanticCustomError` whose message the study reader shows after the dotted key
(`train.epochs: must be ≥ 1 (got 0)`). Grids are tuples: a YAML list, or a scalar meaning a
grid of one value. Torch-free.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError


def fail(message: str, hint: str | None = None) -> None:
    """Raise the error the study reader turns into `<key>: <message>` (and `hint: <hint>`)."""
    raise PydanticCustomError("decaylab", message.replace("{", "{{").replace("}", "}}"),
                              {"hint": hint} if hint else None)


def _checked(check: Callable[[Any], str | None]) -> Callable[[Any], Any]:
    def validate(value: Any) -> Any:
        if (reason := check(value)) is not None:
            reason, _, hint = reason.partition("; hint: ")
            fail(reason, hint or None)
        return value

    return validate


# ----------------------------------------------------------------------- value checks
# A check returns None when the value is acceptable, else the reason it is not.


def positive(v: float) -> str | None:
    return None if v > 0 and math.isfinite(v) else "must be a finite number > 0"


def non_negative(v: float) -> str | None:
    return None if v >= 0 and math.isfinite(v) else "must be a finite number ≥ 0"


def fraction(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be a fraction in [0, 1)"


def unit_interval(v: float) -> str | None:
    return None if 0 < v <= 1 else "must lie in (0, 1] (inputs are scaled to [0, 1])"


def at_least(n: int) -> Callable[[int], str | None]:
    def check(v: int) -> str | None:
        return None if v >= n else f"must be ≥ {n}"

    return check


def at_most(n: int) -> Callable[[int], str | None]:
    def check(v: int) -> str | None:
        return None if v <= n else f"must be ≤ {n:,}"

    return check


# C0 and C1 control characters and DEL: a NUL ends a path in the C library (Python refuses such a path with
# a traceback), and escape sequences act on the terminal that shows a name, a path or a message
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
MAX_TEXT = 4096  # the longest path Linux accepts; far more than a name, a path or a URI needs
MAX_PARAGRAPH = 100_000  # a free-text description


def control_character(v: str, allowed: str = "") -> str | None:
    """The first control character of `v` (not one of `allowed`), escaped ('\\x00'), or None."""
    found = next((c for c in CONTROL.findall(v) if c not in allowed), None)
    return None if found is None else f"\\x{ord(found):02x}"


def one_line_text(v: str) -> str | None:
    if (found := control_character(v)) is not None:
        return (f"contains the control character {found}; hint: names, paths and URIs are one line of plain "
                "text: remove it")
    return None if len(v) <= MAX_TEXT else f"is longer than {MAX_TEXT:,} characters"


def paragraph_text(v: str) -> str | None:
    if (found := control_character(v, allowed="\n")) is not None:
        return f"contains the control character {found}; hint: plain text and line breaks only: remove it"
    return None if len(v) <= MAX_PARAGRAPH else f"is longer than {MAX_PARAGRAPH:,} characters"


def not_nan(v: float) -> str | None:
    return "NaN is not a usable value; hint: give a number" if isinstance(v, float) and math.isnan(v) else None


def each(check: Callable[[Any], str | None]) -> Callable[[tuple], str | None]:
    """A grid check: every value passes `check`, no value repeats (it would be the same trial)."""

    def check_all(values: tuple) -> str | None:
        for v in values:
            if (reason := check(v)) is not None:
                return f"value {v!r} {reason}"
        if len(set(values)) != len(values):
            return f"repeated values {list(values)}; hint: list each value once (seeds give repeats)"
        return None

    return check_all


def non_empty(values: tuple) -> str | None:
    return None if len(values) > 0 else "must not be empty"


MAX_AXIS = 10_000  # values of one grid axis: the largest grid decaylab runs has a million trials in all


def short_axis(values: tuple) -> str | None:
    if len(values) <= MAX_AXIS:
        return None
    return f"has {len(values):,} values, at most {MAX_AXIS:,}; hint: give fewer values (a grid multiplies its axes)"


# --------------------------------------------------------------------------- coercion


def integral(value: Any) -> Any:
    """Accept 3 and 3.0 as the integer 3; anything else is left for the strict int check."""
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    return value


def as_tuple(value: Any) -> Any:
    """A YAML list as a tuple; a scalar is a grid of one value."""
    if isinstance(value, list | tuple):
        return tuple(value)
    if isinstance(value, dict):
        return value  # left for the type check ("expected a list")
    return (value,)


# ----------------------------------------------------------------------------- types


def checked(base: Any, *checks: Callable[[Any], str | None]) -> Any:
    return Annotated[(base, *(AfterValidator(_checked(c)) for c in checks))]


Int = Annotated[int, BeforeValidator(integral)]
Text = checked(str, one_line_text)  # every string of a study: names, paths, URIs
Paragraph = checked(str, paragraph_text)  # free text: line breaks allowed
Number = checked(float, not_nan)
Positive = checked(Number, positive)
NonNegative = checked(Number, non_negative)
Fraction = checked(Number, fraction)
UnitInterval = checked(Number, unit_interval)


def at_least_int(n: int, most: int | None = None) -> Any:
    """An integer ≥ `n` (and ≤ `most`, when given)."""
    return checked(Int, at_least(n)) if most is None else checked(Int, at_least(n), at_most(most))


def grid(element: Any, check: Callable[[Any], str | None] | None = None, *, allow_empty: bool = False) -> Any:
    """A tuple of `element` values (a grid axis) whose values all pass `check` and never repeat."""
    checks = ([] if allow_empty else [non_empty]) + [short_axis, each(check or (lambda v: None))]
    # the JSON Schema (`decaylab schema`) shows what a study file may hold: a list or one value
    accepts = BeforeValidator(as_tuple, json_schema_input_type=element | list[element])
    return Annotated[(tuple[element, ...], accepts, *(AfterValidator(_checked(c)) for c in checks))]
