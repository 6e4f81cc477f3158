"""Test-set uncertainty of the headline: a bootstrap over seeds and test examples together.

The seed-level interval treats the final evaluation's test examples as fixed: it says how much the
difference moves with the seed, on *these* test images. When the evaluation rows carry per-example
correctness (`correct_*`, packed by `analysis.verdicts.pack_correct`), each headline comparison also
gets `analysis.verdicts.two_level_interval`: seeds and test examples resampled together, the examples
shared by both arms (a hard image is hard for both), at the level of the seed-level interval. A
diverged seed counts as wrong on every example, as it counts 0 elsewhere. Without correctness for
every paired seed of both arms there is no such interval, and the claim is conditional on the split
and the test subset.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import verdicts
from analysis.select import LEVEL

RESAMPLES = 2000
TOO_FEW = "too few seeds for an interval"
COLUMNS = [LEVEL, "stage", "method", "two_level_low", "two_level_high", "two_level_level", "two_level_note"]


def two_level(values: pd.DataFrame, tests: pd.DataFrame, reference: str | None) -> pd.DataFrame:
    """Per headline comparison (rows of `tests`): the two-level interval, or a note saying why there is none."""
    rows = []
    for _, test in tests.iterrows():
        low, high, level, note = _interval(values, test, reference)
        rows.append(
            {LEVEL: test[LEVEL], "stage": test["stage"], "method": test["method"]}
            | {"two_level_low": low, "two_level_high": high, "two_level_level": level, "two_level_note": note}
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _interval(values: pd.DataFrame, test: pd.Series, reference: str | None) -> tuple[float, float, float, str]:
    nan = math.nan
    group = values[(values[LEVEL] == test[LEVEL]) & (values["stage"] == test["stage"])]
    sides = [group[group["method"] == m].set_index("seed") for m in (test["method"], reference)]
    try:
        arrays = [_correctness(side, test["seeds"]) for side in sides]
    except ValueError:  # a damaged packed string: the run directory is anyone's
        return nan, nan, nan, "the stored per-example correctness could not be read"
    if any(a is None for a in arrays):
        return nan, nan, nan, "per-example correctness was not stored"
    arm, ref = arrays
    if not math.isfinite(test["ci_level"]):  # no seed-level interval to stand beside
        return nan, nan, nan, TOO_FEW
    if arm.shape != ref.shape:
        return nan, nan, nan, "the arms were evaluated on different numbers of test examples"
    low, high = verdicts.two_level_interval(arm, ref, level=float(test["ci_level"]), resamples=RESAMPLES)
    return low, high, float(test["ci_level"]), ""


def _correctness(side: pd.DataFrame, seeds: list[int]) -> np.ndarray | None:
    """Seeds × examples booleans of one arm at the paired seeds; None when any seed lacks them."""
    stored = [side.loc[s] for s in seeds if s in side.index and side.loc[s]["status"] != "diverged"]
    counts = {int(r["examples"]) for r in stored if pd.notna(r["examples"])}
    if len(counts) != 1 or any(pd.isna(r["correct"]) for r in stored):
        return None
    n = counts.pop()
    rows = []
    for seed in seeds:
        row = side.loc[seed]
        diverged = row["status"] == "diverged"
        rows.append(np.zeros(n, dtype=bool) if diverged else verdicts.unpack_correct(str(row["correct"]), n))
    return np.vstack(rows)
