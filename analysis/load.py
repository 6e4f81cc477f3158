"""Read a run directory's result files and check them against the schema.

Every problem a person can fix (a missing or damaged file, a missing column, a column of the
wrong type, an unknown status, a manifest field of the wrong type) is raised as `ResultsError`
naming the file, and the column, field or trial, so the message alone says where to look.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from trials import schema

EPOCHS_FILE = "epochs.parquet"
TRIALS_FILE = "trials.parquet"
EVALUATIONS_FILE = "evaluations.parquet"
MANIFEST_FILE = "manifest.json"

# Columns added to the schema after the first sweeps were run: an older file without them is
# still readable, and the column is filled with NaN (label noise with 0.0, i.e. clean labels).
# `stage` is missing in runs made before the confirmation stage: those trials are all tuning trials.
OPTIONAL_COLUMNS = frozenset(
    {"label_noise", "noisy_fit_acc", "label_noise_actual", "error", "autoattack_best", "autoattack_last"}
    | {"prescale_norm", "best_val_clean_acc", "stage", *schema.HYPERPARAMETER_COLUMNS}
    | {"correct_clean", "correct_pgd", "correct_autoattack"}
)
STAGES = ("tune", "confirm")  # selection runs on tune; confirm retrains the selected configurations
# A study name becomes a directory name (reports/<study>): one path component, nothing else.
STUDY_NAME = re.compile(r"[A-Za-z0-9._-]+")

# Manifest fields the report reads, and the JSON types each may have (None: null allowed).
MANIFEST_FIELDS: dict[tuple[str, ...], tuple[type, ...]] = {
    ("study",): (str,),
    ("trials_planned",): (int, type(None)),
    ("git_commit",): (str, type(None)),
    ("started",): (str, type(None)),
    ("finished",): (str, type(None)),
    ("resolved_study",): (dict, type(None)),
    ("resolved_study", "description"): (str, type(None)),
    ("resolved_study", "methods"): (dict,),
    ("resolved_study", "data"): (dict,),
    ("resolved_study", "data", "val_label_noise"): (str,),
    ("resolved_study", "train"): (dict,),
    ("resolved_study", "train", "epochs"): (int,),
    ("resolved_study", "train", "schedule"): (str,),
    ("resolved_study", "attack"): (dict,),
    ("resolved_study", "analysis"): (dict, type(None)),
    ("resolved_study", "analysis", "reference"): (str, type(None)),
}


class ResultsError(ValueError):
    """A result file is missing, damaged or does not match the schema; the message says where."""


@dataclass(frozen=True)
class Run:
    """The contents of one run directory, conformed to the schema."""

    run_dir: Path
    epochs: pd.DataFrame
    trials: pd.DataFrame
    evaluations: pd.DataFrame | None
    manifest: dict[str, Any] | None

    @property
    def study(self) -> str:
        """The study's name: from the manifest, else from the rows, else the directory name."""
        if self.manifest and self.manifest.get("study"):
            return str(self.manifest["study"])
        for frame in (self.trials, self.epochs):
            if len(frame) and pd.notna(frame["study"].iloc[0]):
                return str(frame["study"].iloc[0])
        return self.run_dir.name

    def safe_study_name(self) -> str:
        """The study name, checked to be usable as one directory name (reports/<study>)."""
        name = self.study
        if not STUDY_NAME.fullmatch(name) or ".." in name or name == ".":
            source = self.run_dir / MANIFEST_FILE if self.manifest else self.run_dir
            raise ResultsError(
                f"{source}: study name {name!r} cannot name a report directory (letters, digits, '.', '_', '-' "
                "only; no '/', no '..'); pass --report-dir DIR to choose where the report goes"
            )
        return name

    @property
    def trials_planned(self) -> int | None:
        planned = (self.manifest or {}).get("trials_planned")
        return int(planned) if planned is not None else None

    @property
    def resolved_study(self) -> dict[str, Any]:
        return dict((self.manifest or {}).get("resolved_study") or {})

    def study_field(self, *path: str, default: Any = None) -> Any:
        """A field of the resolved study, e.g. `study_field("data", "val_label_noise")`."""
        present, node = _lookup(self.resolved_study, path)
        return node if present and node is not None else default

    @property
    def method_order(self) -> list[str]:
        """The arms in study order (the manifest's `methods`), then any others seen in the rows."""
        listed = list(self.study_field("methods", default={}))
        seen = pd.concat([self.trials["method"], self.epochs["method"]]).dropna().unique().tolist()
        return listed + sorted(str(m) for m in seen if m not in listed)


SNAPSHOT_ATTEMPTS = 20


def load_run(run_dir: str | Path) -> Run:
    """Read `run_dir`; `evaluations.parquet` and `manifest.json` may be absent.

    A running sweep replaces the files atomically (temp file + rename), one after the other, so
    each file is always whole but two reads could straddle an export. The files' identities
    (inode, size, mtime) are compared before and after the read, and the read is repeated until
    no file was replaced meanwhile: the frames returned are always from one export.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir}: not a directory; pass the run directory <storage>/<study name>")
    paths = [run_dir / name for name in (EPOCHS_FILE, TRIALS_FILE, EVALUATIONS_FILE, MANIFEST_FILE)]
    for _ in range(SNAPSHOT_ATTEMPTS):
        before = _identities(paths)
        run = _read_run(run_dir)
        if _identities(paths) == before:
            return run
        time.sleep(0.05)  # an export is under way: let it land
    raise ResultsError(f"{run_dir}: the result files kept changing during {SNAPSHOT_ATTEMPTS} reads; try again")


def _identities(paths: list[Path]) -> list[tuple[int, int, int] | None]:
    out = []
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return out


def _read_run(run_dir: Path) -> Run:
    epochs = read_table(run_dir / EPOCHS_FILE, schema.EPOCH_COLUMNS)
    trials = read_table(run_dir / TRIALS_FILE, schema.TRIAL_COLUMNS)
    evals_path = run_dir / EVALUATIONS_FILE
    evaluations = read_table(evals_path, schema.EVAL_COLUMNS) if evals_path.exists() else None
    return Run(run_dir, epochs, trials, evaluations, read_manifest(run_dir / MANIFEST_FILE))


def read_table(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    """Read one parquet file, check its columns and values, and conform it to `columns`."""
    if not path.exists():
        raise ResultsError(f"{path}: file not found; is this a run directory? (`decaylab status` lists one)")
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several unrelated types for a damaged file
        raise ResultsError(f"{path}: not a readable parquet file ({type(err).__name__}: {err})") from None
    missing = [name for name in columns if name not in frame.columns and name not in OPTIONAL_COLUMNS]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {', '.join(map(repr, missing))} (see trials/schema.py)")
    try:
        frame = schema.conform(frame, columns)
    except (ValueError, TypeError, KeyError) as err:
        raise ResultsError(f"{path}: a column has the wrong type: {err}") from None
    frame["label_noise"] = frame["label_noise"].fillna(0.0)
    frame["stage"] = frame["stage"].fillna("tune")
    check_values(frame, path)
    return frame


def check_values(frame: pd.DataFrame, path: Path) -> None:
    """Reject rows the analysis cannot place: unknown status, kind or stage, no setting label, no lr."""
    checks = [("kind", schema.KINDS), ("stage", STAGES)]
    checks += [("status", schema.STATUSES)] if "status" in frame else []
    for column, allowed in checks:
        bad = frame.loc[~frame[column].isin(allowed), column]
        if len(bad):
            raise ResultsError(f"{path}: column {column!r} has {bad.iloc[0]!r}; allowed: {', '.join(allowed)}")
    for column in ("method", "setting", "lr"):
        bad = frame.loc[frame[column].isna(), "trial_id"]
        if len(bad):
            raise ResultsError(f"{path}: trial {bad.iloc[0]!r} has no {column}")
    kinds = frame.groupby("method")["kind"].nunique()
    if (kinds > 1).any():
        raise ResultsError(f"{path}: arm {kinds[kinds > 1].index[0]!r} has rows of two kinds")


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest as a dict, or None when the file is absent (then nothing is planned)."""
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise ResultsError(f"{path}: expected a JSON object at the top level")
    check_manifest(manifest, path)
    return manifest


def check_manifest(manifest: dict[str, Any], path: Path) -> None:
    """Each field the report reads, when present, has a JSON type it can use."""
    for keys, types in MANIFEST_FIELDS.items():
        present, node = _lookup(manifest, keys)
        if present and (not isinstance(node, types) or isinstance(node, bool)):
            wanted = " or ".join("null" if t is type(None) else _JSON_NAMES[t] for t in types)
            raise ResultsError(f"{path}: field {'.'.join(keys)} is {json.dumps(node)}; expected {wanted}")
    for name, arm in (manifest.get("resolved_study") or {}).get("methods", {}).items():
        if not isinstance(arm, dict) or not isinstance(arm.get("kind"), str):
            raise ResultsError(f"{path}: field resolved_study.methods.{name} needs a 'kind' (text)")


def _lookup(manifest: dict[str, Any], keys: tuple[str, ...]) -> tuple[bool, Any]:
    """(whether the nested field exists, its value)."""
    node: Any = manifest
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


_JSON_NAMES = {str: "text", int: "an integer", dict: "an object", float: "a number", list: "a list"}
