"""The configuration of one trial: frozen, typed dataclasses with documented defaults.

The study file (orchestrator.spec) is built from the same section classes; every field's
`doc` metadata is the option's documentation (`decaylab options` prints it). Values are
checked where they are declared (`check` metadata), so the rules live next to the fields.
ε and step sizes are in the data's [0, 1] scale; λ is as the user wrote it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Literal

# ---------------------------------------------------------------------------------- checks
# A check returns None when the value is acceptable, else the reason it is not.


def positive(v: float) -> str | None:
    return None if v > 0 and math.isfinite(v) else "must be a finite number > 0"


def non_negative(v: float) -> str | None:
    return None if v >= 0 and math.isfinite(v) else "must be a finite number ≥ 0"


def fraction(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be a fraction in [0, 1)"


def unit_interval(v: float) -> str | None:
    return None if 0 < v <= 1 else "must lie in (0, 1] (inputs are scaled to [0, 1])"


def at_least(n: int):
    def check(v: int) -> str | None:
        return None if v >= n else f"must be ≥ {n}"

    return check


def each(check):
    def check_all(values) -> str | None:
        if len(values) == 0:
            return "must not be empty"
        for v in values:
            if (reason := check(v)) is not None:
                return f"value {v!r} {reason}"
        return None

    return check_all


def non_empty(values) -> str | None:
    return None if len(values) > 0 else "must not be empty"


def opt(doc: str, default: Any = MISSING, check=None, default_factory: Any = MISSING):
    """A dataclass field with its documentation and value check attached."""
    meta = {"doc": doc, "check": check}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


# -------------------------------------------------------------------------------- sections

Dataset = Literal["digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "image_folder"]
AttackKind = Literal["pgd", "fgsm_rs", "none"]


@dataclass(frozen=True)
class DataConfig:
    dataset: Dataset = opt("dataset name (digits is bundled with scikit-learn, no download)", "digits")
    root: str | None = opt("directory holding the dataset files; null for digits", None)
    download: bool = opt("let torchvision download the dataset into `root` when it is missing", False)
    val_fraction: float = opt("fraction of the training set held out (stratified) for selection", 0.1,
                              fraction)
    test_fraction: float = opt("fraction held out as the test set for datasets without an official "
                               "test split (digits)", 0.2, unit_interval)
    split_seed: int = opt("seed of the train/val(/test) split and of label noise; shared by all trials",
                          0)
    subset: int | None = opt("use only this many training examples (class-balanced); null = all", None,
                             lambda v: None if v is None or v > 0 else "must be > 0 or null")
    label_noise: tuple[float, ...] = opt(
        "symmetric label-noise rate(s) of the training split; a list makes it a grid axis", (0.0,),
        each(fraction))
    augment: bool = opt("random crop with padding (and flip where the dataset allows it)", True)
    image_size: int = opt("side length images are resized to (image_folder only)", 64, at_least(8))


@dataclass(frozen=True)
class ModelConfig:
    arch: Literal["small_cnn", "preact_resnet18", "wide_resnet"] = opt(
        "network: small_cnn (digits/MNIST scale), preact_resnet18, wide_resnet", "small_cnn")
    depth: int = opt("wide_resnet depth (6n+4: 28, 34, ...)", 28,
                     lambda v: None if v >= 10 and (v - 4) % 6 == 0 else "must be 6n+4 with n ≥ 1")
    width: int = opt("wide_resnet widening factor", 10, at_least(1))


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = opt("training epochs", 60, at_least(1))
    batch_size: int = opt("training batch size", 128, at_least(1))
    optimizer: Literal["sgd"] = opt("optimizer (SGD with momentum, weight decay applied by the arm)", "sgd")
    momentum: float = opt("SGD momentum", 0.9, fraction)
    nesterov: bool = opt("Nesterov momentum", False)
    schedule: Literal["cosine", "piecewise", "constant"] = opt(
        "learning-rate schedule, stepped every batch", "cosine")
    milestones: tuple[float, ...] = opt(
        "piecewise: fractions of training after which lr is multiplied by `gamma`", (0.5, 0.75),
        each(unit_interval))
    gamma: float = opt("piecewise: lr multiplier at each milestone", 0.1, unit_interval)
    decay: Literal["all", "no_bn_bias"] = opt(
        "parameters decayed by both arms: all, or all but BatchNorm weights and biases", "all")
    precision: Literal["auto", "fp32", "bf16"] = opt(
        "auto = bf16 autocast on CUDA, fp32 on CPU", "auto")
    compile: bool = opt("torch.compile the model once per trial process", False)
    max_loss: float = opt("a trial whose mean training loss exceeds this (or is not finite) has diverged; "
                          "cross-entropy at chance is ln(classes) ≈ 2.3 for 10 classes", 100.0, positive)
    channels_last: bool | None = opt("channels_last memory format; null = on for CUDA", None)


@dataclass(frozen=True)
class AttackSpec:
    kind: AttackKind = opt("pgd, fgsm_rs (fast adversarial training) or none (natural training)", "pgd")
    eps: float | None = opt("L∞ radius in [0, 1] pixel scale; eval: null = the training ε", None,
                            lambda v: None if v is None else unit_interval(v))
    steps: int = opt("PGD iterations", 10, at_least(1))
    step_size: float | None = opt("step size; null = 2.5·ε/steps (fgsm_rs: 1.25·ε)", None,
                                  lambda v: None if v is None else positive(v))
    random_start: bool = opt("start from a uniform random point in the ε-ball", True)


def _default_train_attack() -> AttackSpec:
    return AttackSpec(kind="pgd", eps=0.25, steps=5, step_size=0.1)


@dataclass(frozen=True)
class AttackConfig:
    train: AttackSpec = opt("attack used to make training examples", default_factory=_default_train_attack)
    eval: AttackSpec = opt("attack used for val/test robust accuracy", default_factory=AttackSpec)


@dataclass(frozen=True)
class AutoAttackConfig:
    enabled: bool = opt("run AutoAttack (standard, L∞) on the best and last checkpoint", False)
    examples: int = opt("number of test examples (seeded, the same for every trial)", 1000, at_least(1))
    version: Literal["standard", "plus", "rand"] = opt("AutoAttack version", "standard")
    batch_size: int = opt("AutoAttack batch size", 500, at_least(1))


@dataclass(frozen=True)
class PruningConfig:
    enabled: bool = opt("global magnitude pruning of the best and last checkpoints (no fine-tuning)",
                        False)
    sparsity: tuple[float, ...] = opt("fractions of prunable weights zeroed",
                                      (0.0, 0.3, 0.5, 0.7, 0.8, 0.9), each(fraction))
    examples: int | None = opt("test examples for the pruned evaluations; null = the whole test split",
                               None, lambda v: None if v is None or v > 0 else "must be > 0 or null")


@dataclass(frozen=True)
class EvalConfig:
    every: int = opt("evaluate val/test every this many epochs (and always at the last)", 1, at_least(1))
    val_examples: int | None = opt("val examples per evaluation; null = all", None,
                                   lambda v: None if v is None or v > 0 else "must be > 0 or null")
    test_examples: int | None = opt("test examples per evaluation; null = all", None,
                                    lambda v: None if v is None or v > 0 else "must be > 0 or null")
    train_examples: int | None = opt(
        "training examples for train_clean_acc; null = as many as the val split", None,
        lambda v: None if v is None or v > 0 else "must be > 0 or null")
    batch_size: int = opt("evaluation batch size", 512, at_least(1))
    autoattack: AutoAttackConfig = opt("AutoAttack evaluation", default_factory=AutoAttackConfig)
    pruning: PruningConfig = opt("pruning study", default_factory=PruningConfig)


# ------------------------------------------------------------------------------ one trial


@dataclass(frozen=True)
class TrialConfig:
    """Everything one training run needs; sections are shared by all trials of a study."""

    study: str
    method: str  # the arm's name
    kind: Literal["fixed", "adaptive"]
    lam: float | None  # fixed arms
    lambda_awd: float | None  # adaptive arms
    lr: float
    seed: int
    label_noise: float
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def trial_id(self) -> str:
        value = f"{self.lam:g}" if self.kind == "fixed" else f"{self.lambda_awd:g}"
        noise = f"-n{self.label_noise:g}" if self.label_noise else ""
        return f"{self.method}-{value}-lr{self.lr:g}-s{self.seed}{noise}"

    def key_columns(self) -> dict:
        """The configuration columns every result row carries (analysis.schema.CONFIG_COLUMNS)."""
        nan = math.nan
        return {"study": self.study, "trial_id": self.trial_id, "method": self.method, "kind": self.kind,
                "lam": nan if self.lam is None else self.lam,
                "lambda_awd": nan if self.lambda_awd is None else self.lambda_awd,
                "lr": self.lr, "seed": self.seed, "label_noise": self.label_noise}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrialConfig:
        return from_plain(cls, d)

    def shared_hash(self) -> str:
        """Hash of the settings every trial of the study shares (not the grid point)."""
        shared = {k: asdict(getattr(self, k)) for k in ("data", "model", "train", "attack", "eval")}
        shared["data"].pop("label_noise")
        return config_hash(shared)


def config_hash(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def from_plain(cls, d: dict):
    """Rebuild a (nested) config dataclass from `asdict` output. Trusted input only."""
    kwargs = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        v = d[f.name]
        sub = _dataclass_of(f.type)
        if sub is not None and isinstance(v, dict):
            v = from_plain(sub, v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "attack": AttackConfig,
            "eval": EvalConfig, "attack_spec": AttackSpec, "autoattack": AutoAttackConfig,
            "pruning": PruningConfig}


def _dataclass_of(annotation) -> type | None:
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    for cls in SECTIONS.values():
        if cls.__name__ == name:
            return cls
    return None


def resolved_eval_attack(cfg: TrialConfig) -> AttackSpec:
    """The evaluation attack with its defaults filled from the training attack."""
    ev = cfg.attack.eval
    eps = ev.eps if ev.eps is not None else cfg.attack.train.eps
    if eps is None:
        eps = 0.0
    step = ev.step_size if ev.step_size is not None else default_step_size(ev.kind, eps, ev.steps)
    return AttackSpec(kind=ev.kind, eps=eps, steps=ev.steps, step_size=step, random_start=ev.random_start)


def resolved_train_attack(cfg: TrialConfig) -> AttackSpec:
    tr = cfg.attack.train
    eps = tr.eps if tr.eps is not None else 0.0
    step = tr.step_size if tr.step_size is not None else default_step_size(tr.kind, eps, tr.steps)
    return AttackSpec(kind=tr.kind, eps=eps, steps=tr.steps, step_size=step, random_start=tr.random_start)


def default_step_size(kind: str, eps: float, steps: int) -> float:
    if kind == "fgsm_rs":
        return 1.25 * eps  # Wong et al. 2020, "Fast is better than free"
    return 2.5 * eps / steps if steps else eps  # Madry et al.'s rule of thumb


def finite(v: float) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)
