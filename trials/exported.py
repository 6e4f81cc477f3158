"""An exported model's two files, checked before a network is built from them.

`decaylab export` writes the weights (`model.pt`, a state dict) and a JSON sidecar beside it
(`model.json`) that names the architecture, the dataset's shape and normalisation, and the
weights file with its sha256. Both may come from anyone, so the sidecar is read with bounds
(no network of 10¹³ classes is built from a typo or a hostile file) and the weights are read
with a cap, checked against the sidecar's sha256 (a pair left mismatched by an interrupted
export, or put together by hand, is refused) and loaded through `trials.safe_torch`.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trials.config import ModelConfig
from trials.fields import Text
from trials.files import read_regular
from trials.safe_torch import UnsafeFile, load_bytes

FORMAT = "decaylab-model/2"  # /2: the sidecar names its weights file and their sha256
FORMATS = ("decaylab-model/1", FORMAT)
MAX_SIDECAR = 16 << 20  # the trial's configuration and evaluation: tens of KiB
MAX_WEIGHTS = 4 << 30  # one copy of the weights (a checkpoint holds up to five: `layout.MAX_CHECKPOINT`)
MAX_CLASSES = 100_000  # ImageNet-21k has 21,841


def sidecar_path(path: str | Path) -> Path:
    """The JSON file that describes an exported model file (`model.pt` → `model.json`)."""
    return Path(path).with_suffix(".json")


def _finite(values: list[float], positive: bool) -> bool:
    return all(math.isfinite(v) and (v > 0 or not positive) for v in values)


class Dataset(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Text
    channels: Literal[1, 3]
    size: int = Field(ge=1, le=512)
    classes: int = Field(ge=1, le=MAX_CLASSES)
    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _one_per_channel(self) -> Dataset:
        if not len(self.mean) == len(self.std) == self.channels:
            raise ValueError(f"mean and std must give one value per channel ({self.channels})")
        if not (_finite(self.mean, False) and _finite(self.std, True)):
            raise ValueError("mean must be finite and std finite and > 0")
        return self


class Weights(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file: Text
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Sidecar(BaseModel):
    """What `load_model` needs of a sidecar, with bounds; its other keys are descriptive."""

    model_config = ConfigDict(extra="ignore")

    format: Literal[FORMATS]  # type: ignore[valid-type]
    architecture: ModelConfig
    dataset: Dataset
    weights: Weights | None = None  # required from format 2 (`_checksum`)

    @model_validator(mode="after")
    def _checksum(self) -> Sidecar:
        if self.format != "decaylab-model/1" and self.weights is None:
            raise ValueError("weights: missing (the weights file and its sha256)")
        return self


def read_sidecar(path: str | Path) -> Sidecar:
    """The checked sidecar of the model file `path`; `UnsafeFile` saying what is wrong with it."""
    side = sidecar_path(path)
    try:
        raw: Any = json.loads(read_regular(side, MAX_SIDECAR, follow=True))
        return Sidecar.model_validate(raw)
    except ValidationError as e:
        problem = e.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "the file"
        raise UnsafeFile(f"{side}: {where}: {problem['msg']} (got {str(problem.get('input'))[:60]})") from None
    except (OSError, ValueError, RecursionError) as e:
        raise UnsafeFile(f"{side}: not a decaylab model sidecar ({getattr(e, 'strerror', None) or e})") from None


def read_weights(path: str | Path, sidecar: Sidecar) -> dict:
    """The state dict of the model file `path`, once its bytes match the sidecar's sha256."""
    try:
        data = read_regular(path, MAX_WEIGHTS, follow=True)
    except OSError as e:
        raise UnsafeFile(f"{path}: cannot be read ({e.strerror or e})") from None
    if sidecar.weights is not None and hashlib.sha256(data).hexdigest() != sidecar.weights.sha256:
        raise UnsafeFile(f"{path}: these weights are not the ones {sidecar_path(path).name} describes (sha256 "
                         "differs): an export was interrupted, or the two files come from different exports; run "
                         "`decaylab export` again")
    try:
        state = load_bytes(data, MAX_WEIGHTS)
    except UnsafeFile as e:
        raise UnsafeFile(f"{path}: {e}") from None
    if not isinstance(state, dict):
        raise UnsafeFile(f"{path}: not a state dict")
    return state
