"""Cross-fitting: every tuning seed is judged by a configuration chosen without it.

Choosing each arm's configuration on the same seeds that then judge it is optimistic: a trained
model's luck (its initialisation, its data order) raises its validation score and its test accuracy
together, the configuration with the luckiest seeds wins, and the more configurations an arm has, the
luckier its winner. Leave-one-seed-out removes that: for each tuning seed s, the selection rule
(`analysis.select.choose`) picks each arm's configuration from the scores of its *other* seeds, and
seed s contributes that configuration's test value on seed s. Seed s's luck never helped choose what
it judges, so when the configurations do not differ the expected difference is zero whatever the grid
sizes. What is tested is the procedure "tune this arm on the other seeds, then train once", which is
what a user of the arm does; the configuration may differ from one held-out seed to the next.

Eligibility is decided on all seeds (a configuration with an unfinished seed is never chosen), and a
configuration's fold score is the selection mean of its other seeds' scores, summed in seed order as
the selection rule sums them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.select import ARM_KEYS, CONFIG_KEYS, LEVEL, choose, selection_means

HELD_OUT = "seed"  # the held-out seed of a fold is the seed its value is taken from


def fold_scores(trials: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and held-out seed s of its level: the selection mean of its scores on the other seeds."""
    keys = [*CONFIG_KEYS, "setting_rank"]
    table = trials.groupby([*keys, "seed"], sort=True)["score"].first().unstack("seed")
    matrix = table.to_numpy(dtype=float)
    folds = []
    for j, seed in enumerate(table.columns):
        without = matrix.copy()
        without[:, j] = np.nan  # a NaN is skipped by the sum, as a missing score is
        folds.append(table.index.to_frame(index=False).assign(**{HELD_OUT: seed, "score": selection_means(without)}))
    if not folds:
        return pd.DataFrame(columns=[*keys, HELD_OUT, "score"])
    long = pd.concat(folds, ignore_index=True)
    # A fold exists at a level only for the seeds tuned at that level.
    tuned = trials[[LEVEL, "seed"]].drop_duplicates()
    return long.merge(tuned, on=[LEVEL, HELD_OUT])


def cross_fitted(
    trials: pd.DataFrame, eligible: pd.DataFrame | None = None, *, per_lr: bool = False, column: str = "value"
) -> pd.DataFrame:
    """Per (level, arm[, lr], held-out seed): the configuration chosen on the other seeds and its `column`
    on the held-out seed.

    `trials` are tuning trials with CONFIG_KEYS, `setting_rank`, `seed`, `score` and `column` (any
    other column, e.g. `status` or `trial_id`, is carried along); `eligible` lists the
    configurations (CONFIG_KEYS) selection may choose, None for all. Columns: ARM_KEYS, `seed`,
    `setting`, `lr`, `setting_rank`, `fold_score` (the chosen configuration's score on the other
    seeds), `column` (NaN where the held-out seed has no number), and the carried columns. A fold
    with no eligible configuration of an arm has no row.
    """
    scores = fold_scores(trials)
    if eligible is None:
        scores = scores.assign(eligible=True)
    else:
        flags = eligible[CONFIG_KEYS].assign(eligible=True).drop_duplicates(CONFIG_KEYS)
        scores = scores.merge(flags, on=CONFIG_KEYS, how="left")
        scores["eligible"] = scores["eligible"].fillna(False).astype(bool)
    by = [*ARM_KEYS, "lr", HELD_OUT] if per_lr else [*ARM_KEYS, HELD_OUT]
    chosen = choose(scores, by).rename(columns={"score": "fold_score"})
    fixed = {*CONFIG_KEYS, "setting_rank", "seed", "score", column}
    carried = [c for c in trials.columns if c not in fixed]
    values = trials[[*CONFIG_KEYS, "seed", column, *carried]].drop_duplicates([*CONFIG_KEYS, "seed"])
    out = chosen.drop(columns="eligible").merge(values, on=[*CONFIG_KEYS, "seed"], how="left")
    return out.sort_values([*ARM_KEYS, "seed", "lr"], kind="stable").reset_index(drop=True)
