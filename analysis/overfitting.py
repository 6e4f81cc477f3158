"""Per-epoch trajectories of chosen configurations: robust overfitting and training diagnostics.

A trajectory is the mean over the configuration's `ok` seeds at each epoch, with a 95%
t-interval over seeds as its band (none with one seed). Only `ok` trials contribute: a diverged
run's last epochs would drag the mean towards whatever the non-finite loss left behind. The
accuracies are the per-epoch evaluation on `eval.test_examples` (and the validation split), not
the final evaluation of the tables.
"""

from __future__ import annotations

import pandas as pd

from analysis import stats
from analysis.select import CONFIG_KEYS

# A step of the lr schedule: lr_now falls below half its previous value right after at least
# two epochs at that value. The flatness test keeps the tail of a cosine or linear decay
# (whose last epochs also halve) from being drawn as a schedule change.
DROP_FACTOR = 0.5
FLAT_RTOL = 1e-6


def config_trials(outcomes: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """The `ok` trials of the given configurations (rows with CONFIG_KEYS): trial_id + keys."""
    ok = outcomes.loc[outcomes["status"] == "ok", ["trial_id", *CONFIG_KEYS]]
    return ok.merge(configs[CONFIG_KEYS], on=CONFIG_KEYS)


def epoch_curves(
    epochs: pd.DataFrame, outcomes: pd.DataFrame, configs: pd.DataFrame, columns: list[str]
) -> pd.DataFrame:
    """Mean, 95% band, min and max over seeds of `columns` per (configuration, epoch).

    Returns a flat frame with CONFIG_KEYS, epoch, n (seeds present at that epoch) and
    `<column>_mean`, `_low`, `_high` (t-interval; NaN with one seed), `_min`, `_max`.
    """
    ids = config_trials(outcomes, configs)
    rows = epochs[["trial_id", "epoch", *columns]].merge(ids, on="trial_id")
    grouped = rows.groupby([*CONFIG_KEYS, "epoch"], sort=True)
    agg = grouped[columns].agg(["mean", "std", "count", "min", "max"])
    out = pd.DataFrame(index=agg.index)
    for column in columns:
        half = stats.t_half_widths(agg[(column, "std")].to_numpy(), agg[(column, "count")].to_numpy())
        mean = agg[(column, "mean")].to_numpy(float)
        out[f"{column}_mean"], out[f"{column}_low"], out[f"{column}_high"] = mean, mean - half, mean + half
        out[f"{column}_min"], out[f"{column}_max"] = agg[(column, "min")], agg[(column, "max")]
    out["n"] = grouped.size()
    return out.reset_index()


def schedule_drops(epochs: pd.DataFrame, outcomes: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """Epochs where the lr schedule steps down, per configuration (CONFIG_KEYS, epoch).

    The epoch marked is the first one that ends with the lower lr.
    """
    ids = config_trials(outcomes, configs)
    rows = epochs[["trial_id", "epoch", "lr_now"]].merge(ids, on="trial_id").sort_values(["trial_id", "epoch"])
    by_trial = rows.groupby("trial_id", sort=False)["lr_now"]
    prev, prev2 = by_trial.shift(1), by_trial.shift(2)
    flat_before = (prev - prev2).abs() <= FLAT_RTOL * prev2.abs()
    step = (rows["lr_now"] < DROP_FACTOR * prev) & flat_before
    return rows.loc[step, [*CONFIG_KEYS, "epoch"]].drop_duplicates().reset_index(drop=True)
