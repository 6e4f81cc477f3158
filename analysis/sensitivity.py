"""Learning-rate sensitivity: accuracy vs lr curves and the scalar summaries of DESIGN.md §6.

Rules (the report repeats them):

* A curve point is the test accuracy at each trial's selected (best-validation) epoch, averaged
  over the seeds of the setting.
* A **diverged** trial counts as accuracy 0.0 — a user who picked that lr got nothing — and
  its point is drawn with an 'x'.
* Failed, running or missing trials are left out; a curve missing any of them, or any lr of
  the grid, is marked incomplete.
* The **best-per-lr envelope** of an arm takes, at each lr, the arm's best-tuned setting for
  that lr (chosen on validation, see `analysis.select`); where every setting at that lr
  diverged it is 0.0.
* **spread** = max − min of robust accuracy over the lrs; **area** = trapezoid integral of
  robust accuracy over log10(lr), divided by log10(lr_max) − log10(lr_min), so it is an
  average accuracy; with a single lr the area is that accuracy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.select import ARM_KEYS, LEVEL, SETTING_KEYS

SENSITIVITY_COLUMNS = [
    *ARM_KEYS,
    *["hp", "label", "n_lr", "spread_best", "area_best", "complete_best"],
    *["spread_envelope", "area_envelope", "complete_envelope"],
]


def lr_curves(settings: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting) with the curve value and its flags, on each level's full lr grid.

    Columns: SETTING_KEYS, label, sens_robust, sens_clean, diverged (some seed diverged),
    missing (no ok or diverged trial: the point is omitted), incomplete (the whole curve).
    """
    grid = settings[[LEVEL, "lr"]].drop_duplicates()
    curves = settings[[*ARM_KEYS, "hp", "label"]].drop_duplicates().merge(grid, on=LEVEL)
    value_cols = ["sens_robust", "sens_clean", "n_diverged", "n_failed", "n_running"]
    curves = curves.merge(settings[[*SETTING_KEYS, *value_cols]], on=SETTING_KEYS, how="left")
    curves["diverged"] = curves["n_diverged"].fillna(0) > 0
    curves["missing"] = curves["sens_robust"].isna()
    gaps = curves["missing"] | (curves["n_failed"].fillna(0) + curves["n_running"].fillna(0) > 0)
    curves["incomplete"] = gaps.groupby([curves[k] for k in [*ARM_KEYS, "hp"]]).transform("any")
    return curves.drop(columns=["n_diverged", "n_failed", "n_running"]).sort_values(SETTING_KEYS)


def envelope(curves: pd.DataFrame, best_per_lr: pd.DataFrame) -> pd.DataFrame:
    """Each arm's best-tuned-per-lr curve: one row per (level, arm, lr) of the grid.

    At an lr with no eligible setting the point is 0.0 if some setting there diverged, else
    omitted (missing). Columns: ARM_KEYS, lr, hp, sens_robust, sens_clean, diverged, missing.
    """
    chosen = best_per_lr[SETTING_KEYS].merge(curves, on=SETTING_KEYS, how="left")
    grid = curves[[*ARM_KEYS, "lr"]].drop_duplicates()
    out = grid.merge(chosen, on=[*ARM_KEYS, "lr"], how="left")
    any_div = curves.groupby([*ARM_KEYS, "lr"])["diverged"].any().rename("any_diverged").reset_index()
    out = out.merge(any_div, on=[*ARM_KEYS, "lr"], how="left")
    fallback = out["hp"].isna() & out["any_diverged"]
    out.loc[fallback, ["sens_robust", "sens_clean"]] = 0.0
    out["diverged"] = out["diverged"].fillna(False).astype(bool) | fallback
    out["missing"] = out["sens_robust"].isna()
    return out[[*ARM_KEYS, "lr", "hp", "sens_robust", "sens_clean", "diverged", "missing"]].sort_values(
        [*ARM_KEYS, "lr"]
    )


def spread_and_area(lr: np.ndarray, acc: np.ndarray) -> tuple[float, float]:
    """(max − min, normalised trapezoid area over log10 lr) of the finite points of one curve."""
    keep = np.isfinite(acc) & np.isfinite(lr)
    lr, acc = np.asarray(lr, float)[keep], np.asarray(acc, float)[keep]
    if len(acc) == 0:
        return float("nan"), float("nan")
    order = np.argsort(lr)
    x, y = np.log10(lr[order]), acc[order]
    spread = float(y.max() - y.min())
    if len(y) == 1 or x[-1] == x[0]:
        return spread, float(y.mean())
    return spread, float(np.trapezoid(y, x) / (x[-1] - x[0]))


def sensitivity_table(curves: pd.DataFrame, env: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Per arm and level: spread and area of the best single setting and of the envelope.

    The best single setting is the arm's best-tuned hyperparameter, kept fixed across all lrs.
    Columns: ARM_KEYS, hp, label, n_lr, spread_best, area_best, complete_best,
    spread_envelope, area_envelope, complete_envelope.
    """
    single = best[[*ARM_KEYS, "hp", "label"]].merge(curves.drop(columns="label"), on=[*ARM_KEYS, "hp"])
    rows = []
    for key, group in single.groupby(ARM_KEYS, sort=True):
        arm_env = env.merge(pd.DataFrame([key], columns=ARM_KEYS), on=ARM_KEYS)
        spread_b, area_b = spread_and_area(group["lr"].to_numpy(), group["sens_robust"].to_numpy())
        spread_e, area_e = spread_and_area(arm_env["lr"].to_numpy(), arm_env["sens_robust"].to_numpy())
        rows.append(
            {
                **dict(zip(ARM_KEYS, key, strict=True)),
                "hp": group["hp"].iloc[0],
                "label": group["label"].iloc[0],
                "n_lr": len(group),
                "spread_best": spread_b,
                "area_best": area_b,
                "complete_best": not group["incomplete"].iloc[0],
                "spread_envelope": spread_e,
                "area_envelope": area_e,
                "complete_envelope": not arm_env["missing"].any(),
            }
        )
    return pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)
