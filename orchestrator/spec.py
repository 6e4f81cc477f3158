"""Study file (YAML) → frozen, typed `Study`; `--set key=value` overrides; validation.

Every rejected value names the file, the dotted key and the reason, and raises `UserError`
(exit status 2) before anything starts. YAML is read with a safe loader that also accepts
`5e-4` as a float (plain YAML 1.1 reads it as a string) and rejects duplicated keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from orchestrator.errors import UserError
from trials.config import (
    AttackConfig,
    DataConfig,
    EvalConfig,
    ModelConfig,
    TrainConfig,
    TrialConfig,
    at_least,
    each,
    non_negative,
    opt,
    positive,
)

# --------------------------------------------------------------------------- study classes


@dataclass(frozen=True)
class Arm:
    """One arm of the comparison with its own grid (λ for fixed, λ_awd for adaptive)."""

    name: str
    kind: Literal["fixed", "adaptive"]
    values: tuple[float, ...]

    @property
    def param(self) -> str:
        return "lambda" if self.kind == "fixed" else "lambda_awd"


@dataclass(frozen=True)
class Range:
    low: float = opt("lower bound", 1e-5, positive)
    high: float = opt("upper bound", 1e-2, positive)
    log: bool = opt("sample log-uniformly", True)


@dataclass(frozen=True)
class SearchConfig:
    kind: Literal["grid", "optuna"] = opt("grid: every arm × its grid × lr × seeds; optuna: tuned ranges",
                                          "grid")
    n_trials: int = opt("optuna: configurations sampled per arm", 20, at_least(1))
    sampler: Literal["tpe", "random", "gp", "cmaes"] = opt(
        "optuna sampler (for an exhaustive grid use search.kind: grid, which pairs seeds)", "tpe")
    seed: int = opt("optuna sampler seed", 0)
    scheduler: Literal["none", "asha"] = opt("optuna: early stopping for this tuning stage only", "none")
    grace_period: int = opt("asha: epochs before a trial may be stopped", 1, at_least(1))
    reduction_factor: int = opt("asha: keep 1/reduction_factor at each rung", 4, at_least(2))
    seeds_per_trial: int | None = opt("optuna: seeds each configuration is trained with; null = all",
                                      None, lambda v: None if v is None or v >= 1 else "must be ≥ 1")
    space: dict[str, Range] = opt("optuna: ranges keyed `lr`, `<arm>.lambda`, `<arm>.lambda_awd`",
                                  default_factory=dict)
    storage: str | None = opt("optuna: journal file so optuna-dashboard can watch the study", None)
    top_k: int = opt("optuna: best configurations per arm written to best_grid.yaml", 1, at_least(1))


@dataclass(frozen=True)
class ResourcesConfig:
    cpu: float = opt("CPUs per trial", 1.0, positive)
    gpu: float = opt("GPUs per trial; fractional values pack trials on one GPU", 0.0, non_negative)
    max_concurrent: int | None = opt("at most this many trials at once; null = as resources allow", None,
                                     lambda v: None if v is None or v >= 1 else "must be ≥ 1")
    max_failures: int = opt("retries of a crashed trial (from its last checkpoint)", 2,
                            lambda v: None if v >= -1 else "must be ≥ -1 (-1 = retry forever)")
    torch_threads: int | None = opt("intra-op threads per trial; null = the trial's CPU count", None,
                                    lambda v: None if v is None or v >= 1 else "must be ≥ 1")


@dataclass(frozen=True)
class Study:
    name: str = opt("study name; the run directory is <storage>/<name>", "study",
                    lambda v: None if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v) else
                    "must be letters, digits, '.', '_' or '-' (it names a directory)")
    description: str = opt("free text shown in the report", "")
    data: DataConfig = opt("dataset, split, subset and label noise", default_factory=DataConfig)
    model: ModelConfig = opt("network", default_factory=ModelConfig)
    train: TrainConfig = opt("optimisation", default_factory=TrainConfig)
    attack: AttackConfig = opt("training and evaluation attacks", default_factory=AttackConfig)
    eval: EvalConfig = opt("evaluation", default_factory=EvalConfig)
    methods: tuple[Arm, ...] = opt("the arms: name → {kind: fixed, lambda: [...]} or "
                                   "{kind: adaptive, lambda_awd: [...]}", default_factory=tuple)
    lr: tuple[float, ...] = opt("peak learning rates (a grid axis shared by all arms)", (0.05,),
                                each(positive))
    seeds: tuple[int, ...] = opt("seeds (a grid axis shared by all arms: paired trials)", (0,),
                                 each(non_negative))
    search: SearchConfig = opt("grid or optuna", default_factory=SearchConfig)
    resources: ResourcesConfig = opt("per-trial resources", default_factory=ResourcesConfig)

    def arm(self, name: str) -> Arm:
        for a in self.methods:
            if a.name == name:
                return a
        raise KeyError(name)

    def to_dict(self) -> dict:
        """The resolved study as plain data (YAML-able), in the study file's own shape."""
        d = dataclasses.asdict(self)
        d["methods"] = {a.name: {"kind": a.kind, a.param: list(a.values)} for a in self.methods}
        return _lists(d)


def _lists(v):
    if isinstance(v, dict):
        return {k: _lists(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_lists(x) for x in v]
    return v


# ------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """Safe loader: floats like `5e-4` (no dot) are floats; duplicated keys are errors."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


class _DuplicateKey(Exception):
    def __init__(self, key, line):
        self.key, self.line = key, line


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise _DuplicateKey(key, key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except _DuplicateKey as e:
        raise UserError(f"{where}, line {e.line}", f"key {e.key!r} appears twice",
                        "each key (and each arm name) may appear once") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        hint = ("study files hold plain data only: remove the `!!` tag"
                if isinstance(e, yaml.constructor.ConstructorError)
                else "check indentation and that lists use [a, b] or '- ' items")
        raise UserError(f"{where}{line}", f"not valid YAML: {problem}", hint) from None


# ---------------------------------------------------------------------------- building


def load_study(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Study:
    """Read, override and validate a study file. Raises UserError with file and key."""
    path = Path(path)
    where = str(path)
    if path.is_dir():
        raise UserError(where, "a directory, not a study file", "give a YAML file, e.g. studies/digits.yaml")
    if not path.is_file():
        raise UserError(where, "no such study file", "give the path of a YAML study, e.g. studies/digits.yaml")
    try:
        text = path.read_text()
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
        return _study_with_root(raw, where)
    except UserError as e:
        keys = [o.split("=", 1)[0].strip() for o in overrides]
        hit = next((k for k in keys if e.reason.startswith((k + ":", k + "[", k + "."))), None)
        if hit is None:
            raise
        raise UserError(e.where, f"{e.reason} (from --set {hit})", e.hint) from None


def _study_with_root(raw: dict, where: str) -> Study:
    root = (raw.get("data") or {}).get("root") if isinstance(raw.get("data"), dict) else None
    if isinstance(root, str):  # trials run in other directories (and on other nodes): make it absolute
        raw["data"]["root"] = str(Path(root).expanduser().resolve())
    return study_from_dict(raw, where)


def study_from_dict(raw: dict, where: str, check_data: bool = True) -> Study:
    """Build and validate a study; `check_data=False` skips the dataset-root check (reading results
    of a run made where the data lives, e.g. on a cluster)."""
    raw = dict(raw)
    methods_raw = raw.pop("methods", None)
    study = build(Study, raw, where, "")
    arms = build_arms(methods_raw, where, study.search.kind)
    study = dataclasses.replace(study, methods=arms)
    check_study(study, where, check_data)
    return study


def build(cls, raw: Any, where: str, prefix: str):
    """Build dataclass `cls` from a mapping, checking keys, types and values."""
    if not isinstance(raw, dict):
        raise UserError(where, f"{prefix or 'the study'}: expected a mapping of keys, got {_show(raw)}",
                        f"write `{prefix or 'key'}: {{key: value, ...}}`; `decaylab options` lists the keys")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in raw:
        if key not in names:
            raise UserError(where, f"{_join(prefix, key)}: unknown key", _did_you_mean(key, names, prefix))
    kwargs = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        key = _join(prefix, f.name)
        value = coerce(hints[f.name], raw[f.name], where, key)
        check = f.metadata.get("check")
        if check is not None and (reason := check(value)) is not None:
            raise UserError(where, f"{key}: {reason} (got {_show(raw[f.name])})", _default_hint(f))
        kwargs[f.name] = value
    return cls(**kwargs)


def coerce(tp, value: Any, where: str, key: str):
    """Check `value` against annotation `tp`, converting YAML data (lists → tuples, int → float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, {} if value is None else value, where, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(inner[0], value, where, key)
    if origin is Literal:
        if value not in args:
            raise UserError(where, f"{key}: {_show(value)} is not one of {', '.join(map(str, args))}",
                            _did_you_mean(str(value), [str(a) for a in args], ""))
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]  # a scalar is a grid of one
        return tuple(coerce(args[0], v, where, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(where, f"{key}: expected a mapping, got {_show(value)}",
                            f"write `{key}: {{name: value, ...}}`")
        return {str(k): coerce(args[1], v, where, _join(key, str(k))) for k, v in value.items()}
    return _scalar(tp, value, where, key)


def _scalar(tp, value, where, key):
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(where, f"{key}: expected true or false, got {_show(value)}",
                        "write true or false, without quotes")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(where, f"{key}: expected an integer, got {_show(value)}",
                        "write a whole number without quotes, e.g. 5")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
            if math.isnan(value):
                raise UserError(where, f"{key}: NaN is not a usable value", "give a number")
            return value
        raise UserError(where, f"{key}: expected a number, got {_show(value)}",
                        "write a number without quotes, e.g. 0.05 or 5.0e-4")
    if tp is str:
        if isinstance(value, str):
            return value
        raise UserError(where, f"{key}: expected a string, got {_show(value)}", "put the value in quotes")
    raise TypeError(f"unsupported annotation {tp!r} for {key}")


def build_arms(raw: Any, where: str, search_kind: str) -> tuple[Arm, ...]:
    if raw is None or raw == {}:
        raise UserError(where, "methods: no arms given",
                        "add e.g. `methods: {wd: {kind: fixed, lambda: [5.0e-4]}, "
                        "awd: {kind: adaptive, lambda_awd: [0.02]}}`")
    if not isinstance(raw, dict):
        raise UserError(where, f"methods: expected a mapping of arm name → settings, got {_show(raw)}",
                        "write e.g. `methods: {wd: {kind: fixed, lambda: [5.0e-4]}}`")
    arms = []
    for name, body in raw.items():
        key = f"methods.{name}"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", str(name)):
            raise UserError(where, f"{key}: arm names must be identifiers (letters, digits, '_')",
                            "rename the arm, e.g. wd or awd_small")
        if not isinstance(body, dict) or "kind" not in body:
            raise UserError(where, f"{key}: expected {{kind: fixed|adaptive, ...}}, got {_show(body)}",
                            f"write e.g. `{name}: {{kind: fixed, lambda: [5.0e-4]}}`")
        kind = coerce(Literal["fixed", "adaptive"], body["kind"], where, f"{key}.kind")
        param, other = ("lambda", "lambda_awd") if kind == "fixed" else ("lambda_awd", "lambda")
        unknown = set(body) - {"kind", param}
        if other in unknown:
            raise UserError(where, f"{key}.{other}: a {kind} arm takes `{param}`, not `{other}`",
                            f"rename the key to `{param}` or change `kind`")
        if unknown:
            bad = sorted(unknown)[0]
            raise UserError(where, f"{key}.{bad}: unknown key", _did_you_mean(bad, ["kind", param], key))
        if param not in body:
            if search_kind == "optuna":
                values: tuple[float, ...] = ()
            else:
                raise UserError(where, f"{key}.{param}: missing", f"give the arm's grid, e.g. {param}: [...]")
        else:
            values = coerce(tuple[float, ...], body[param], where, f"{key}.{param}")
            if search_kind == "grid" and not values:
                raise UserError(where, f"{key}.{param}: the grid is empty", "give at least one value")
            check = non_negative if kind == "fixed" else positive
            for i, v in enumerate(values):
                if (reason := check(v)) is not None:
                    raise UserError(where, f"{key}.{param}[{i}]: {reason} (got {v!r})",
                                    "λ ≥ 0 for a fixed arm (0 = no decay), λ_awd > 0 for an adaptive one")
            if len(set(values)) != len(values):
                raise UserError(where, f"{key}.{param}: repeated values {list(values)}",
                                "list each value once; use `seeds` for repeats")
        arms.append(Arm(str(name), kind, values))
    return tuple(arms)


def check_study(study: Study, where: str, check_data: bool = True) -> None:
    """Rules that involve several fields."""
    for axis, values in (("lr", study.lr), ("seeds", study.seeds), ("data.label_noise",
                                                                     study.data.label_noise)):
        if len(set(values)) != len(values):
            raise UserError(where, f"{axis}: repeated values {list(values)}", "list each value once")
    tr = study.attack.train
    if tr.kind != "none" and tr.eps is None:
        raise UserError(where, "attack.train.eps: missing", "give ε in [0, 1] pixel scale, e.g. 0.031 (8/255)")
    ev = study.attack.eval
    if ev.kind == "none" and study.eval.autoattack.enabled:
        raise UserError(where, "eval.autoattack.enabled: AutoAttack needs an ε",
                        "set attack.eval.kind to pgd (ε comes from attack.eval.eps or attack.train.eps)")
    if ev.kind != "none" and ev.eps is None and tr.eps is None:
        raise UserError(where, "attack.eval.eps: missing", "give ε, or an attack.train.eps to inherit")
    if check_data:
        check_data_root(study.data, where)
    if study.search.kind == "optuna":
        check_optuna_space(study, where)


def check_data_root(data: DataConfig, where: str) -> None:
    if data.dataset == "digits":
        return
    if data.root is None:
        raise UserError(where, f"data.root: required for dataset {data.dataset}",
                        "give the directory holding (or to receive, with data.download: true) the files")
    root = Path(data.root).expanduser()
    if not root.is_dir() and not data.download:
        raise UserError(where, f"data.root: directory {root} does not exist",
                        "fix the path, or set data.download: true to fetch the dataset there")
    if data.dataset == "image_folder" and not (root / "train").is_dir():
        raise UserError(where, f"data.root: {root}/train does not exist",
                        "image_folder expects <root>/train/<class>/*.jpg and <root>/val (or test)/<class>/")


def check_optuna_space(study: Study, where: str) -> None:
    space = study.search.space
    allowed = ["lr"] + [f"{a.name}.{a.param}" for a in study.methods]
    for key, rng in space.items():
        if key not in allowed:
            raise UserError(where, f"search.space.{key}: not a tunable parameter",
                            f"tunable here: {', '.join(allowed)}")
        if rng.low >= rng.high:
            raise UserError(where, f"search.space.{key}: low ({rng.low:g}) must be below high ({rng.high:g})",
                            "swap the bounds, or fix the value in the grid instead of a range")
    for a in study.methods:
        if f"{a.name}.{a.param}" not in space and not a.values:
            raise UserError(where, f"search.space.{a.name}.{a.param}: missing",
                            f"give a range for arm {a.name!r} or a `{a.param}` list in methods.{a.name}")


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


def expand_grid(study: Study) -> list[TrialConfig]:
    """Every arm × its own grid × lr × label_noise × seeds, in a stable order. Grids never cross arms."""
    out = []
    for arm in study.methods:
        for value in arm.values:
            for noise in study.data.label_noise:
                for lr in study.lr:
                    for seed in study.seeds:
                        out.append(trial_config(study, arm, value, lr, seed, noise))
    return out


def trial_config(study: Study, arm: Arm, value: float, lr: float, seed: int, noise: float) -> TrialConfig:
    return TrialConfig(
        study=study.name, method=arm.name, kind=arm.kind,
        lam=value if arm.kind == "fixed" else None,
        lambda_awd=value if arm.kind == "adaptive" else None,
        lr=lr, seed=seed, label_noise=noise,
        data=study.data, model=study.model, train=study.train, attack=study.attack, eval=study.eval,
    )


def planned_count_text(study: Study, grid_trials: int | None) -> str:
    arms = ", ".join(f"{a.name} ({a.kind}, {len(a.values) or 'ranged'} {a.param})" for a in study.methods)
    if grid_trials is not None:
        return (f"{grid_trials} trials = arms [{arms}] × {len(study.lr)} lr × {len(study.seeds)} seeds"
                f"{f' × {len(study.data.label_noise)} noise rates' if len(study.data.label_noise) > 1 else ''}"
                f", {study.train.epochs} epochs each")
    seeds = study.search.seeds_per_trial or len(study.seeds)
    return (f"Optuna: {study.search.n_trials} configurations per arm [{arms}] × {seeds} seeds, "
            f"sampler {study.search.sampler}, scheduler {study.search.scheduler}")


TRIAL_PICKS = ("method", "lam", "lambda", "lambda_awd", "seed", "label_noise")


def single_trial(study_path: str | Path, sets: list[str]) -> TrialConfig:
    """`decaylab train`: study-file overrides plus picks of one grid point (method, λ, seed...)."""
    picks, overrides = {}, []
    for item in sets:
        key = item.split("=", 1)[0].strip()
        if key in TRIAL_PICKS and "=" in item:
            picks[key] = parse_yaml(item.split("=", 1)[1], f"--set {key}")
        else:
            overrides.append(item)
    study = load_study(study_path, overrides)
    names = [a.name for a in study.methods]
    name = picks.get("method", names[0])
    if name not in names:
        raise UserError(f"--set method={name}", "no such arm in the study", _did_you_mean(str(name), names, ""))
    arm = study.arm(name)
    value = picks.get("lambda_awd" if arm.kind == "adaptive" else "lam", picks.get("lambda"))
    wrong = "lam" if arm.kind == "adaptive" else "lambda_awd"
    if wrong in picks:
        raise UserError(f"--set {wrong}", f"arm {name!r} is {arm.kind}; it takes `{arm.param}`",
                        f"use --set {'lambda_awd' if arm.kind == 'adaptive' else 'lam'}=VALUE")
    value = coerce(float, value, "--set", arm.param) if value is not None else arm.values[0]
    seed = coerce(int, picks.get("seed", study.seeds[0]), "--set", "seed")
    noise = coerce(float, picks.get("label_noise", study.data.label_noise[0]), "--set", "label_noise")
    return trial_config(study, arm, value, study.lr[0], seed, noise)


# ------------------------------------------------------------------------------ helpers


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _default_hint(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return "`decaylab options` lists every key with its meaning"
    shown = yaml.safe_dump(_lists(default), default_flow_style=True).strip().removesuffix("...").strip()
    return f"the default is {shown}; `decaylab options` lists every key with its meaning"


def _did_you_mean(key: str, names: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{_join(prefix, close[0])}`?"
    return f"known keys{' under ' + prefix if prefix else ''}: {', '.join(names)}"


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return f"a list {v!r}"[:80]
    return repr(v)


def documented_options() -> list[tuple[str, str, str]]:
    """(dotted key, default, doc) for every study-file option, for `decaylab options` and the README."""
    rows: list[tuple[str, str, str]] = []

    def walk(obj, prefix):
        for f in fields(obj):
            key = _join(prefix, f.name)
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, key)
            else:
                text = value if isinstance(value, str) and value else yaml.safe_dump(
                    _lists(value), default_flow_style=True).strip().removesuffix("...").strip()
                rows.append((key, text, f.metadata.get("doc", "")))

    walk(Study(), "")
    return rows
