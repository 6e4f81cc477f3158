"""The clean-vs-robust trade-off: each arm's Pareto front over its configurations.

A point is a configuration (setting + lr) with at least one finished seed, its seeds averaged:
the final evaluation's clean and headline (robust) accuracy at the best checkpoint, diverged seeds
counted 0. A configuration
is on its arm's front when no other configuration of the arm is at least as good on both and
better on one. Fronts are shown on test numbers for reading, not for choosing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.select import ARM_KEYS, CONFIG_KEYS

PARETO_COLUMNS = [*CONFIG_KEYS, "setting_rank", "clean", "robust", "n_seeds", "on_front"]


def front_mask(clean: np.ndarray, robust: np.ndarray) -> np.ndarray:
    """True where no other point is ≥ on both coordinates and > on one."""
    c, r = np.asarray(clean, float)[:, None], np.asarray(robust, float)[:, None]
    dominated = ((c <= c.T) & (r <= r.T) & ((c < c.T) | (r < r.T))).any(axis=1)
    return ~dominated


def pareto_points(configs: pd.DataFrame) -> pd.DataFrame:
    """Every configuration with both numbers, and whether it is on its arm's front."""
    # A configuration whose every seed diverged has no checkpoint: it is no trade-off anyone could pick.
    points = configs[configs["eligible"] & configs["value_mean"].notna() & configs["value_clean_mean"].notna()]
    points = points.rename(columns={"value_clean_mean": "clean", "value_mean": "robust", "value_n": "n_seeds"})
    points = points[[*CONFIG_KEYS, "setting_rank", "clean", "robust", "n_seeds"]].copy()
    points["on_front"] = False
    for _, group in points.groupby(ARM_KEYS, sort=False):
        points.loc[group.index, "on_front"] = front_mask(group["clean"].to_numpy(), group["robust"].to_numpy())
    return points.sort_values([*ARM_KEYS, "clean"]).reset_index(drop=True)[PARETO_COLUMNS]
