"""Every computed frame of a report, for all label-noise levels at once.

The level is a grouping key throughout, so one pass of vectorised groupbys serves every
level; the report then slices the frames by level to present them. Selection and every
statistic of the grid (curves, budget, importance, Pareto) use the tuning trials; the
confirmation trials (`stage` "confirm") enter only the headline (`analysis.compare`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis import (
    budget,
    compare,
    importance,
    outcomes,
    overfitting,
    pareto,
    secondary,
    select,
    sensitivity,
    testset,
    tuning_stage,
    verdicts,
)
from analysis.load import Run
from analysis.progress import Progress, progress
from analysis.select import LEVEL

EPOCH_CURVE_COLUMNS = [
    "val_robust_acc",
    "test_robust_acc",
    "train_robust_acc",
    "val_robust_loss",
    "test_robust_loss",
    "train_adv_ce",
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
    settings: compare.Settings  # alpha, min_effect, adjustment, whether confirmation varied the split
    search: str  # "grid" or "optuna"
    outcomes: pd.DataFrame  # one row per trial, both stages (analysis.outcomes)
    tune: pd.DataFrame  # the tuning trials
    configs: pd.DataFrame  # one row per configuration (setting + lr) of the tuning trials
    best: pd.DataFrame  # each arm's selected configuration per level
    best_per_lr: pd.DataFrame  # ... per level and lr
    references: dict[float, str | None]  # level -> reference arm
    tuning_seeds: dict[float, list[int]]  # level -> the seeds each configuration is due
    left_out: pd.DataFrame  # configurations left out of selection for want of finished seeds
    values: pd.DataFrame  # per-seed values of the primary tests (headline and LR), long
    tests: pd.DataFrame  # the primary family's verdict rows, with the two-level interval of the headline
    lr_stats: pd.DataFrame  # per seed: peak-normalised and worst-lr accuracy over the lr grid
    secondary: pd.DataFrame  # the secondary family's verdict rows (spread, LR-AUC, worst lr)
    norm_ratios: pd.DataFrame  # geometric mean weight-norm ratios of the headline's trials
    curves: pd.DataFrame  # LR curve points of every setting
    envelope: pd.DataFrame  # best-per-lr points of every arm
    sensitivity: pd.DataFrame  # spread / LR-AUC per arm, described over seeds
    budget: pd.DataFrame  # tuning-budget curves
    anytime: pd.DataFrame  # Optuna stage: best validation score so far, in trial order
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
    def is_optuna(self) -> bool:
        return tuning_stage.is_optuna(self.search)

    @property
    def headline(self) -> pd.DataFrame:
        return self.tests[self.tests["test"] == "headline"]

    @property
    def lr_robustness(self) -> pd.DataFrame:
        return self.tests[self.tests["test"] == "lr"]

    @property
    def reference(self) -> str | None:
        """The reference arm (the same at every level that has one)."""
        return next((r for r in self.references.values() if r), None)


def settings_of(run: Run) -> compare.Settings:
    """The study's `analysis` section; a value the verdicts cannot use falls back to its default."""
    default = compare.Settings()
    alpha = run.study_field("analysis", "alpha", default=default.alpha)
    effect = run.study_field("analysis", "min_effect", default=default.min_effect)
    adjust = run.study_field("analysis", "adjust", default=default.adjust)
    return compare.Settings(
        alpha=float(alpha) if _number_in(alpha, 0, 0.5) else default.alpha,
        min_effect=float(effect) if _number_in(effect, 0, 1) else default.min_effect,
        adjust=adjust if adjust in verdicts.ADJUSTMENTS else default.adjust,
        vary_split=run.study_field("confirm", "vary_split", default=False) is True,
    )


def _number_in(x: object, low: float, high: float) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and low < x < high


def analyse(run: Run) -> Analysis:
    """Select on validation, then compute every curve, table and test of the report."""
    metric = outcomes.headline_metric(run)
    trials = outcomes.trial_outcomes(run, metric)
    tune = trials[trials["stage"] == "tune"].reset_index(drop=True)
    arms = select.arm_order(run, trials)
    settings, search = settings_of(run), str(run.study_field("search", "kind", default="grid"))
    smoke = smoke_reasons(run, trials)

    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with its arms in study order within each level (rows of one arm keep their order)."""
        if frame.empty:
            return frame
        rank = frame["method"].map({arm: i for i, arm in enumerate(arms)})
        keys = frame.assign(_arm=rank)[[LEVEL, "_arm"]]
        return frame.loc[keys.sort_values([LEVEL, "_arm"], kind="stable").index].reset_index(drop=True)

    seeds = select.expected_seeds(run, tune)
    configs = ordered(select.config_table(tune, seeds))
    best = ordered(select.best_tuned(configs))
    best_per_lr = ordered(select.best_tuned(configs, per_lr=True))
    references = select.reference_arms(run, best)
    reference = next((r for r in references.values() if r), None)
    grid = not tuning_stage.is_optuna(search)
    many_lrs = {lv: grid and tune.loc[tune[LEVEL] == lv, "lr"].nunique() > 1 for lv in seeds}
    lr_refs = {lv: r for lv, r in references.items() if many_lrs.get(lv)}

    head = compare.headline_values(trials, tune, configs, best, references)
    cells = compare.lr_cells(tune if grid else tune.iloc[:0], configs)  # no lr grid in an Optuna stage
    lr_stats = compare.lr_seed_stats(cells)
    values = pd.concat([head, compare.lr_values(lr_stats, lr_refs)], ignore_index=True)
    tests = compare.family(values, reference, settings, bool(smoke))
    head_tests = tests[tests["test"] == "headline"]
    two_level = testset.two_level(head, head_tests, reference).assign(test="headline")
    tests = tests.merge(two_level, on=[LEVEL, "test", "stage", "method"], how="left")
    tests["tuning_seeds"] = tests[LEVEL].map(lambda level: seeds.get(level, []))

    single = sensitivity.per_seed(sensitivity.single_cells(tune, best)) if grid else _no_seeds()
    second = secondary.secondary_values(single, lr_stats, lr_refs)
    second_rows = secondary.secondary_family(second, reference, settings, bool(smoke))
    second_rows = second_rows.sort_values("test", key=lambda t: t.map(list(secondary.TESTS).index), kind="stable")
    curves = sensitivity.lr_curves(configs)
    found, notes = importance.importances(tune)
    return Analysis(
        run=run,
        metric=metric,
        settings=settings,
        search=search,
        outcomes=trials,
        tune=tune,
        configs=configs,
        best=best,
        best_per_lr=best_per_lr,
        references=references,
        tuning_seeds=seeds,
        left_out=ordered(select.left_out(configs)),
        values=values,
        tests=ordered(tests),
        lr_stats=lr_stats,
        secondary=ordered(second_rows),
        norm_ratios=ordered(secondary.norm_ratios(head, references, settings.alpha)),
        curves=curves,
        envelope=sensitivity.envelope(curves, best_per_lr),
        sensitivity=ordered(sensitivity.sensitivity_table(single, sensitivity.per_seed(cells), best)),
        budget=ordered(budget.budget_curves(tune, configs, references)) if grid else _no_budget(),
        anytime=tuning_stage.best_so_far(_tuning_rows(run), configs) if not grid else _no_anytime(),
        importances=ordered(found),
        importance_notes=notes,
        pareto=ordered(pareto.pareto_points(configs)),
        epoch_curves=overfitting.epoch_curves(run.epochs, tune, best, EPOCH_CURVE_COLUMNS),
        drops=overfitting.schedule_drops(run.epochs, tune, best),
        progress=progress(trials, run.trials_planned),
        arms=arms,
        levels=sorted(trials[LEVEL].unique().tolist()),
        smoke_reasons=smoke,
    )


def _no_seeds() -> pd.DataFrame:
    return pd.DataFrame(columns=[*select.ARM_KEYS, "seed", "spread", "area", "mean"])


def _no_budget() -> pd.DataFrame:
    return pd.DataFrame(columns=budget.BUDGET_COLUMNS)


def _no_anytime() -> pd.DataFrame:
    return pd.DataFrame(columns=tuning_stage.COLUMNS)


def _tuning_rows(run: Run) -> pd.DataFrame:
    """trials.parquet's tuning rows in the order the file lists them (the Optuna stage's trial order)."""
    return run.trials[run.trials["stage"] == "tune"]


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
