"""Hyperparameter selection — always on validation, never on test — and the reference arm.

A *setting* is one value of each of an arm's hyperparameters (its `setting` label, e.g.
"λ=0.0005, stop=0.25"); a *configuration* is a setting at one lr. Both live within one
label-noise level. Selection reads only each trial's `score` (trials.selection): a
configuration's score is the mean over its seeds, diverged seeds counting 0.0.
"""

from __future__ import annotations

import pandas as pd

from analysis import stats
from analysis.load import Run
from trials import schema

LEVEL = "label_noise"
ARM_KEYS = [LEVEL, "method", "kind"]
SETTING_KEYS = [*ARM_KEYS, "setting"]
CONFIG_KEYS = [*SETTING_KEYS, "lr"]

RULES = [
    "**Best epoch of a trial**: the epoch with the highest validation robust accuracy (the first "
    "of ties); the weights of that epoch are the trial's *best checkpoint*.",
    "**Score of a configuration** (a setting of the arm's hyperparameters at one learning rate): the "
    "mean over its seeds of each trial's best validation robust accuracy. A diverged seed counts as "
    "0; failed, stopped and running seeds are left out.",
    "**Best-tuned configuration of an arm**: the one with the highest score among those with at "
    "least one finished (`ok`) seed; ties go to the configuration listed first in the study (its "
    "hyperparameter values in the study file's order, then the learning rate). *Best per lr*: the same "
    "choice made at each learning rate separately.",
    "**Test numbers are never used to choose**: they are looked up only after the choice.",
]

# Per-trial numbers summarised over the seeds of a configuration (mean, std, count, CI half-width).
CONFIG_METRICS = [
    "value",
    "value_last",
    "value_clean",
    "best_clean_acc",
    "best_fgsm_acc",
    "best_pgd_acc",
    "best_autoattack_acc",
    "last_clean_acc",
    "last_fgsm_acc",
    "last_pgd_acc",
    "last_autoattack_acc",
    "final_gap",
    "best_epoch",
    "best_test_robust_acc",
    "last_test_robust_acc",
    "weight_norm_last",
    "last_noisy_fit_acc",
    "examples",
    "train_seconds",
]
COUNT_STATUSES = ("ok", "diverged", "failed", "stopped", "running")


def config_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: counts by status, score, and mean/std/n/ci of CONFIG_METRICS.

    `eligible` marks the configurations selection may choose. `train_seconds_sum` is what the
    configuration cost to run (all its seeds).
    """
    keys = [*CONFIG_KEYS, "setting_rank"]
    groups = outcomes.groupby(keys, sort=True, dropna=False)
    table = groups[["score"]].mean()
    flags = {f"n_{status}": outcomes["status"].eq(status) for status in COUNT_STATUSES}
    flags |= {"n_no_eval": outcomes["no_eval"], "n_counted": outcomes["counted"]}
    counts = pd.DataFrame(flags).astype(int).groupby([outcomes[k] for k in keys], sort=True, dropna=False).sum()
    table = table.join(counts)
    numbers = outcomes[[*keys, *CONFIG_METRICS]].astype({m: "float64" for m in CONFIG_METRICS})
    agg = numbers.groupby(keys, sort=True, dropna=False)[CONFIG_METRICS].agg(["mean", "std", "count"])
    agg.columns = [f"{metric}_{stat if stat != 'count' else 'n'}" for metric, stat in agg.columns]
    table = table.join(agg)
    for metric in CONFIG_METRICS:
        table[f"{metric}_ci"] = stats.t_half_widths(table[f"{metric}_std"], table[f"{metric}_n"])
    table["train_seconds_sum"] = groups["train_seconds"].sum(min_count=1)
    hyper = outcomes.groupby(keys, sort=True, dropna=False)[list(schema.HYPERPARAMETER_COLUMNS)].first()
    table = table.join(hyper).reset_index()
    table["eligible"] = (table["n_ok"] > 0) & table["score"].notna()
    return table


def best_tuned(configs: pd.DataFrame, per_lr: bool = False) -> pd.DataFrame:
    """Each arm's best-tuned configuration per level (per level and lr when `per_lr`)."""
    by = [*ARM_KEYS, "lr"] if per_lr else ARM_KEYS
    order = [*by, "score", "setting_rank", "lr"]
    ascending = [True] * len(by) + [False, True, True]
    candidates = configs[configs["eligible"]].sort_values(order, ascending=ascending, kind="stable")
    return candidates.drop_duplicates(by, keep="first").reset_index(drop=True)


def reference_arms(run: Run, best: pd.DataFrame) -> dict[float, str | None]:
    """Per level, the reference arm: `analysis.reference` of the study, else its first fixed arm.

    None at a level where that arm has no best-tuned configuration (nothing finished).
    """
    wanted = run.study_field("analysis", "reference")
    if wanted is None:
        kinds = dict(zip(best["method"], best["kind"], strict=True))
        kinds |= {m: arm.get("kind") for m, arm in run.study_field("methods", default={}).items()}
        wanted = next((m for m in run.method_order if kinds.get(m) == "fixed"), None)
    levels = sorted(best[LEVEL].unique().tolist())
    return {level: wanted if ((best[LEVEL] == level) & (best["method"] == wanted)).any() else None for level in levels}


def arm_order(run: Run, frame: pd.DataFrame) -> list[str]:
    """The arms present in `frame`, in study order (the same order, and colours, in every figure)."""
    present = set(frame["method"].astype(str))
    return [m for m in run.method_order if m in present]


def hyperparameters_of(kind: str) -> list[str]:
    """The result columns of arm kind `kind`'s hyperparameters, in declaration order."""
    from trials import arms

    return arms.hyperparameters(kind)


def symbol(kind: str, name: str) -> str:
    """How the report names a parameter: the arm's symbol (λ, λ_awd, θ, σ), else its name (lr, seed)."""
    from trials import arms

    return arms.grid_class(kind).SYMBOLS.get(name, name)
