"""Opening a run directory: where it is, the study it records, and whether a new study may use it.

A run directory keeps the resolved study (`study.yaml`). A study whose shared settings differ is
refused (its results would not be comparable); one whose grid grew just runs the new points.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import RunError, UserError
from orchestrator.run.layout import STUDY
from orchestrator.run.storage import RunDir, absolute, check_location
from orchestrator.study import safe_yaml
from orchestrator.study.checks import redacted
from orchestrator.study.load import apply_overrides, study_from_dict
from orchestrator.study.schema import Study
from trials.config import SHARED_SECTIONS


def run_dir_for(storage: str, study: Study) -> RunDir:
    check_location(storage)
    return RunDir(absolute(storage).rstrip("/") + "/" + study.name)


def open_run(location: str, check_data: bool = True) -> tuple[RunDir, Study]:
    """An existing run directory and its resolved study, or a clear error."""
    check_location(location)
    run = RunDir(absolute(location))
    if not run.exists():
        raise UserError(location, "no such run directory", "give <storage>/<study name>, e.g. results/digits")
    if not run.exists(STUDY):
        raise UserError(location, "not a decaylab run directory (it has no study.yaml)",
                        "give the directory `decaylab sweep` printed at its end")
    # a reader (check_data=False: status, report, export) never builds the study's trials
    return run, recorded_study(run, check_data, expand=check_data)


def recorded_study(run: RunDir, check_data: bool = True, expand: bool = True) -> Study:
    """The resolved study kept in the run directory. A damaged study.yaml (binary, truncated, edited
    into an invalid study, a FIFO) is called damaged, not blamed on one of its keys. `expand=False` skips
    the checks that build every trial (for readers); the grid's size is bounded either way."""
    where = run.uri(STUDY)
    fix = ("rewrite it from `resolved_study` in manifest.json, or delete it and rerun `decaylab sweep` "
           "with the original study file and --storage")
    try:
        raw = safe_yaml.load(run.read_text(STUDY, cap=safe_yaml.MAX_BYTES), where)
        if not isinstance(raw, dict):
            raise UserError(where, "not a mapping of keys")
        return study_from_dict(as_recorded(raw), where, check_data, allow_large_grid=True,  # accepted when it started
                               expand=expand)
    except UnicodeDecodeError as e:
        raise UserError(where, f"the run's study file is damaged (not UTF-8 text: {e.reason} at byte {e.start})",
                        fix) from None
    except OSError as e:
        raise UserError(where, f"the run's study file cannot be read ({e.strerror or e})", fix) from None
    except UserError as e:
        if e.reason.startswith("data.root"):  # the data is elsewhere on this machine: not damage
            raise
        raise UserError(e.where, f"the run's study file is damaged ({e.reason})", fix) from None


def check_writable(run: RunDir) -> None:
    """Fail before Ray starts if the run directory cannot be written (permissions, full disk)."""
    try:
        run.makedirs()
        run.write_atomic(b"ok\n", ".write_test")
        run.delete(".write_test")
    except OSError as e:
        raise RunError(run.location, f"the storage directory is not writable ({e.strerror or e})",
                       "choose another --storage, or free space / fix permissions") from None


def shared_differences(old: Study, new: Study) -> list[str]:
    """Dotted keys of shared settings that differ (the grid axes may differ: that is 'extend')."""
    diffs = []

    def walk(a, b, prefix):
        if isinstance(a, dict):
            for key in a:
                if prefix == "data" and key == "label_noise":
                    continue
                walk(a[key], b.get(key), f"{prefix}.{key}")
        elif a != b:
            diffs.append(f"{prefix}: {a!r} → {b!r}")

    old_d, new_d = old.to_dict(), new.to_dict()
    for section in SHARED_SECTIONS:
        walk(old_d[section], new_d[section], section)
    if old.search.kind != new.search.kind:
        diffs.append(f"search.kind: {old.search.kind} → {new.search.kind}")
    if old.confirm is not None and new.confirm is not None and old.confirm.vary_split != new.confirm.vary_split:
        diffs.append(f"confirm.vary_split: {old.confirm.vary_split} → {new.confirm.vary_split}")
    return diffs


def prepare(run: RunDir, study: Study) -> None:
    """Record the study in the run directory, refusing one whose shared settings changed."""
    if run.exists(STUDY):
        old = recorded_study(run)
        diffs = shared_differences(old, study)
        if diffs:
            raise UserError(run.location, "this run directory holds study "
                            f"{old.name!r} with other shared settings: " + "; ".join(diffs[:6]),
                            "results would not be comparable: give the study a new `name`, or use "
                            "another --storage (a grown grid of lr/seeds/λ is fine and runs only the new trials)")
    run.write_atomic(safe_yaml.dump(study.to_dict()).encode(), STUDY)


def as_recorded(raw: dict) -> dict:
    """A study recorded by an earlier version, with the values it ran with where a default has changed since
    (read with today's defaults, it would silently run something else on resume): global pruning, and the
    rescale arm without decay on the other weights at unit norm."""
    raw = {**raw}
    evaluation = raw.get("eval")
    pruning = evaluation.get("pruning") if isinstance(evaluation, dict) else None
    if isinstance(pruning, dict) and "scope" not in pruning:
        raw["eval"] = {**evaluation, "pruning": {**pruning, "scope": "global"}}
    methods = raw.get("methods")
    if isinstance(methods, dict):
        raw["methods"] = {name: ({"lambda": [0.0], "target": ["unit"], **arm}
                                 if isinstance(arm, dict) and arm.get("kind") == "rescale" and "lambda" not in arm
                                 else arm) for name, arm in methods.items()}
    return raw


# study keys whose values send something out of the run directory: destinations, not what was run
SIDE_EFFECT_KEYS = ("tracking.", "search.storage", "data.root", "data.download")
EXAMPLES = {"tracking.": "tracking.mlflow.uri=https://my.server", "eval.": "eval.autoattack.enabled=true"}


def continued(location: str, *, trust: bool = False, sets: list[str] | tuple[str, ...] = (),
              allowed: tuple[str, ...] = SIDE_EFFECT_KEYS) -> tuple[RunDir, Study, list[str]]:
    """A run directory to run more of (`resume`, `confirm`, `evaluate`): its recorded study, without what
    would send anything elsewhere — MLflow and W&B destinations, an Optuna journal outside the run directory,
    dataset downloads — unless `trust` (the user checked the run directory's study) or the invocation gives
    them again (`sets`, only keys under `allowed`). Returns (run, study, what was left out, in words).
    A run directory may come from anyone; the trackers' credentials go wherever their URI points."""
    run, study = open_run(location, check_data=False)
    for item in sets:
        key = item.split("=", 1)[0].strip()
        if not key.startswith(allowed):
            example = EXAMPLES.get(allowed[0], f"{allowed[0]}...")
            raise UserError(f"--set {item}", f"this command takes only {', '.join(k.rstrip('.') for k in allowed)}"
                            " from the command line", f"e.g. --set {example}; the rest of the study is the run "
                            "directory's")
    raw, dropped = (study.to_dict(), []) if trust else without_side_effects(run, study)
    study = study_from_dict(apply_overrides(raw, sets), f"{run.uri(STUDY)}{' with --set' if sets else ''}")
    return run, study, dropped


def without_side_effects(run: RunDir, study: Study) -> tuple[dict, list[str]]:
    raw, dropped = study.to_dict(), []
    t = study.tracking
    if t.mlflow:
        dropped.append(f"tracking.mlflow (uri {redacted(t.mlflow.uri)})")
    if t.wandb:
        dropped.append(f"tracking.wandb (project {t.wandb.project})")
    raw["tracking"] = {**raw["tracking"], "mlflow": None, "wandb": None}
    storage = study.search.storage
    if storage and Path(storage).expanduser().is_absolute() and not run.contains(Path(storage).expanduser()):
        dropped.append(f"search.storage ({storage}, outside the run directory)")
        raw["search"] = {**raw["search"], "storage": None}
    if study.data.download:
        dropped.append(f"data.download (into {study.data.root})")
        raw["data"] = {**raw["data"], "download": False}
    return raw, dropped
