"""Hyperparameter importance per arm, from Optuna's own evaluators.

Each arm's trials become an in-memory Optuna study: the parameters are the arm's
hyperparameters, the lr and the seed (the seed's importance is the noise floor: a parameter no
more important than the seed is not shown to matter), the value is the trial's `score` (the
validation number selection uses). Two evaluators are shown side by side, each passed
explicitly (Optuna 5 changed the default): PED-ANOVA, which asks which values the top 10% of
trials concentrate on, and fANOVA (random-forest functional ANOVA, seeded), which splits the
variance of the score. Both are rough below about 100 trials.
"""

from __future__ import annotations

import logging
import math
import warnings

import pandas as pd

from analysis.select import ARM_KEYS, hyperparameters_of

EVALUATORS = ("ped_anova", "fanova")
EVALUATOR_NAMES = {"ped_anova": "PED-ANOVA", "fanova": "fANOVA"}
FEW_TRIALS = 100
MIN_TRIALS = 4


def importances(outcomes: pd.DataFrame) -> tuple[pd.DataFrame, dict[tuple, str]]:
    """(rows of level, arm, param, evaluator, importance; notes per (level, arm) saying why none or a caveat)."""
    rows, notes = [], {}
    for key, trials in outcomes[outcomes["score"].notna()].groupby(ARM_KEYS, sort=True):
        params = _varying(trials, [*hyperparameters_of(key[2]), "lr", "seed"])
        if len(trials) < MIN_TRIALS or not set(params) - {"seed"}:
            # the seed alone would get an importance of 1 whatever the data: nothing to learn from it
            why = (
                f"only {len(trials)} scored trial(s)"
                if len(trials) < MIN_TRIALS
                else "only the seed varies (one configuration)"
            )
            notes[key] = f"not computed: {why}."
            continue
        found = arm_importances(trials, params)
        rows += [dict(zip(ARM_KEYS, key, strict=True)) | r for r in found]
        if len(trials) < FEW_TRIALS:
            notes[key] = f"{len(trials)} trials: below about {FEW_TRIALS}, treat these as rough."
    columns = [*ARM_KEYS, "param", "evaluator", "importance"]
    return pd.DataFrame(rows, columns=columns), notes


def _varying(trials: pd.DataFrame, candidates: list[str]) -> list[str]:
    """The parameters that take more than one value among `trials` (a constant one explains nothing)."""
    return [p for p in candidates if trials[p].nunique(dropna=True) > 1]


def arm_importances(trials: pd.DataFrame, params: list[str]) -> list[dict]:
    """Importances of `params` for one arm's trials under each evaluator (normalised to sum 1)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    optuna.logging.set_verbosity(logging.ERROR)
    study = optuna.create_study(direction="maximize")
    distributions = {p: _distribution(trials[p]) for p in params}
    for _, row in trials.iterrows():
        values = {p: _param_value(row[p], distributions[p]) for p in params}
        study.add_trial(
            optuna.trial.create_trial(params=values, distributions=distributions, value=float(row["score"]))
        )
    evaluators = {"ped_anova": PedAnovaImportanceEvaluator(), "fanova": FanovaImportanceEvaluator(seed=0)}
    rows = []
    for name, evaluator in evaluators.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "too few trials" warnings: the report states its own caveat
            found = optuna.importance.get_param_importances(study, evaluator=evaluator, params=params)
        rows += [{"param": p, "evaluator": name, "importance": float(found.get(p, math.nan))} for p in params]
    return rows


def _distribution(values: pd.Series):
    """The search-space axis of one parameter: categories for text; integers for the seed (its order
    means nothing, but a forest can split any seed out, and as one-hot categories fANOVA took minutes
    on a few hundred trials); a log-float axis for positive numbers spanning a decade, else a float axis."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not pd.api.types.is_numeric_dtype(values):
        return CategoricalDistribution(sorted({str(v) for v in values.dropna()}))
    low, high = float(values.min()), float(values.max())
    if values.name == "seed":
        return IntDistribution(int(low), int(high))
    return FloatDistribution(low, high, log=low > 0 and high / low >= 10)


def _param_value(value, distribution):
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return str(value)
    return int(value) if isinstance(distribution, IntDistribution) else float(value)
