"""Fixed weight decay: coupled L2 decay with a constant λ, exactly `torch.optim.SGD(weight_decay=λ)`.

The baseline every other arm is compared with. `λ·w` is added to the gradient after
`backward()`, so the decay goes through SGD's momentum buffer (coupled decay).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from trials.arms.base import ArmGrid
from trials.fields import NonNegative, grid, non_negative


class Grid(ArmGrid):
    kind: Literal["fixed"]
    lam: grid(NonNegative, non_negative, allow_empty=True) | None = Field(
        None, alias="lambda", description="decay coefficients λ ≥ 0 (0 = no decay)")
    SYMBOLS: ClassVar[dict[str, str]] = {"lam": "λ"}
    DECAY_QUANTITY: ClassVar[tuple[str, str] | None] = ("λ", "coupled L2 coefficient")


def build(params, *, lam: float):
    from trials.weight_decay import FixedWeightDecay

    return FixedWeightDecay(params, lam)
