"""The study file's schema: frozen, typed sections (pydantic) with a documented default for every key.

The shared sections come from `trials.config`, each arm's section from its module in
`trials.arms` (a tagged union on `kind`). The `description` of every field is the option's
documentation (`decaylab options`, `decaylab schema`, the generated reference). Values that
involve several fields are checked in `orchestrator.study.checks`.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from orchestrator.errors import UserError
from trials import arms
from trials.config import AttackConfig, DataConfig, EvalConfig, ModelConfig, Section, Seed, TrainConfig
from trials.fields import (
    MAX_AXIS,
    Fraction,
    Int,
    NonNegative,
    Number,
    Paragraph,
    Text,
    as_tuple,
    at_least_int,
    at_most,
    checked,
    fail,
    fraction,
    grid,
    positive,
)

# --------------------------------------------------------------------------- study classes

ArmSection = Annotated[typing.Union[tuple(arms.grid_classes())], Field(discriminator="kind")]  # noqa: UP007


class StudyData(DataConfig):
    label_noise: grid(Fraction, fraction) = Field(
        (0.0,), description="symmetric label-noise rate(s) of the training split; a list makes it a grid axis")


class Range(Section):
    low: Number = Field(1e-5, description="lower bound")
    high: Number = Field(1e-2, description="upper bound")
    log: bool = Field(True, description="sample log-uniformly (needs low > 0)")


class SearchConfig(Section):
    kind: Literal["grid", "optuna"] = Field(
        "grid", description="grid: every arm × its grid × lr × seeds; optuna: tuned ranges")
    n_trials: at_least_int(1, 100_000) = Field(20, description="optuna: configurations sampled per arm")
    sampler: Literal["tpe", "random", "gp", "cmaes"] = Field(
        "tpe", description="optuna sampler (for an exhaustive grid use search.kind: grid, which pairs seeds)")
    seed: Seed = Field(0, description="optuna sampler seed")
    scheduler: Literal["none", "asha"] = Field("none", description="optuna: early stopping for this tuning stage only")
    grace_period: at_least_int(1, 10_000) = Field(
        1, description="asha: evaluations before a trial may be stopped")
    reduction_factor: at_least_int(2, 1_000) = Field(4, description="asha: keep 1/reduction_factor at each rung")
    seeds_per_trial: at_least_int(1, MAX_AXIS) | None = Field(
        None, description="optuna: seeds each configuration is trained with; null = all")
    space: dict[Text, Range] = Field(
        default_factory=dict, description="optuna: ranges keyed `lr` and `<arm>.<hyperparameter>` (e.g. wd.lambda)")
    storage: Text | None = Field(
        None, description="optuna: the study's journal file (optuna-dashboard can watch it); a relative path is "
        "inside the run directory; null = RUN_DIR/optuna.journal (local run directories)")
    top_k: at_least_int(1, 1_000) = Field(
        1, description="optuna: best configurations per arm written to best_grid.yaml")


def _whole_above_one(v: float) -> str | None:
    if v <= 1 or v.is_integer():
        return None
    return ("a GPU count above 1 must be whole (Ray shares a GPU only in fractions below 1); "
            "hint: give e.g. 1 or 2, or 0.5 to pack two trials on one GPU")


def _retries(v: int) -> str | None:
    if v >= 0:
        return None
    return ("must be ≥ 0: Ray's -1 (retry forever) would retry a trial that always fails without end; "
            "hint: give a number of retries, e.g. 2 (the default)")


class ResourcesConfig(Section):
    cpu: checked(Number, positive, at_most(65_536)) = Field(1.0, description="CPUs per trial")
    gpu: checked(NonNegative, _whole_above_one, at_most(1_024)) = Field(
        0.0, description="GPUs per trial; fractional values (< 1) pack trials on one GPU")
    max_concurrent: at_least_int(1, 1_000_000) | None = Field(
        None, description="at most this many trials at once; null = as resources allow")
    max_failures: checked(Int, _retries, at_most(1_000)) = Field(
        2, description="retries of a crashed trial (from its last checkpoint)")
    torch_threads: at_least_int(1, 1_024) | None = Field(
        None, description="intra-op threads per trial; null = the trial's CPU count")


def _effect(v: float) -> str | None:
    return None if 0 < v < 1 else "must lie in (0, 1): an accuracy difference as a fraction (0.01 = 1 point)"


def _alpha(v: float) -> str | None:
    return None if 0 < v < 0.5 else "must lie in (0, 0.5), e.g. 0.05"


class AnalysisConfig(Section):
    reference: Text | None = Field(
        None, description="the arm every other arm is compared with; null = the first `fixed` arm")
    min_effect: checked(Number, _effect) = Field(
        0.01, description="the smallest difference of interest (a fraction: 0.01 = 1 point of accuracy): power and "
        "seeds needed are computed for it, and arms whose difference lies within ±min_effect are equivalent")
    alpha: checked(Number, _alpha) = Field(0.05, description="family-wise significance level of the verdicts")
    adjust: Literal["maxT", "holm", "none"] = Field(
        "maxT", description="adjustment across the family of comparisons (every non-reference arm × test × noise "
        "level): maxT = Westfall-Young min-p permutation within seed, holm = Holm's step-down, none")


class ConfirmConfig(Section):
    seeds: checked(Int, lambda v: None if v >= 1 else "must be ≥ 1") | grid(Seed) = Field(
        10, description="fresh seeds the selected configurations are trained on: a number (the seeds after the "
        "study's largest seed) or a list, disjoint from `seeds`")
    vary_split: bool = Field(
        False, description="each confirmation seed also draws its own train/validation split and test subset "
        "(seed-derived data.split_seed), so the verdict covers data sampling too")

    @field_validator("seeds")
    @classmethod
    def _few_enough(cls, value: Any) -> Any:
        # here, not in the number's type: a number the type refused would be read as a list of one seed
        if isinstance(value, int) and value > MAX_AXIS:
            fail(f"must be ≤ {MAX_AXIS:,} (got {value:,} seeds)", "give fewer seeds")
        return value


TRACKING_SCHEMES = ("http", "https", "sqlite", "databricks", "postgresql", "mysql", "mssql")


def _tracking_uri(v: str) -> str | None:
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", v)
    if scheme is None:
        return ("must be a tracking URI, not a path (MLflow 3 no longer writes plain directories); hint: "
                "give sqlite:///<dir>/mlflow.db for a local database, or http://<host>:5000 for a server")
    if scheme.group(1).split("+")[0].lower() not in TRACKING_SCHEMES:
        return (f"the scheme {scheme.group(1)}:// is not one MLflow tracks to here (allowed: "
                f"{', '.join(TRACKING_SCHEMES)}); hint: give http(s):// for a server or sqlite:/// for a file")
    return None


class MlflowConfig(Section):
    uri: checked(Text, _tracking_uri) = Field(
        description="tracking URI: sqlite:///<dir>/mlflow.db (a relative path is resolved from the current "
        "directory) or http(s)://<host>:<port> of an MLflow server")
    experiment: Text | None = Field(None, description="MLflow experiment; null = the study name")


class WandbConfig(Section):
    project: Text = Field(description="W&B project")
    mode: Literal["online", "offline"] = Field(
        "online", description="offline: runs are written under the run directory, without a network "
        "(`wandb sync` uploads them later)")


class TrackingConfig(Section):
    tensorboard: bool = Field(
        True, description="TensorBoard event files per trial under the run directory: every per-epoch metric, "
        "and an HParams entry when the trial ends (`tensorboard --logdir RUN_DIR`)")
    mlflow: MlflowConfig | None = Field(
        None, description="MLflow {uri, experiment}: a parent run per run directory, a nested run per trial "
        "with its per-epoch metrics (step = epoch); null = off")
    wandb: WandbConfig | None = Field(
        None, description="Weights & Biases {project, mode}: a run per trial, grouped by configuration so that "
        "seeds sit together; null = off")


def _name(v: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v) and ".." not in v:
        return None
    return "must be letters, digits, '.', '_' or '-' (it names a directory)"


class ReferenceResult(Section):
    source: Text = Field(description="where the number is published (paper, table or log)")
    arm: Text = Field(description="the arm whose selected configuration the number corresponds to")
    metric: Literal["clean_acc", "fgsm_acc", "pgd_acc", "autoattack_acc"] = Field(
        "pgd_acc", description="the final evaluation's metric it is compared with")
    checkpoint: Literal["best", "last", "ema"] = Field("best", description="the checkpoint it is compared with")
    value: checked(Number, lambda v: None if 0 <= v <= 1 else "must be an accuracy in [0, 1]") = Field(
        description="the published accuracy, as a fraction")
    label_noise: Fraction = Field(0.0, description="the noise level of the comparison")


class Study(Section):
    name: checked(Text, _name) = Field("study", description="study name; the run directory is <storage>/<name>")
    description: Paragraph = Field("", description="free text shown in the report")
    data: StudyData = Field(default_factory=StudyData, description="dataset, split, subset and label noise")
    model: ModelConfig = Field(default_factory=ModelConfig, description="network")
    train: TrainConfig = Field(default_factory=TrainConfig, description="optimisation")
    attack: AttackConfig = Field(default_factory=AttackConfig, description="training and evaluation attacks")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation")
    arms: dict[str, ArmSection] = Field(  # the study file's `methods:`, its name since the first version
        default_factory=dict, alias="methods", description="the arms: name → {kind: <kind>, <hyperparameter>: [...]}")
    lr: grid(Number, positive) = Field((0.05,), description="peak learning rates (a grid axis shared by all arms)")
    seeds: grid(Seed) = Field((0,), description="seeds (a grid axis shared by all arms: paired trials)")
    search: SearchConfig = Field(default_factory=SearchConfig, description="grid or optuna")
    confirm: ConfirmConfig | None = Field(
        None, description="the confirmation stage: each arm's configuration selected on `seeds` (validation only) "
        "is trained again on fresh seeds, and the headline verdict is made on those; null = none (the headline is "
        "then the exploratory cross-fitted comparison)")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, description="per-trial resources")
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig, description="how the report compares the arms")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="experiment trackers")
    reference_results: Annotated[tuple[ReferenceResult, ...], BeforeValidator(as_tuple)] = Field(
        (), description="published numbers to set this run's beside: [{source, arm, metric, checkpoint, value}]; "
        "the report gives our figure (the arm's headline trials), the difference and its interval")

    @field_validator("arms", mode="before")
    @classmethod
    def _arm_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            folded: dict[str, str] = {}
            for name in value:
                if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", name):
                    raise UserError("", f"methods.{str(name)[:80]}: arm names must be identifiers (letters, digits, "
                                    "'_'; at most 64)", "rename the arm, e.g. wd or awd_small")
                # trial ids start with the arm's name and name directories: on a case-insensitive file
                # system (macOS, Windows) `wd` and `WD` would share every trial's record
                if name.casefold() in folded:
                    raise UserError("", f"methods.{name}: differs from arm {folded[name.casefold()]!r} only in "
                                    "case, and trial records would collide on a case-insensitive file system",
                                    "give the arms names that differ in more than case")
                folded[name.casefold()] = name
        return value

    def to_dict(self) -> dict:
        """The resolved study as plain data (YAML-able), in the study file's own shape."""
        return self.model_dump(mode="json", by_alias=True)




def study_schema() -> dict:
    """The JSON Schema of a study file, for editors (YAML language server) and `decaylab schema`."""
    schema = Study.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "decaylab study"}
