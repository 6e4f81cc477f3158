"""Every computed frame of a report, for all label-noise levels at once.

The level is a grouping key throughout, so one pass of vectorised groupbys serves every
level; the report then slices the frames by level to present them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis import compare, extras, overfitting, select, sensitivity
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


@dataclass(frozen=True)
class Analysis:
    run: Run
    outcomes: pd.DataFrame  # one row per trial (analysis.select.trial_outcomes)
    settings: pd.DataFrame  # one row per setting (analysis.select.setting_table)
    best: pd.DataFrame  # each arm's best-tuned setting per level
    best_per_lr: pd.DataFrame  # ... per level and lr
    references: pd.Series  # level -> reference fixed arm
    curves: pd.DataFrame  # LR-sensitivity points of every setting
    envelope: pd.DataFrame  # best-tuned-per-lr points of every arm
    sensitivity: pd.DataFrame  # spread / area per arm
    comparison: pd.DataFrame  # best rows + relative improvement
    pairs: pd.DataFrame  # paired (lr, seed) differences
    paired: pd.DataFrame  # their summary per adaptive arm
    epoch_curves: pd.DataFrame  # per-epoch mean/min/max/std of the best configurations
    drops: pd.DataFrame  # lr-schedule steps of the best configurations
    progress: Progress
    arms: list[str]
    levels: list[float]

    @property
    def has_autoattack(self) -> bool:
        return bool(self.outcomes[["autoattack_best", "autoattack_last"]].notna().any().any())


def analyse(run: Run) -> Analysis:
    """Select on validation, then compute every curve, table and test of the report."""
    outcomes = extras.fill_autoattack(select.trial_outcomes(run.epochs, run.trials), run.evaluations)
    settings = select.setting_table(outcomes)
    best = select.best_tuned(settings)
    best_per_lr = select.best_tuned(settings, per_lr=True)
    references = select.reference_arms(best)
    curves = sensitivity.lr_curves(settings)
    env = sensitivity.envelope(curves, best_per_lr)
    pairs = compare.paired_differences(outcomes, best_per_lr, references)
    return Analysis(
        run=run,
        outcomes=outcomes,
        settings=settings,
        best=best,
        best_per_lr=best_per_lr,
        references=references,
        curves=curves,
        envelope=env,
        sensitivity=sensitivity.sensitivity_table(curves, env, best),
        comparison=compare.comparison_table(best, references),
        pairs=pairs,
        paired=compare.paired_summary(pairs),
        epoch_curves=overfitting.epoch_curves(run.epochs, outcomes, best, EPOCH_CURVE_COLUMNS),
        drops=overfitting.schedule_drops(run.epochs, outcomes, best),
        progress=progress(outcomes, run.trials_planned),
        arms=select.arm_order(outcomes),
        levels=sorted(outcomes[LEVEL].unique().tolist()),
    )


def at_level(frame: pd.DataFrame, level: float) -> pd.DataFrame:
    """The rows of `frame` at one label-noise level."""
    return frame[frame[LEVEL] == level]
