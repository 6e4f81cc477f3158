"""Hyperparameter selection — always on validation, never on test — and the reference arm.

A *setting* is one value of each of an arm's hyperparameters (its `setting` label, e.g.
"λ=0.0005, stop=0.25"); a *configuration* is a setting at one lr. Both live within one
label-noise level and the tuning stage (`stage` "tune"). Selection reads only each trial's
`score` (trials.selection): a configuration's score is the mean over its seeds, diverged seeds
counting 0.0, summed seed by seed in seed order exactly as `trials.selection.best_tuned` sums them,
so that both break ties alike (a test checks that they choose the same on random tables).

A configuration is *eligible* only when every seed it is due (the study's `seeds`, or for an Optuna
stage its first `seeds_per_trial`) has finished, ok or diverged, and one of them is ok: a mean over
the one seed that finished first is noisier than a mean over six, and a maximum over means of
unequal noise favours the noisiest. The others are listed with the reason (`left_out`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import stats
from analysis.load import Run
from trials import schema, selection

LEVEL = "label_noise"
ARM_KEYS = [LEVEL, "method", "kind"]
SETTING_KEYS = [*ARM_KEYS, "setting"]
CONFIG_KEYS = [*SETTING_KEYS, "lr"]
FINISHED = ("ok", "diverged")  # ended on their own: a score that will not change

RULES = [
    "**Best epoch of a trial**: the epoch with the highest validation robust accuracy (the first "
    "of ties); the weights of that epoch are the trial's *best checkpoint*.",
    "**Score of a configuration** (a setting of the arm's hyperparameters at one learning rate): the "
    "mean over its tuning seeds of each trial's best validation robust accuracy. A diverged seed counts as 0.",
    "**Eligible configurations**: only those whose every tuning seed has finished (ok or diverged), one of "
    "them ok. A configuration with seeds failed, stopped, running or not started is left out of the choice, "
    "and the report lists it (a mean over fewer seeds is noisier, and the highest of noisy means wins too "
    "often).",
    "**Selected configuration of an arm**: the eligible one with the highest score; ties go to the "
    "configuration listed first in the study (its hyperparameter values in the study file's order, then the "
    "learning rate). *Best per lr*: the same choice made at each learning rate separately.",
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


def selection_means(scores: np.ndarray) -> np.ndarray:
    """Row means of the finite entries of a configurations × seeds array, summed left to right.

    The same float additions, in the same order, as `trials.selection.best_tuned` (a Python sum of
    the scores in seed order), so a tie there is a tie here. NaN for a row without a finite entry.
    """
    scores = np.asarray(scores, dtype=float)
    total, count = np.zeros(len(scores)), np.zeros(len(scores))
    for column in scores.T:
        finite = np.isfinite(column)
        total = np.where(finite, total + np.where(finite, column, 0.0), total)
        count += finite
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def expected_seeds(run: Run, tune: pd.DataFrame) -> dict[float, list[int]]:
    """Per level, the tuning seeds every configuration is due: the study's `seeds` (an Optuna stage's first
    `seeds_per_trial`), else, without a usable manifest, every seed seen at that level."""
    levels = sorted(tune[LEVEL].unique().tolist())
    seeds = run.study_field("seeds")
    if isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        per_trial = run.study_field("search", "seeds_per_trial")
        if run.study_field("search", "kind") == "optuna" and isinstance(per_trial, int) and per_trial > 0:
            seeds = seeds[:per_trial]
        return dict.fromkeys(levels, sorted(seeds))
    return {level: sorted(int(s) for s in tune.loc[tune[LEVEL] == level, "seed"].unique()) for level in levels}


def config_table(outcomes: pd.DataFrame, expected: dict[float, list[int]] | None = None) -> pd.DataFrame:
    """One row per configuration of the tuning trials `outcomes`: counts by status, score, and
    mean/std/n/ci of CONFIG_METRICS.

    `eligible` marks the configurations selection may choose, `left_out` says why another one may not
    (empty when eligible), `unfinished` whether that is for want of finished seeds. `expected` maps a
    level to the seeds each configuration is due (default: every seed seen at the level).
    `train_seconds_sum` is what the configuration cost to run (all its seeds).
    """
    keys = [*CONFIG_KEYS, "setting_rank"]
    groups = outcomes.groupby(keys, sort=True, dropna=False)
    by_seed = outcomes.groupby([*keys, "seed"], sort=True, dropna=False)["score"].first().unstack("seed")
    table = pd.DataFrame({"score": selection_means(by_seed.to_numpy())}, index=by_seed.index)
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
    return _eligibility(table, outcomes, expected)


def _eligibility(table: pd.DataFrame, outcomes: pd.DataFrame, expected: dict[float, list[int]] | None) -> pd.DataFrame:
    """`n_expected`, `n_finished`, `unfinished`, `eligible` and `left_out` of each configuration."""
    if expected is None:
        expected = {lv: sorted(outcomes.loc[outcomes[LEVEL] == lv, "seed"].unique()) for lv in table[LEVEL].unique()}
    due = pd.DataFrame([(lv, s) for lv, seeds in expected.items() for s in seeds], columns=[LEVEL, "seed"])
    rows = outcomes.merge(due, on=[LEVEL, "seed"])
    for name, part in (("n_finished", rows[rows["status"].isin(FINISHED)]), ("n_started", rows)):
        counted = part.groupby(CONFIG_KEYS, dropna=False)["seed"].nunique().rename(name)
        table = table.join(counted, on=CONFIG_KEYS)
        table[name] = table[name].fillna(0).astype(int)
    table["n_expected"] = table[LEVEL].map(lambda lv: len(expected.get(lv, ()))).astype(int)
    table["unfinished"] = table["n_finished"] < table["n_expected"]
    table["eligible"] = ~table["unfinished"] & (table["n_ok"] > 0) & table["score"].notna()
    table["left_out"] = [_left_out_reason(row) for _, row in table.iterrows()]
    return table


def _left_out_reason(row: pd.Series) -> str:
    """Why a configuration cannot be chosen ('' when it can)."""
    if row["eligible"]:
        return ""
    if not row["unfinished"]:
        return "every seed diverged" if row["n_ok"] == 0 else "no validation score"
    parts = [f"{int(row[f'n_{s}'])} {s}" for s in ("failed", "stopped", "running") if row[f"n_{s}"]]
    not_started = int(row["n_expected"]) - int(row["n_started"])
    if not_started > 0:
        parts.append(f"{not_started} not started")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"{int(row['n_finished'])} of {int(row['n_expected'])} seeds finished{detail}"


def left_out(configs: pd.DataFrame) -> pd.DataFrame:
    """The configurations left out of selection for want of finished seeds (the selection is then partial)."""
    return configs.loc[configs["unfinished"], [*CONFIG_KEYS, "setting_rank", "left_out"]].reset_index(drop=True)


def choose(candidates: pd.DataFrame, by: list[str], score: str = "score") -> pd.DataFrame:
    """The selection rule on a table of configurations: per `by` group, the eligible row with the highest
    `score`, ties to the lower `setting_rank`, then the lower lr."""
    order = [*by, score, "setting_rank", "lr"]
    ascending = [True] * len(by) + [False, True, True]
    eligible = candidates[candidates["eligible"] & candidates[score].notna()]
    ranked = eligible.sort_values(order, ascending=ascending, kind="stable")
    return ranked.drop_duplicates(by, keep="first").reset_index(drop=True)


def best_tuned(configs: pd.DataFrame, per_lr: bool = False) -> pd.DataFrame:
    """Each arm's selected configuration per level (per level and lr when `per_lr`)."""
    return choose(configs, [*ARM_KEYS, "lr"] if per_lr else ARM_KEYS)


def reference_arms(run: Run, best: pd.DataFrame) -> dict[float, str | None]:
    """Per level, the reference arm: `analysis.reference` of the study, else its first fixed arm.

    None at a level where that arm has no best-tuned configuration (nothing finished).
    """
    kinds = dict(zip(best["method"], best["kind"], strict=True))
    kinds |= {m: arm.get("kind") for m, arm in run.study_field("methods", default={}).items()}
    wanted = selection.reference_arm(run.study_field("analysis", "reference"),
                                     ((m, kinds.get(m)) for m in run.method_order))
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
