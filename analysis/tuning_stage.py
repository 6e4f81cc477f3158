"""An Optuna tuning stage (`search.kind: optuna`): the best validation score found so far, in trial order.

The sampler concentrates its configurations where earlier ones scored well, and an early-stopping
scheduler stops the unpromising ones (status "stopped", no score): the configurations are not a
uniform sample of a grid, and the survivors are not all of them. The grid statistics (LR curves,
tuning budget, the LR test) assume a uniform grid of lrs shared by every configuration, so they are
not computed for such a run; what it does show is how fast each arm's search found its best
configuration. Trial order is the order in which the run's trials.parquet lists the configurations
(the result files record no sampler clock).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.select import ARM_KEYS, CONFIG_KEYS

COLUMNS = [*CONFIG_KEYS, "order", "score", "stopped", "eligible", "best_so_far"]


def is_optuna(search_kind: object) -> bool:
    return search_kind == "optuna"


def best_so_far(trial_rows: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """Per (level, arm): its configurations in trial order (`order` from 1), each one's score, whether it
    was stopped early, and the best score among the eligible configurations so far."""
    keys = trial_rows[CONFIG_KEYS].astype({"lr": float}).drop_duplicates()
    position = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys), name="position")
    table = configs[[*CONFIG_KEYS, "score", "eligible", "n_stopped"]].join(position, on=CONFIG_KEYS)
    table = table.sort_values([*ARM_KEYS, "position"], kind="stable", na_position="last")
    table["order"] = table.groupby(ARM_KEYS, sort=False).cumcount() + 1
    table["stopped"] = table["n_stopped"] > 0
    counted = table["score"].where(table["eligible"])
    arms = [table[k] for k in ARM_KEYS]
    table["best_so_far"] = counted.groupby(arms, sort=False).cummax().groupby(arms, sort=False).ffill()
    return table[COLUMNS].reset_index(drop=True)
