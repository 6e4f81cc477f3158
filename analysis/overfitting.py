"""Per-epoch trajectories of chosen configurations: robust overfitting and training diagnostics.

A configuration's trajectory is the mean over its `ok` seeds at each epoch, with the min and
max (and std) over seeds as the band. Only `ok` trials contribute: a diverged run's last
epochs would drag the mean towards whatever the non-finite loss left behind.
"""

from __future__ import annotations

import pandas as pd

from analysis.select import ARM_KEYS, SETTING_KEYS

# A step of the lr schedule: lr_now falls below half its previous value right after at least
# two epochs at that value. The flatness test keeps the tail of a cosine or linear decay
# (whose last epochs also halve) from being drawn as a schedule change.
DROP_FACTOR = 0.5
FLAT_RTOL = 1e-6


def config_trials(outcomes: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """The `ok` trials of the given configurations (rows of SETTING_KEYS): trial_id + keys."""
    ok = outcomes.loc[outcomes["status"] == "ok", ["trial_id", *SETTING_KEYS]]
    return ok.merge(configs[SETTING_KEYS], on=SETTING_KEYS)


def epoch_curves(
    epochs: pd.DataFrame, outcomes: pd.DataFrame, configs: pd.DataFrame, columns: list[str]
) -> pd.DataFrame:
    """Mean, min, max and std over seeds of `columns` per (configuration, epoch).

    Returns a flat frame with SETTING_KEYS, epoch, n (seeds present at that epoch) and
    `<column>_mean`, `_min`, `_max`, `_std`. For `lambda_min` / `lambda_max` the band uses the
    extreme over seeds of the per-epoch extremes, so take `lambda_min_min` and `lambda_max_max`.
    """
    ids = config_trials(outcomes, configs)
    rows = epochs[["trial_id", "epoch", *columns]].merge(ids, on="trial_id")
    grouped = rows.groupby([*SETTING_KEYS, "epoch"], sort=True)
    stats = grouped[columns].agg(["mean", "min", "max", "std"])
    stats.columns = [f"{column}_{stat}" for column, stat in stats.columns]
    stats["n"] = grouped.size()
    return stats.reset_index()


def schedule_drops(epochs: pd.DataFrame, outcomes: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """Epochs where the lr schedule steps down, per configuration (SETTING_KEYS, epoch).

    The epoch marked is the first one that ends with the lower lr.
    """
    ids = config_trials(outcomes, configs)
    rows = epochs[["trial_id", "epoch", "lr_now"]].merge(ids, on="trial_id").sort_values(["trial_id", "epoch"])
    by_trial = rows.groupby("trial_id", sort=False)["lr_now"]
    prev, prev2 = by_trial.shift(1), by_trial.shift(2)
    flat_before = (prev - prev2).abs() <= FLAT_RTOL * prev2.abs()
    step = (rows["lr_now"] < DROP_FACTOR * prev) & flat_before
    return rows.loc[step, [*SETTING_KEYS, "epoch"]].drop_duplicates().reset_index(drop=True)


def overfitting_table(settings: pd.DataFrame) -> pd.DataFrame:
    """Every setting's score, best epoch, best and last test robust accuracy and their gap."""
    columns = [*SETTING_KEYS, "label", "n_ok", "n_diverged", "n_failed", "n_running", "score"]
    for metric in ["best_epoch", "best_test_robust_acc", "last_test_robust_acc", "gap_robust"]:
        columns += [f"{metric}_mean", f"{metric}_std"]
    return settings[columns].sort_values([*ARM_KEYS, "hp", "lr"]).reset_index(drop=True)
