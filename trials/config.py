"""The configuration of one trial: frozen, typed pydantic models with documented defaults.

A trial's config is the settings every trial of a study shares (`data`, `model`, `train`,
`attack`, `eval`) plus one grid point (`point`: the arm, its hyperparameters, lr, seed and
label-noise rate). The study file (`orchestrator.spec`) is built from the same section
models; every field's `description` is the option's documentation (`decaylab options`,
`decaylab schema`). ε and step sizes are in the data's [0, 1] scale; λ is as the user wrote
it. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from trials import arms
from trials.arms.base import format_value
from trials.datasets import DATASET_NAMES
from trials.fields import (
    Fraction,
    Int,
    Number,
    Positive,
    Text,
    UnitInterval,
    at_least_int,
    checked,
    fail,
    grid,
    unit_interval,
)

# 2**63: seeds feed numpy's and torch's generators, which take 64-bit integers
MAX_SEED = 2**63 - 1


def _seed(v: int) -> str | None:
    return None if 0 <= v <= MAX_SEED else "must be an integer in [0, 2**63 − 1] (a generator seed)"


Seed = checked(Int, _seed)
# Upper bounds: far beyond any real study, low enough that no count overflows a tensor, a float or the
# memory of the machine that checks the study (`decaylab validate --estimate` builds the model)
# the longest adversarial-training schedules are a few hundred epochs; a trial's result.json of 10,000 epochs
# fits the cap decaylab reads it with (`orchestrator.run.layout.MAX_RESULT`)
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
MAX_EXAMPLES = 10_000_000  # examples of an evaluation; the largest test splits hold 100,000
MAX_STEPS = 10_000  # attack iterations
MAX_SUBSET = 100_000_000  # training examples


def _up_to(most: int):
    return checked(Int, lambda v: None if 0 < v <= most else f"must be > 0 and ≤ {most:,}, or null")


Examples = _up_to(MAX_EXAMPLES)


class Section(BaseModel):
    """A frozen part of a configuration: unknown keys are errors, values are checked where declared."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=False)


AttackKind = Literal["pgd", "fgsm_rs", "none"]


class DataConfig(Section):
    dataset: Literal[DATASET_NAMES] = Field(  # type: ignore[valid-type]
        "digits", description="dataset name (digits is bundled with scikit-learn, no download)")
    root: Text | None = Field(None, description="directory holding the dataset files; null for digits")
    download: bool = Field(False, description="let torchvision download the dataset into `root` when it is missing")
    val_fraction: Fraction = Field(0.1, description="fraction of the training set held out (stratified) for selection")
    test_fraction: UnitInterval = Field(
        0.2, description="fraction held out as the test set for datasets without an official test split (digits)")
    split_seed: Seed = Field(
        0, description="seed of the train/val(/test) split and of label noise; shared by all trials")
    subset: _up_to(MAX_SUBSET) | None = Field(
        None, description="use only this many training examples (class-balanced); null = all")
    val_label_noise: Literal["same", "clean"] = Field(
        "same", description="same: the validation split gets the training split's label noise (what a real user "
        "selects with); clean: true validation labels (an oracle, for comparison)")
    augment: bool = Field(True, description="random crop with padding (and flip where the dataset allows it)")
    image_size: at_least_int(8, 512) = Field(
        64, description="side length images are resized to (flowers102 and image_folder only)")


class ModelConfig(Section):
    arch: Literal["small_cnn", "preact_resnet18", "wide_resnet"] = Field(
        "small_cnn", description="network: small_cnn (digits/MNIST scale), preact_resnet18, wide_resnet")
    depth: checked(Int, lambda v: None if 10 <= v <= 200 and (v - 4) % 6 == 0
                   else "must be 6n+4 with n ≥ 1, at most 200") = Field(
        28, description="wide_resnet depth (6n+4: 28, 34, ...)")
    width: at_least_int(1, 64) = Field(10, description="wide_resnet widening factor")


class EmaConfig(Section):
    decay: checked(Number, lambda v: None if 0 < v < 1 else "must lie in (0, 1)") = Field(
        0.999, description="per-step decay d of the average: w̄ ← d·w̄ + (1 − d)·w after every optimizer step "
        "(memory ≈ 1/(1 − d) steps)")
    start: Fraction = Field(
        0.0, description="fraction of training (in optimizer steps) after which averaging begins; before it the "
        "average is a copy of the weights")


class TrainConfig(Section):
    epochs: at_least_int(1, MAX_EPOCHS) = Field(60, description="training epochs")
    batch_size: at_least_int(1, MAX_BATCH) = Field(128, description="training batch size")
    optimizer: Literal["sgd"] = Field("sgd", description="optimizer (SGD with momentum; decay comes from the arm)")
    momentum: Fraction = Field(0.9, description="SGD momentum")
    nesterov: bool = Field(False, description="Nesterov momentum")
    schedule: Literal["cosine", "piecewise", "constant"] = Field(
        "cosine", description="learning-rate schedule, stepped every batch")
    milestones: grid(Number, unit_interval) = Field(
        (0.5, 0.75), description="piecewise: fractions of training after which lr is multiplied by `gamma`")
    gamma: UnitInterval = Field(0.1, description="piecewise: lr multiplier at each milestone")
    decay: Literal["all", "no_bn_bias"] = Field(
        "all", description="parameters the arms decay: all, or all but BatchNorm weights and biases")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="training precision: auto = bf16 autocast on CUDA, fp32 on CPU (final evaluations: fp32)")
    compile: bool = Field(False, description="torch.compile the model once per trial process")
    max_loss: Positive = Field(
        100.0, description="a trial whose epoch train_loss (the arm's objective) exceeds this, or whose objective, "
        "adversarial cross-entropy or gradient norm is not finite, has diverged; cross-entropy at chance is "
        "ln(classes) ≈ 2.3 for 10 classes")
    channels_last: bool | None = Field(
        None, description="channels_last memory format; null = on for CUDA, off on a CPU")
    ema: EmaConfig | None = Field(
        None, description="exponential moving average of the weights, e.g. {decay: 0.999, start: 0.0}, evaluated "
        "beside the live weights every evaluated epoch (ema_* columns) and at the end (checkpoint ema: the "
        "average of the best epoch by ema_val_robust_acc); BatchNorm statistics are the live model's; null = off")


class AttackSpec(Section):
    kind: AttackKind = Field("pgd", description="pgd, fgsm_rs (FGSM from a random start) or none (natural)")
    eps: UnitInterval | None = Field(None, description="L∞ radius in [0, 1] pixel scale; eval: null = the training ε")
    steps: at_least_int(1, MAX_STEPS) = Field(10, description="PGD iterations")
    step_size: Positive | None = Field(None, description="step size; null = 2.5·ε/steps (fgsm_rs: 1.25·ε)")
    random_start: bool = Field(True, description="start from a uniform random point in the ε-ball")


class TrainAttackSpec(AttackSpec):
    eps: UnitInterval | None = Field(0.25, description="L∞ radius in [0, 1] pixel scale")
    steps: at_least_int(1, MAX_STEPS) = Field(5, description="PGD iterations")
    step_size: Positive | None = Field(0.1, description="step size; null = 2.5·ε/steps (fgsm_rs: 1.25·ε)")
    objective: Literal["ce", "trades"] = Field(
        "ce", description="ce: cross-entropy on the adversarial batch (Madry et al.); trades: CE on clean inputs "
        "+ β·KL(clean ‖ adversarial), attack on the KL (Zhang et al. 2019)")
    beta: Positive = Field(6.0, description="trades: weight β of the KL term")

    @model_validator(mode="after")
    def _trades_needs_pgd(self) -> TrainAttackSpec:
        if self.objective == "trades" and self.kind != "pgd":
            fail(f"objective trades needs kind pgd (its attack is PGD on the KL), not {self.kind}",
                 "set attack.train.kind: pgd, or objective: ce")
        return self


class AttackConfig(Section):
    train: TrainAttackSpec = Field(default_factory=TrainAttackSpec, description="attack used to make training examples")
    eval: AttackSpec = Field(default_factory=AttackSpec, description="attack used for val/test robust accuracy")


class AutoAttackConfig(Section):
    enabled: bool = Field(False, description="run AutoAttack (standard, L∞) on the best and last checkpoint")
    examples: at_least_int(1, MAX_EXAMPLES) = Field(
        1000, description="number of test examples (seeded, the same for every trial)")
    version: Literal["standard", "plus", "rand"] = Field("standard", description="AutoAttack version")
    batch_size: at_least_int(1, MAX_BATCH) = Field(500, description="AutoAttack batch size")


class PruningConfig(Section):
    enabled: bool = Field(False, description="magnitude pruning of the final checkpoints (best, last, ema), "
                          "no fine-tuning")
    scope: Literal["layer", "global"] = Field(
        "layer", description="layer: every conv/linear weight tensor pruned to the same sparsity by its own "
        "magnitudes (the usual control: BatchNorm makes magnitudes of different layers incomparable); global: one "
        "magnitude ranking over all of them")
    sparsity: grid(Number, lambda v: None if 0 <= v < 1 else "must be a fraction in [0, 1)") = Field(
        (0.0, 0.3, 0.5, 0.7, 0.8, 0.9), description="fractions of prunable weights zeroed")
    examples: Examples | None = Field(
        None, description="test examples for the pruned evaluations; null = the final evaluation's")


class EvalConfig(Section):
    every: at_least_int(1, MAX_EPOCHS) = Field(
        1, description="evaluate val/test every this many epochs (and always at the last)")
    val_examples: Examples | None = Field(None, description="val examples per evaluation; null = all")
    test_examples: Examples | None = Field(None, description="test examples per evaluation; null = all")
    train_examples: Examples | None = Field(
        None, description="training examples for train_clean_acc; null = as many as the val split")
    final_examples: Examples | None = Field(
        None, description="test examples of the final evaluation (clean, FGSM, PGD, AutoAttack of the best and "
        "last weights, the same seeded examples for every trial); null = the whole test split")
    batch_size: at_least_int(1, MAX_BATCH) = Field(512, description="evaluation batch size")
    autoattack: AutoAttackConfig = Field(default_factory=AutoAttackConfig, description="AutoAttack evaluation")
    pruning: PruningConfig = Field(default_factory=PruningConfig, description="pruning study")


SHARED_SECTIONS = ("data", "model", "train", "attack", "eval")


# ------------------------------------------------------------------------------ one trial


class GridPoint(Section):
    """Where a trial sits in the study's grid: the arm, its hyperparameters, lr, seed, noise rate."""

    # stored as `arm`; records written before the name settled say `method`, and still read
    arm: Text = Field(validation_alias=AliasChoices("arm", "method"), description="the arm's name in the study file")
    kind: Text = Field(description="the arm's kind (trials.arms.KINDS)")
    params: dict[Text, float | Text] = Field(
        description="the arm's hyperparameters by name (lam, lambda_awd, start, ...)")
    lr: float = Field(description="peak learning rate")
    seed: Seed = Field(description="seed of the initialisation, the data order, augmentation and attacks")
    label_noise: float = Field(0.0, description="symmetric label-noise rate of the training split")
    stage: Literal["tune", "confirm"] = Field(
        "tune", description="tune: a trial of the study's grid, on its `seeds`; confirm: a selected configuration "
        "trained again on a fresh confirmation seed")
    series: dict[str, tuple[float, ...]] = Field(
        default_factory=dict, description="per-trial arrays the arm takes besides its hyperparameters (the "
        "`scheduled` arm's λ per epoch, `values`), as the arm's section gives them for the grid point "
        "(`ArmGrid.series`); not result columns, not in the trial id (the hyperparameter that selected them is)")


class TrialConfig(Section):
    """Everything one training run needs: the shared settings plus one grid point."""

    study: Text
    point: GridPoint
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    attack: AttackConfig = Field(default_factory=AttackConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @property
    def arm(self) -> str:
        return self.point.arm

    @property
    def kind(self) -> str:
        return self.point.kind

    @property
    def params(self) -> dict[str, float | str]:
        return self.point.params

    @property
    def lr(self) -> float:
        return self.point.lr

    @property
    def seed(self) -> int:
        return self.point.seed

    @property
    def label_noise(self) -> float:
        return self.point.label_noise

    @property
    def trial_id(self) -> str:
        return trial_id(self.point)

    @property
    def setting(self) -> str:
        return arms.label(self.kind, self.params)

    def key_columns(self) -> dict[str, Any]:
        """The configuration columns every result row carries (trials.schema.CONFIG_COLUMNS)."""
        hyper = {name: (None if dtype == "string" else math.nan)
                 for name, dtype in arms.hyperparameter_columns().items()}
        return {"study": self.study, "trial_id": self.trial_id, "method": self.arm, "kind": self.kind,
                "setting": self.setting, **hyper, **arms.complete(self.kind, self.params), "lr": self.lr,
                "seed": self.seed, "stage": self.point.stage, "label_noise": self.label_noise}

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, d: dict) -> TrialConfig:
        return cls.model_validate(d, strict=False)

    def shared(self) -> dict:
        return {name: getattr(self, name).model_dump(mode="json") for name in SHARED_SECTIONS}


def trial_id(point: GridPoint) -> str:
    """`<arm>-<hyperparameter values>-lr<lr>-s<seed>[-n<noise>][-confirm]`, each number spelled exactly
    (the shortest text that reads back as the same float), so distinct values never share an id.
    A hyperparameter at its `ArmGrid.ID_DEFAULTS` value is left out (ids made before it existed stay valid)."""
    values = "-".join(format_value(point.params[k]) for k in arms.grid_class(point.kind).shown(point.params))
    noise = f"-n{format_value(point.label_noise)}" if point.label_noise else ""
    stage = "-confirm" if point.stage == "confirm" else ""
    return f"{point.arm}-{values}-lr{format_value(point.lr)}-s{point.seed}{noise}{stage}"


def config_hash(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Attack:
    """An attack with every default filled in, as the training step and the evaluations use it."""

    kind: str  # pgd | fgsm_rs | none
    eps: float
    steps: int
    step_size: float
    random_start: bool = True
    objective: str = "ce"  # training only: ce | trades
    beta: float = 0.0  # trades: weight of the KL term


def resolved_eval_attack(cfg: TrialConfig) -> Attack:
    """The evaluation attack with its defaults filled from the training attack."""
    ev = cfg.attack.eval
    eps = ev.eps if ev.eps is not None else (cfg.attack.train.eps or 0.0)
    step = ev.step_size if ev.step_size is not None else default_step_size(ev.kind, eps, ev.steps)
    return Attack(ev.kind, eps, ev.steps, step, ev.random_start)


def resolved_train_attack(cfg: TrialConfig) -> Attack:
    tr = cfg.attack.train
    eps = tr.eps if tr.eps is not None else 0.0
    step = tr.step_size if tr.step_size is not None else default_step_size(tr.kind, eps, tr.steps)
    return Attack(tr.kind, eps, tr.steps, step, tr.random_start, tr.objective, tr.beta)


def default_step_size(kind: str, eps: float, steps: int) -> float:
    if kind == "fgsm_rs":
        return 1.25 * eps  # Wong et al. 2020, "Fast is better than free"
    return 2.5 * eps / steps if steps else eps  # Madry et al.'s rule of thumb
