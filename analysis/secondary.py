"""Secondary comparisons: how the arms' learning-rate curves differ, and their weight norms.

* **Spread** and **LR-AUC** of each arm's selected setting held at every lr of the grid (per seed:
  max − min over the lrs, and the mean accuracy over log10 lr), and the **worst-lr accuracy** of its
  cross-fitted best-per-lr curve (`analysis.compare`), each compared with the reference's paired by
  seed through `analysis.verdicts`, never by whether two intervals overlap. They form a family of
  their own, adjusted like the primary one; their words are "higher"/"lower" (a higher spread is a
  *more* lr-sensitive arm) and they are labelled secondary: on the tuning seeds, describing the
  grid that selection searched.
* **Weight norm**: per seed, log(‖w‖ of the arm / ‖w‖ of the reference) of the trials behind the
  headline, so that the geometric mean ratio and its interval (the sign-flip interval of the log
  ratios, exponentiated) read the same whichever arm is the denominator. A description, with no
  verdict.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import compare, verdicts
from analysis.select import ARM_KEYS, LEVEL

TESTS = {
    "spread": "spread over the lr grid of the selected setting (max − min; lower: less sensitive)",
    "lr_auc": "LR-AUC of the selected setting (its mean accuracy over log10 lr)",
    "worst_lr": "worst-lr accuracy of the best-per-lr curve",
}
WORDS = {"better": "higher", "worse": "lower"}
NORM_COLUMNS = [LEVEL, "stage", "method", "n", "ratio", "ratio_low", "ratio_high", "ratio_level"]


def secondary_values(single: pd.DataFrame, lr_stats: pd.DataFrame, references: dict) -> pd.DataFrame:
    """Long per-seed values of the secondary tests at the levels with a reference.

    `single` is `analysis.sensitivity.per_seed` of the selected settings' cells, `lr_stats` is
    `analysis.compare.lr_seed_stats`.
    """
    parts = [
        single.rename(columns={"spread": "value"}).assign(test="spread"),
        single.rename(columns={"area": "value"}).assign(test="lr_auc"),
        lr_stats.rename(columns={"worst_lr": "value"}).assign(test="worst_lr"),
    ]
    columns = [LEVEL, "test", *ARM_KEYS[1:], "seed", "value"]
    values = pd.concat([p[columns] for p in parts], ignore_index=True)
    compared = [level for level, reference in references.items() if reference is not None]
    return values[values[LEVEL].isin(compared)].reset_index(drop=True)


def secondary_family(
    values: pd.DataFrame, reference: str | None, settings: compare.Settings, smoke: bool
) -> pd.DataFrame:
    """One verdict row per (level, test, non-reference arm), adjusted within this family; `verdict` in
    words of direction (higher / lower / equivalent / inconclusive / too few seeds / smoke test)."""
    rows = compare.verdict_rows(values, reference, settings, smoke, [LEVEL, "test"])
    rows["verdict"] = rows["verdict"].replace(WORDS)
    return rows


def norm_ratios(headline: pd.DataFrame, references: dict, alpha: float) -> pd.DataFrame:
    """Per headline comparison: the geometric mean over paired seeds of ‖w‖ arm / ‖w‖ reference, with
    the sign-flip interval of the log ratios at its attainable level (NaN below 6 seeds)."""
    rows = []
    for (level, stage), group in headline.groupby([LEVEL, "stage"], sort=True):
        reference = references.get(level)
        ref = group[group["method"] == reference].set_index("seed")["weight_norm_last"]
        for method in [m for m in dict.fromkeys(group["method"]) if m != reference]:
            arm = group[group["method"] == method].set_index("seed")["weight_norm_last"]
            both = pd.concat([arm.rename("arm"), ref.rename("ref")], axis=1).dropna()
            both = both[(both["arm"] > 0) & (both["ref"] > 0)]
            rows.append({LEVEL: level, "stage": stage, "method": method, **_ratio(both, alpha)})
    return pd.DataFrame(rows, columns=NORM_COLUMNS)


def _ratio(both: pd.DataFrame, alpha: float) -> dict:
    nan = math.nan
    if both.empty:
        return {"n": 0, "ratio": nan, "ratio_low": nan, "ratio_high": nan, "ratio_level": nan}
    logs = np.log(both["arm"].to_numpy(float)) - np.log(both["ref"].to_numpy(float))
    test = verdicts.sign_flip(logs, alpha)
    return {
        "n": len(logs),
        "ratio": math.exp(test.mean),
        "ratio_low": math.exp(test.ci_low),
        "ratio_high": math.exp(test.ci_high),
        "ratio_level": test.ci_level,
    }
