"""Reading a study: YAML file → overrides (`--set key=value`) → validated, frozen `Study`.

YAML is read by `orchestrator.study.safe_yaml`: plain data, YAML 1.2 scalars (`5e-4` is a float,
`on` a string), bounded in size and aliases. Every rejected value names the file, the dotted key
and the reason, and raises `UserError` (exit status 2) before anything starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import UserError
from orchestrator.study import safe_yaml
from orchestrator.study.checks import check_study
from orchestrator.study.errors import did_you_mean, show, to_user_error
from orchestrator.study.plan import trial_config
from orchestrator.study.schema import Study
from trials import arms
from trials.config import Seed, TrialConfig
from trials.fields import Fraction, control_character

# ------------------------------------------------------------------------------- YAML


def parse_yaml(text: str, where: str) -> Any:
    """Plain data from a study file's text (or a --set value): YAML 1.2 scalars, bounded, no tags."""
    return safe_yaml.load(text, where)


# ---------------------------------------------------------------------------- building


Resolve = Callable[[dict, str], dict]  # raw study → raw study with what it names elsewhere read in


def load_study(path: str | Path, overrides: list[str] | tuple[str, ...] = (), allow_large_grid: bool = False,
               check_data: bool = True, resolve: Resolve | None = None) -> Study:
    """Read, override and validate a study file. Raises UserError with file and key. `resolve` reads in what
    the study takes from elsewhere (a `scheduled` arm's `from:` a run directory: `orchestrator.run.sources`)."""
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
        raw = _with_absolute_tracking(_with_absolute_root(raw))
        if resolve is not None:
            raw = resolve(raw, where)
        return study_from_dict(raw, where, check_data, allow_large_grid=allow_large_grid)
    except UserError as e:
        keys = [o.split("=", 1)[0].strip() for o in overrides]
        hit = next((k for k in keys if e.reason.startswith((k + ":", k + "[", k + "."))), None)
        if hit is None:
            raise
        raise UserError(e.where, f"{e.reason} (from --set {hit})", e.hint) from None


def _with_absolute_root(raw: dict) -> dict:
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("root"), str) and control_character(data["root"]) is None:
        # trials run in other directories (and on other nodes): make it absolute (a path with a control
        # character is left for the schema to refuse with its key: `Path` would raise on a NUL)
        raw = {**raw, "data": {**data, "root": str(Path(data["root"]).expanduser().resolve())}}
    return raw


def _with_absolute_tracking(raw: dict) -> dict:
    tracking = raw.get("tracking")
    mlflow = tracking.get("mlflow") if isinstance(tracking, dict) else None
    uri = mlflow.get("uri") if isinstance(mlflow, dict) else None
    if (isinstance(uri, str) and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////")
            and control_character(uri) is None):
        # the driver writes it, and `resume` may run from another directory: make it absolute
        path = Path(uri.removeprefix("sqlite:///")).expanduser().resolve()
        raw = {**raw, "tracking": {**tracking, "mlflow": {**mlflow, "uri": f"sqlite:///{path}"}}}
    return raw


def study_from_dict(raw: dict, where: str, check_data: bool = True, allow_large_grid: bool = False,
                    expand: bool = True) -> Study:
    """Build and validate a study; `check_data=False` skips the checks of this machine (dataset root,
    downloads, optional packages: reading results of a run made elsewhere, or inside a trial);
    `expand=False` skips the checks that build every trial (reading a run directory's study)."""
    try:
        study = Study.model_validate(raw)
    except UserError as e:  # raised inside a validator, without the file
        raise UserError(where, e.reason, e.hint) from None
    except ValidationError as e:
        raise to_user_error(e, Study, where) from None
    check_study(study, where, check_data, allow_large_grid, expand)
    return study


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


TRIAL_PICKS = ("arm", "method", "seed", "label_noise")  # method: the study file's word for an arm


def single_trial(study_path: str | Path, sets: list[str], resolve: Resolve | None = None
                 ) -> tuple[Study, TrialConfig]:
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
    study = load_study(study_path, overrides, resolve=resolve)
    names = list(study.arms)
    picked = "arm" if "arm" in raw_picks else "method"
    name = str(raw_picks.pop("arm", raw_picks.pop("method", names[0])))
    if name not in study.arms:
        raise UserError(f"--set {picked}={name}", "no such arm in the study", did_you_mean(name, names, ""))
    arm = study.arms[name]
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
    fixed_fields = {"kind": arm.kind, **arm.model_dump(mode="json", by_alias=True, include=set(arm.NON_GRID_FIELDS))}
    try:
        checked_arm = type(arm).model_validate({**fixed_fields, **{arm.study_key(h): [v]
                                                                   for h, v in {**point, **params}.items()}})
    except ValidationError as e:
        raise to_user_error(e, type(arm), "--set") from None
    (point,) = checked_arm.points()
    seed = _pick(raw_picks, "seed", study.seeds[0], Seed)
    noise = _pick(raw_picks, "label_noise", study.data.label_noise[0], Fraction)
    cfg = trial_config(study, name, point, study.lr[0], seed, noise)
    section = {**fixed_fields, **{arm.study_key(h): [v] for h, v in point.items()}}
    whole = study.to_dict()
    # the one-arm study names no other arm: a reference or published numbers of another arm are dropped
    analysis = {**whole["analysis"], "reference": None} if whole["analysis"].get("reference") != name else \
        whole["analysis"]
    one = {**whole, "methods": {name: section}, "lr": [cfg.lr], "seeds": [seed], "confirm": None,
           "data": {**whole["data"], "label_noise": [noise]}, "analysis": analysis,
           "reference_results": [r for r in whole.get("reference_results", ()) if r["arm"] == name]}
    return Study.model_validate(one), cfg


def _pick(picks: dict, key: str, default: Any, kind: Any) -> Any:
    from pydantic import TypeAdapter

    if key not in picks:
        return default
    try:
        return TypeAdapter(kind).validate_python(picks[key], strict=True)
    except ValidationError as e:
        raise UserError(f"--set {key}", f"{e.errors()[0]['msg']} (got {show(picks[key])})") from None


