"""Study file (YAML) → frozen, typed `Study`; `--set key=value` overrides; validation; the grid.

The study schema is pydantic: the shared sections come from `trials.config`, each arm's
section from its module in `trials.arms` (a tagged union on `kind`). Every rejected value
names the file, the dotted key and the reason, and raises `UserError` (exit status 2) before
anything starts (`orchestrator.study_errors`). YAML is read by `orchestrator.safe_yaml`: plain
data, YAML 1.2 scalars (`5e-4` is a float, `on` a string), bounded in size and aliases.
"""

from __future__ import annotations

import importlib.util
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from orchestrator import feasibility, safe_yaml
from orchestrator.errors import UserError
from orchestrator.study_errors import did_you_mean, join, show, to_user_error
from trials import arms
from trials.checks import Fraction, Int, NonNegative, Number, at_least_int, checked, fraction, grid, positive
from trials.config import (
    SHARED_SECTIONS,
    AttackConfig,
    DataConfig,
    EvalConfig,
    GridPoint,
    ModelConfig,
    Section,
    Seed,
    TrainConfig,
    TrialConfig,
)
from trials.datasets import DATASETS, fetch_command

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
    n_trials: at_least_int(1) = Field(20, description="optuna: configurations sampled per arm")
    sampler: Literal["tpe", "random", "gp", "cmaes"] = Field(
        "tpe", description="optuna sampler (for an exhaustive grid use search.kind: grid, which pairs seeds)")
    seed: Seed = Field(0, description="optuna sampler seed")
    scheduler: Literal["none", "asha"] = Field("none", description="optuna: early stopping for this tuning stage only")
    grace_period: at_least_int(1) = Field(1, description="asha: evaluations before a trial may be stopped")
    reduction_factor: at_least_int(2) = Field(4, description="asha: keep 1/reduction_factor at each rung")
    seeds_per_trial: at_least_int(1) | None = Field(
        None, description="optuna: seeds each configuration is trained with; null = all")
    space: dict[str, Range] = Field(
        default_factory=dict, description="optuna: ranges keyed `lr` and `<arm>.<hyperparameter>` (e.g. wd.lambda)")
    storage: str | None = Field(None, description="optuna: journal file so optuna-dashboard can watch the study")
    top_k: at_least_int(1) = Field(1, description="optuna: best configurations per arm written to best_grid.yaml")


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
    cpu: checked(Number, positive) = Field(1.0, description="CPUs per trial")
    gpu: checked(NonNegative, _whole_above_one) = Field(
        0.0, description="GPUs per trial; fractional values (< 1) pack trials on one GPU")
    max_concurrent: at_least_int(1) | None = Field(
        None, description="at most this many trials at once; null = as resources allow")
    max_failures: checked(Int, _retries) = Field(2, description="retries of a crashed trial (from its last checkpoint)")
    torch_threads: at_least_int(1) | None = Field(
        None, description="intra-op threads per trial; null = the trial's CPU count")


class AnalysisConfig(Section):
    reference: str | None = Field(
        None, description="the arm every other arm is compared with; null = the first `fixed` arm")


def _tracking_uri(v: str) -> str | None:
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", v):
        return None
    return ("must be a tracking URI, not a path (MLflow 3 no longer writes plain directories); hint: "
            "give sqlite:///<dir>/mlflow.db for a local database, or http://<host>:5000 for a server")


class MlflowConfig(Section):
    uri: checked(str, _tracking_uri) = Field(
        description="tracking URI: sqlite:///<dir>/mlflow.db (a relative path is resolved from the current "
        "directory) or http(s)://<host>:<port> of an MLflow server")
    experiment: str | None = Field(None, description="MLflow experiment; null = the study name")


class WandbConfig(Section):
    project: str = Field(description="W&B project")
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


class Study(Section):
    name: checked(str, _name) = Field("study", description="study name; the run directory is <storage>/<name>")
    description: str = Field("", description="free text shown in the report")
    data: StudyData = Field(default_factory=StudyData, description="dataset, split, subset and label noise")
    model: ModelConfig = Field(default_factory=ModelConfig, description="network")
    train: TrainConfig = Field(default_factory=TrainConfig, description="optimisation")
    attack: AttackConfig = Field(default_factory=AttackConfig, description="training and evaluation attacks")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation")
    methods: dict[str, ArmSection] = Field(
        default_factory=dict, description="the arms: name → {kind: <kind>, <hyperparameter>: [...]}")
    lr: grid(Number, positive) = Field((0.05,), description="peak learning rates (a grid axis shared by all arms)")
    seeds: grid(Seed) = Field((0,), description="seeds (a grid axis shared by all arms: paired trials)")
    search: SearchConfig = Field(default_factory=SearchConfig, description="grid or optuna")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, description="per-trial resources")
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig, description="how the report compares the arms")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="experiment trackers")

    @field_validator("methods", mode="before")
    @classmethod
    def _arm_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in value:
                if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                    raise UserError("", f"methods.{name}: arm names must be identifiers (letters, digits, '_')",
                                    "rename the arm, e.g. wd or awd_small")
        return value

    def arm(self, name: str) -> arms.ArmGrid:
        return self.methods[name]

    @property
    def reference(self) -> str | None:
        """The reference arm of the comparison (analysis.reference, else the first fixed arm)."""
        if self.analysis.reference:
            return self.analysis.reference
        return next((name for name, arm in self.methods.items() if arm.kind == "fixed"), None)

    def to_dict(self) -> dict:
        """The resolved study as plain data (YAML-able), in the study file's own shape."""
        return self.model_dump(mode="json", by_alias=True)


# ------------------------------------------------------------------------------- YAML


def parse_yaml(text: str, where: str) -> Any:
    """Plain data from a study file's text (or a --set value): YAML 1.2 scalars, bounded, no tags."""
    return safe_yaml.load(text, where)


# ---------------------------------------------------------------------------- building


def load_study(path: str | Path, overrides: list[str] | tuple[str, ...] = (),
               allow_large_grid: bool = False, check_data: bool = True) -> Study:
    """Read, override and validate a study file. Raises UserError with file and key."""
    path = Path(path)
    where = str(path)
    if path.is_dir():
        raise UserError(where, "a directory, not a study file", "give a YAML file, e.g. studies/digits.yaml")
    if not path.is_file():
        raise UserError(where, "no such study file", "give the path of a YAML study, e.g. studies/digits.yaml")
    try:
        text = safe_yaml.read_bounded(path, where).decode()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(where, f"cannot read the study file ({getattr(e, 'strerror', None) or e})",
                        "give a readable, UTF-8 encoded YAML file") from None
    raw = parse_yaml(text, where)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(where, "a study file must be a mapping of keys (name:, data:, methods:, ...)",
                        "start from studies/digits.yaml; `decaylab options` lists every key")
    raw = apply_overrides(raw, overrides)
    try:
        return study_from_dict(_with_absolute_tracking(_with_absolute_root(raw)), where, check_data,
                               allow_large_grid=allow_large_grid)
    except UserError as e:
        keys = [o.split("=", 1)[0].strip() for o in overrides]
        hit = next((k for k in keys if e.reason.startswith((k + ":", k + "[", k + "."))), None)
        if hit is None:
            raise
        raise UserError(e.where, f"{e.reason} (from --set {hit})", e.hint) from None


def _with_absolute_root(raw: dict) -> dict:
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("root"), str):
        # trials run in other directories (and on other nodes): make it absolute
        raw = {**raw, "data": {**data, "root": str(Path(data["root"]).expanduser().resolve())}}
    return raw


def _with_absolute_tracking(raw: dict) -> dict:
    tracking = raw.get("tracking")
    mlflow = tracking.get("mlflow") if isinstance(tracking, dict) else None
    uri = mlflow.get("uri") if isinstance(mlflow, dict) else None
    if isinstance(uri, str) and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        # the driver writes it, and `resume` may run from another directory: make it absolute
        path = Path(uri.removeprefix("sqlite:///")).expanduser().resolve()
        raw = {**raw, "tracking": {**tracking, "mlflow": {**mlflow, "uri": f"sqlite:///{path}"}}}
    return raw


def study_from_dict(raw: dict, where: str, check_data: bool = True, allow_large_grid: bool = False) -> Study:
    """Build and validate a study; `check_data=False` skips the checks of this machine (dataset root,
    downloads, optional packages: reading results of a run made elsewhere, or inside a trial)."""
    try:
        study = Study.model_validate(raw)
    except UserError as e:  # raised inside a validator, without the file
        raise UserError(where, e.reason, e.hint) from None
    except ValidationError as e:
        raise to_user_error(e, Study, where) from None
    check_study(study, where, check_data, allow_large_grid)
    return study


def check_study(study: Study, where: str, check_data: bool = True, allow_large_grid: bool = False) -> None:
    """Rules that involve several fields, and what would make every trial fail (`feasibility`)."""
    if not study.methods:
        raise UserError(where, "methods: no arms given",
                        "add e.g. `methods: {wd: {kind: fixed, lambda: [5.0e-4]}, "
                        "awd: {kind: adaptive, lambda_awd: [0.02]}}`")
    if study.search.kind == "grid" and not allow_large_grid:
        feasibility.check_grid_size(study, where)  # before the grid's points are built
    for name, arm in study.methods.items():
        check_arm_grid(study, name, arm, where)
    tr, ev = study.attack.train, study.attack.eval
    if tr.kind != "none" and tr.eps is None:
        raise UserError(where, "attack.train.eps: missing", "give ε in [0, 1] pixel scale, e.g. 0.031 (8/255)")
    if ev.kind == "none" and study.eval.autoattack.enabled:
        raise UserError(where, "eval.autoattack.enabled: AutoAttack needs an ε",
                        "set attack.eval.kind to pgd (ε comes from attack.eval.eps or attack.train.eps)")
    if ev.kind != "none" and ev.eps is None and (tr.eps is None or tr.kind == "none"):
        raise UserError(where, "attack.eval.eps: missing", "give ε, or an attack.train.eps to inherit")
    if study.analysis.reference is not None and study.analysis.reference not in study.methods:
        raise UserError(where, f"analysis.reference: {study.analysis.reference!r} is not an arm of the study",
                        did_you_mean(study.analysis.reference, list(study.methods), "methods"))
    if check_data:
        check_machine(study, where)
    feasibility.check_splits(study.data, where, check_files=check_data)
    if study.search.kind == "optuna":
        check_optuna_space(study, where)
    else:
        check_trial_ids(expand_grid(study), where)


def check_machine(study: Study, where: str, data_root: bool = True) -> None:
    """What this machine must have to run the study: the dataset (unless `data_root` is False), a network
    for a download, the packages of the Optuna sampler and of the trackers."""
    if data_root:
        check_data_root(study.data, where)
    feasibility.check_download(study.data, where)
    if study.search.kind == "optuna":
        feasibility.check_optuna(study, where)
    check_trackers(study.tracking, where)


# the package each tracker needs (the `track` extra installs them)
TRACKER_PACKAGES = {"tensorboard": "tensorboardX", "mlflow": "mlflow", "wandb": "wandb"}


def check_trackers(tracking: TrackingConfig, where: str) -> None:
    """Refuse a tracker whose package is missing (the sweep would fail when it starts logging)."""
    for name, package in TRACKER_PACKAGES.items():
        if getattr(tracking, name) and importlib.util.find_spec(package) is None:
            raise UserError(where, f"tracking.{name}: the package {package} is not installed",
                            "pip install 'decaylab[track]' (or make install), or turn the tracker off")


def check_arm_grid(study: Study, name: str, arm: arms.ArmGrid, where: str) -> None:
    """A grid study needs every hyperparameter's grid; an Optuna study may range it instead."""
    for h in arm.hyperparameters():
        key = f"methods.{name}.{arm.study_key(h)}"
        values = getattr(arm, h)
        ranged = f"{name}.{arm.study_key(h)}" in study.search.space
        if study.search.kind == "grid" or not ranged:
            if values is None:
                raise UserError(where, f"{key}: missing", f"give the arm's grid, e.g. {arm.study_key(h)}: [...]"
                                + (f", or a range search.space.{name}.{arm.study_key(h)}"
                                   if study.search.kind == "optuna" else ""))
            if not values:
                raise UserError(where, f"{key}: the grid is empty", "give at least one value")
    if study.search.kind == "grid":
        for point in arm.points():
            if (reason := arm.check_point(point)) is not None:
                raise UserError(where, f"methods.{name}: {reason}",
                                "every combination of the arm's grids is a trial; use separate arms for "
                                "combinations that do not go together")


def check_trial_ids(configs: list[TrialConfig], where: str) -> None:
    seen: dict[str, TrialConfig] = {}
    for cfg in configs:
        if cfg.trial_id in seen:
            raise UserError(where, f"two grid points share the trial id {cfg.trial_id!r}",
                            "every value of a grid must differ from the others")
        seen[cfg.trial_id] = cfg


def check_data_root(data: DataConfig, where: str) -> None:
    if data.dataset == "digits":
        return
    if data.root is None:
        raise UserError(where, f"data.root: required for dataset {data.dataset}",
                        "give the directory holding (or to receive, with data.download: true) the files")
    root = Path(data.root).expanduser()
    if not root.is_dir() and not data.download:
        info = DATASETS[data.dataset][0]
        fetch = (f"fetch it with `{fetch_command(info, str(root))}` (on a machine with internet, then copy "
                 "the directory here), " if info.torchvision else "")
        raise UserError(where, f"data.root: directory {root} does not exist",
                        f"{fetch}fix the path, or set data.download: true to fetch the dataset there")
    if data.dataset == "image_folder" and not (root / "train").is_dir():
        raise UserError(where, f"data.root: {root}/train does not exist",
                        "image_folder expects <root>/train/<class>/*.jpg and <root>/val (or test)/<class>/")


def data_problem(study: Study, where: str) -> UserError | None:
    """Why the study's dataset is not here (its data.root does not exist), or None."""
    if study.data.root is None:
        return None  # a mistake in the study file, not a missing dataset: check_data_root says so
    try:
        check_data_root(study.data, where)
    except UserError as e:
        return e
    return None


def tunable(study: Study) -> list[str]:
    """The keys `search.space` may range: `lr` and every arm's numeric hyperparameters."""
    columns = arms.hyperparameter_columns()
    return ["lr"] + [f"{name}.{arm.study_key(h)}" for name, arm in study.methods.items()
                     for h in arm.hyperparameters() if columns[h] == "float64"]


def check_optuna_space(study: Study, where: str) -> None:
    allowed = tunable(study)
    for key, rng in study.search.space.items():
        if key not in allowed:
            raise UserError(where, f"search.space.{key}: not a tunable parameter",
                            f"tunable here: {', '.join(allowed)}")
        if rng.low >= rng.high:
            raise UserError(where, f"search.space.{key}: low ({rng.low:g}) must be below high ({rng.high:g})",
                            "swap the bounds, or fix the value in the grid instead of a range")
        if rng.log and rng.low <= 0:
            raise UserError(where, f"search.space.{key}: a log range needs low > 0 (got {rng.low:g})",
                            "give a positive low, or log: false")


# ---------------------------------------------------------------------------- overrides


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply `key=value` strings (dotted keys, YAML values) to a copy of the raw study."""
    raw = _deep_copy(raw)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item}", "expected key=value", "e.g. --set train.epochs=5")
        key, text = item.split("=", 1)
        key = key.strip()
        value = parse_yaml(text, f"--set {key}")
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"--set {key}", f"{part!r} is not a section",
                                f"set `{part}` itself, e.g. --set {part}=..., or see `decaylab options`")
            node = child
        node[parts[-1]] = value
    return raw


def _deep_copy(v):
    if isinstance(v, dict):
        return {k: _deep_copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_deep_copy(x) for x in v]
    return v


# ------------------------------------------------------------------------------ trials


def shared_sections(study: Study) -> dict[str, Any]:
    """The sections every trial of `study` shares, as trial-config objects."""
    data = DataConfig.model_construct(**{k: getattr(study.data, k) for k in DataConfig.model_fields})
    return {"data": data, **{k: getattr(study, k) for k in SHARED_SECTIONS if k != "data"}}


def trial_config(study: Study, method: str, params: dict[str, Any], lr: float, seed: int,
                 noise: float) -> TrialConfig:
    point = GridPoint(method=method, kind=study.methods[method].kind, params=params, lr=lr, seed=seed,
                      label_noise=noise)
    return TrialConfig.model_construct(study=study.name, point=point, **shared_sections(study))


def expand_grid(study: Study) -> list[TrialConfig]:
    """Every arm × its own grid × label_noise × lr × seeds, in a stable order. Grids never cross arms."""
    out = []
    for name, arm in study.methods.items():
        for params in arm.points():
            for noise in study.data.label_noise:
                for lr in study.lr:
                    for seed in study.seeds:
                        out.append(trial_config(study, name, params, lr, seed, noise))
    return out


def planned_count_text(study: Study, grid_trials: int | None) -> str:
    def grid_size(arm: arms.ArmGrid) -> str:
        sizes = [f"{len(getattr(arm, h) or ())} {arm.study_key(h)}" for h in arm.hyperparameters()]
        return " × ".join(sizes)

    parts = [f"{name} ({arm.kind}: {grid_size(arm)} = {len(arm.points())} settings)"
             for name, arm in study.methods.items()]
    if grid_trials is not None:
        settings = sum(len(arm.points()) for arm in study.methods.values())
        noise = len(study.data.label_noise)
        return (f"{grid_trials} trials = {settings} settings [{'; '.join(parts)}] × {len(study.lr)} lr × "
                f"{len(study.seeds)} seeds{f' × {noise} noise rates' if noise > 1 else ''}, "
                f"{study.train.epochs} epochs each")
    seeds = study.search.seeds_per_trial or len(study.seeds)
    return (f"Optuna: {study.search.n_trials} configurations per arm [{', '.join(study.methods)}] × {seeds} seeds, "
            f"sampler {study.search.sampler}, scheduler {study.search.scheduler}")


TRIAL_PICKS = ("method", "seed", "label_noise")


def single_trial(study_path: str | Path, sets: list[str]) -> tuple[Study, TrialConfig]:
    """`decaylab train`: study-file overrides plus picks of one grid point (method, its hyperparameters
    by their study-file names, seed, label_noise); lr is the first of the study's `lr`."""
    raw_picks, overrides = {}, []
    # a hyperparameter is picked by its study-file name (lambda) or its column name (lam)
    hyper_keys = {k for cls in arms.grid_classes() for h in cls.hyperparameters() for k in (h, cls.study_key(h))}
    for item in sets:
        key = item.split("=", 1)[0].strip()
        if "=" in item and (key in TRIAL_PICKS or key in hyper_keys):
            raw_picks[key] = parse_yaml(item.split("=", 1)[1], f"--set {key}")
        else:
            overrides.append(item)
    study = load_study(study_path, overrides)
    names = list(study.methods)
    name = str(raw_picks.pop("method", names[0]))
    if name not in study.methods:
        raise UserError(f"--set method={name}", "no such arm in the study", did_you_mean(name, names, ""))
    arm = study.methods[name]
    own = {k: h for h in arm.hyperparameters() for k in (arm.study_key(h), h)}
    params = {}
    for key, value in raw_picks.items():
        if key in TRIAL_PICKS:
            continue
        if key not in own:
            takes = ", ".join(f"`{arm.study_key(h)}`" for h in arm.hyperparameters())
            raise UserError(f"--set {key}", f"arm {name!r} is {arm.kind}; it takes {takes}",
                            f"use --set {arm.study_key(arm.hyperparameters()[0])}=VALUE")
        params[own[key]] = value
    point = arm.points()[0] if arm.points() else {}
    try:
        checked_arm = type(arm).model_validate({"kind": arm.kind, **{arm.study_key(h): [v]
                                                                     for h, v in {**point, **params}.items()}})
    except ValidationError as e:
        raise to_user_error(e, type(arm), "--set") from None
    (point,) = checked_arm.points()
    seed = _pick(raw_picks, "seed", study.seeds[0], Seed)
    noise = _pick(raw_picks, "label_noise", study.data.label_noise[0], Fraction)
    cfg = trial_config(study, name, point, study.lr[0], seed, noise)
    section = {"kind": arm.kind, **{arm.study_key(h): [v] for h, v in point.items()}}
    one = {**study.to_dict(), "methods": {name: section}, "lr": [cfg.lr], "seeds": [seed],
           "data": {**study.to_dict()["data"], "label_noise": [noise]}}
    return Study.model_validate(one), cfg


def _pick(picks: dict, key: str, default: Any, kind: Any) -> Any:
    from pydantic import TypeAdapter

    if key not in picks:
        return default
    try:
        return TypeAdapter(kind).validate_python(picks[key], strict=True)
    except ValidationError as e:
        raise UserError(f"--set {key}", f"{e.errors()[0]['msg']} (got {show(picks[key])})") from None


# ------------------------------------------------------------------------------ docs


def documented_options() -> list[tuple[str, str, str]]:
    """(dotted key, default, doc) for every study-file option, for `decaylab options` and the README."""
    rows: list[tuple[str, str, str]] = []

    def walk(model: type[Section], prefix: str) -> None:
        for name, f in model.model_fields.items():
            key = join(prefix, f.alias or name)
            default = f.get_default(call_default_factory=True)
            if isinstance(default, Section):
                walk(type(default), key)
                continue
            rows.append((key, _yaml_text(default), f.description or ""))
            if name == "methods":
                for cls in arms.grid_classes():
                    kind = cls.model_fields["kind"].annotation.__args__[0]
                    for h in cls.hyperparameters():
                        hf = cls.model_fields[h]
                        default = hf.get_default()
                        rows.append((f"methods.<arm>.{cls.study_key(h)} (kind: {kind})",
                                     "required" if default is None else _yaml_text(default), hf.description or ""))

    walk(Study, "")
    return rows


def study_schema() -> dict:
    """The JSON Schema of a study file, for editors (YAML language server) and `decaylab schema`."""
    schema = Study.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "decaylab study"}


def _yaml_text(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    plain = list(value) if isinstance(value, tuple) else value
    return yaml.safe_dump(plain, default_flow_style=True).strip().removesuffix("...").strip()


__all__ = ["Int", "Study", "expand_grid", "load_study", "single_trial", "study_from_dict", "trial_config"]
