"""Every computed frame of a report, for all label-noise levels at once.

The level is a grouping key throughout, so one pass of vectorised groupbys serves every
level; the report then slices the frames by level to present them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis import budget, compare, importance, outcomes, overfitting, pareto, select, sensitivity
from analysis.load import Run
from analysis.progress import Progress, progress
from analysis.select import LEVEL

EPOCH_CURVE_COLUMNS = [
    "val_robust_acc",
    "test_robust_acc",
    "weight_norm",
    "grad_norm",
    "lambda_mean",
    "lambda_min",
    "lambda_max",
    "noisy_fit_acc",
]
SMOKE_EPOCHS = 5  # fewer planned epochs than this: a check that the pipeline runs, not a result


@dataclass(frozen=True)
class Analysis:
    run: Run
    metric: str  # the headline metric of the final evaluation: pgd_acc or clean_acc
    outcomes: pd.DataFrame  # one row per trial (analysis.outcomes)
    configs: pd.DataFrame  # one row per configuration (setting + lr)
    best: pd.DataFrame  # each arm's best-tuned configuration per level
    best_per_lr: pd.DataFrame  # ... per level and lr
    references: dict[float, str | None]  # level -> reference arm
    headline: pd.DataFrame  # best-tuned vs best-tuned, paired by seed
    headline_pairs: pd.DataFrame
    norm_pairs: pd.DataFrame  # final weight norms of the best-tuned configurations, paired by seed
    lr_seed_means: pd.DataFrame  # per seed: mean over lrs of the best-per-lr value
    lr_robustness: pd.DataFrame  # the test on those
    curves: pd.DataFrame  # LR curve points of every setting
    envelope: pd.DataFrame  # best-per-lr points of every arm
    sensitivity: pd.DataFrame  # spread / LR-AUC per arm with intervals over seeds
    budget: pd.DataFrame  # tuning-budget curves
    importances: pd.DataFrame
    importance_notes: dict[tuple, str]
    pareto: pd.DataFrame
    epoch_curves: pd.DataFrame  # per-epoch mean/band of the best configurations
    drops: pd.DataFrame  # lr-schedule steps of the best configurations
    progress: Progress
    arms: list[str]  # in study order
    levels: list[float]
    smoke_reasons: list[str] = field(default_factory=list)

    @property
    def has_autoattack(self) -> bool:
        return bool(self.outcomes[["best_autoattack_acc", "last_autoattack_acc"]].notna().any().any())

    @property
    def smoke_test(self) -> bool:
        return bool(self.smoke_reasons)

    @property
    def settings(self) -> pd.DataFrame:
        """The configuration table (kept under its earlier name)."""
        return self.configs


def analyse(run: Run) -> Analysis:
    """Select on validation, then compute every curve, table and test of the report."""
    metric = outcomes.headline_metric(run)
    trials = outcomes.trial_outcomes(run, metric)
    arms = select.arm_order(run, trials)

    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with its arms in study order within each level (rows of one arm keep their order)."""
        if frame.empty:
            return frame
        rank = frame["method"].map({arm: i for i, arm in enumerate(arms)})
        keys = frame.assign(_arm=rank)[[LEVEL, "_arm"]]
        return frame.loc[keys.sort_values([LEVEL, "_arm"], kind="stable").index].reset_index(drop=True)

    configs = ordered(select.config_table(trials))
    best = ordered(select.best_tuned(configs))
    best_per_lr = ordered(select.best_tuned(configs, per_lr=True))
    references = select.reference_arms(run, best)
    tests, pairs = compare.headline(trials, best, references)
    _, norm_pairs = compare.headline(trials, best, references, "weight_norm_last")
    env_cells = sensitivity.envelope_cells(trials, best_per_lr)
    seed_means = compare.lr_seed_means(env_cells)
    curves = sensitivity.lr_curves(configs)
    single = sensitivity.per_seed(sensitivity.single_cells(trials, best))
    found, notes = importance.importances(trials)
    return Analysis(
        run=run,
        metric=metric,
        outcomes=trials,
        configs=configs,
        best=best,
        best_per_lr=best_per_lr,
        references=references,
        headline=ordered(tests),
        headline_pairs=pairs,
        norm_pairs=norm_pairs,
        lr_seed_means=seed_means,
        lr_robustness=ordered(compare.lr_robustness(seed_means, references)),
        curves=curves,
        envelope=sensitivity.envelope(curves, best_per_lr),
        sensitivity=ordered(sensitivity.sensitivity_table(single, sensitivity.per_seed(env_cells), best)),
        budget=ordered(budget.budget_curves(configs)),
        importances=ordered(found),
        importance_notes=notes,
        pareto=ordered(pareto.pareto_points(configs)),
        epoch_curves=overfitting.epoch_curves(run.epochs, trials, best, EPOCH_CURVE_COLUMNS),
        drops=overfitting.schedule_drops(run.epochs, trials, best),
        progress=progress(trials, run.trials_planned),
        arms=arms,
        levels=sorted(trials[LEVEL].unique().tolist()),
        smoke_reasons=smoke_reasons(run, trials),
    )


def smoke_reasons(run: Run, trials: pd.DataFrame) -> list[str]:
    """Why the run can only show that the pipeline works: one seed, or a handful of epochs."""
    reasons = []
    seeds = trials.loc[trials["counted"], "seed"].nunique()
    if seeds <= 1:
        reasons.append(f"{seeds} seed" + ("" if seeds == 1 else "s"))
    epochs = run.study_field("train", "epochs")
    if epochs is None and len(trials):
        epochs = int(trials["epochs"].max())
    if epochs is not None and epochs < SMOKE_EPOCHS:
        reasons.append(f"{epochs} epoch" + ("" if epochs == 1 else "s"))
    return reasons


def at_level(frame: pd.DataFrame, level: float) -> pd.DataFrame:
    """The rows of `frame` at one label-noise level."""
    return frame[frame[LEVEL] == level] if len(frame) else frame
