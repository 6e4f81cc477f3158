"""Learning-rate sensitivity: accuracy-vs-lr curves and their per-seed summaries.

A curve point is the final evaluation's headline accuracy (best checkpoint) of a configuration,
averaged over its seeds, with a 95% t-interval over seeds; a diverged seed counts 0. Each arm
has two curves: its **best single setting** (the best-tuned setting, kept fixed at every lr) and
its **best per lr** (at each lr the configuration chosen on validation at that lr; 0 where every
configuration there diverged).

**Spread** (max − min over the lrs) and **LR-AUC** (the trapezoid area under accuracy vs
log10 lr, divided by the log10 range, i.e. an average accuracy over the grid) are computed per
seed and then averaged, each with its 95% t-interval over seeds as a description; arms are
compared paired by seed in `analysis.secondary`, not by these intervals. The per-seed best-per-lr
cells are the cross-fitted ones of `analysis.compare.lr_cells`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import stats
from analysis.select import ARM_KEYS, CONFIG_KEYS, LEVEL, SETTING_KEYS

CURVE_VALUES = ["value_mean", "value_ci", "value_n", "value_clean_mean", "value_clean_ci"]


def lr_curves(configs: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, lr of the level's grid): the seed mean and CI, and flags.

    `diverged`: some seed diverged; `missing`: no counted seed (the point is omitted);
    `incomplete` (per setting): some point missing, or some seed failed or still running.
    """
    grid = configs[[LEVEL, "lr"]].drop_duplicates()
    settings = configs[[*SETTING_KEYS, "setting_rank"]].drop_duplicates(SETTING_KEYS)
    counts = ["n_diverged", "n_failed", "n_running", "n_stopped", "n_no_eval"]
    curves = settings.merge(grid, on=LEVEL).merge(
        configs[[*CONFIG_KEYS, *CURVE_VALUES, *counts]], on=CONFIG_KEYS, how="left"
    )
    curves["diverged"] = curves["n_diverged"].fillna(0) > 0
    curves["missing"] = curves["value_mean"].isna()
    gaps = curves["missing"] | (curves[counts[1:]].fillna(0).sum(axis=1) > 0)
    curves["incomplete"] = gaps.groupby([curves[k] for k in SETTING_KEYS]).transform("any")
    return curves.drop(columns=counts).sort_values([*ARM_KEYS, "setting_rank", "lr"]).reset_index(drop=True)


def envelope(curves: pd.DataFrame, best_per_lr: pd.DataFrame) -> pd.DataFrame:
    """Each arm's best-per-lr curve: one row per (level, arm, lr of the grid)."""
    chosen = best_per_lr[CONFIG_KEYS].merge(curves, on=CONFIG_KEYS, how="left")
    grid = curves[[*ARM_KEYS, "lr"]].drop_duplicates()
    out = grid.merge(chosen, on=[*ARM_KEYS, "lr"], how="left")
    any_div = curves.groupby([*ARM_KEYS, "lr"])["diverged"].any().rename("any_diverged").reset_index()
    out = out.merge(any_div, on=[*ARM_KEYS, "lr"], how="left")
    fallback = out["setting"].isna() & out["any_diverged"].fillna(False).astype(bool)
    out.loc[fallback, ["value_mean", "value_clean_mean"]] = 0.0
    out.loc[fallback, "setting"] = "every setting diverged"
    out["diverged"] = out["diverged"].fillna(False).astype(bool) | fallback
    out["missing"] = out["value_mean"].isna()
    return out.sort_values([*ARM_KEYS, "lr"]).reset_index(drop=True)


def single_cells(outcomes: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Per (level, arm, seed, lr) the seed's value in the arm's best-tuned setting at that lr."""
    rows = outcomes.merge(best[SETTING_KEYS], on=SETTING_KEYS)
    grid = outcomes[[*ARM_KEYS, "lr"]].drop_duplicates()
    cells = grid.merge(outcomes[[*ARM_KEYS, "seed"]].drop_duplicates(), on=ARM_KEYS)
    cells = cells.merge(rows[[*ARM_KEYS, "lr", "seed", "value"]], on=[*ARM_KEYS, "lr", "seed"], how="left")
    return _with_missing(cells.merge(best[ARM_KEYS], on=ARM_KEYS))


def _with_missing(cells: pd.DataFrame) -> pd.DataFrame:
    cells["missing"] = [f"lr {lr:g}" if pd.isna(v) else "" for lr, v in zip(cells["lr"], cells["value"], strict=True)]
    return cells[[*ARM_KEYS, "seed", "lr", "value", "missing"]].sort_values([*ARM_KEYS, "seed", "lr"])


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


def per_seed(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (level, arm, seed): spread and LR-AUC over the lr grid; NaN for a seed lacking an lr."""
    rows = []
    for key, group in cells.groupby([*ARM_KEYS, "seed"], sort=True):
        complete = group["value"].notna().all()
        spread, area = spread_and_area(group["lr"].to_numpy(), group["value"].to_numpy())
        rows.append(
            dict(zip([*ARM_KEYS, "seed"], key, strict=True))
            | {
                "spread": spread if complete else np.nan,
                "area": area if complete else np.nan,
                "mean": group["value"].mean() if complete else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=[*ARM_KEYS, "seed", "spread", "area", "mean"])


def sensitivity_table(single: pd.DataFrame, env: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Per arm and level: spread and LR-AUC of the best single setting and of best-per-lr, with CIs.

    `single` and `env` are `per_seed` frames; each number is a mean over complete seeds.
    """
    rows = []
    for _, chosen in best.iterrows():
        key = {k: chosen[k] for k in ARM_KEYS}
        row = key | {"setting": chosen["setting"]}
        for name, frame in (("best", single), ("envelope", env)):
            seeds = frame.merge(pd.DataFrame([key]), on=ARM_KEYS)
            row[f"n_seeds_{name}"] = int(seeds["spread"].notna().sum())
            for metric in ("spread", "area"):
                values = seeds[metric].to_numpy(float)
                low, high = stats.t_interval(values)
                finite = values[np.isfinite(values)]
                row[f"{metric}_{name}"] = float(finite.mean()) if len(finite) else np.nan
                row[f"{metric}_{name}_low"], row[f"{metric}_{name}_high"] = low, high
        rows.append(row)
    return pd.DataFrame(rows)
