"""Read a run directory's result files and check them against the schema.

Every problem a person can fix (a missing file, a missing column, an unknown status, an arm
without its hyperparameter) is raised as `ResultsError` naming the file, and the column or
trial, so the message alone says where to look.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import schema

EPOCHS_FILE = "epochs.parquet"
TRIALS_FILE = "trials.parquet"
EVALUATIONS_FILE = "evaluations.parquet"
MANIFEST_FILE = "manifest.json"

# Columns added to the schema after the first sweeps were run: an older file without them is
# still readable, and the column is filled with NaN (label noise with 0.0, i.e. clean labels).
OPTIONAL_COLUMNS = frozenset(
    {"label_noise", "noisy_fit_acc", "label_noise_actual", "error", "autoattack_best", "autoattack_last"}
)


class ResultsError(ValueError):
    """A result file is missing or does not match the schema; the message says where."""


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

    @property
    def trials_planned(self) -> int | None:
        planned = (self.manifest or {}).get("trials_planned")
        return int(planned) if planned is not None else None

    @property
    def resolved_study(self) -> dict[str, Any]:
        return dict((self.manifest or {}).get("resolved_study") or {})


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
    frame = pd.read_parquet(path)
    missing = [name for name in columns if name not in frame.columns and name not in OPTIONAL_COLUMNS]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {', '.join(map(repr, missing))} (see analysis/schema.py)")
    try:
        frame = schema.conform(frame, columns)
    except (ValueError, TypeError) as err:
        raise ResultsError(f"{path}: a column has the wrong type: {err}") from err
    frame["label_noise"] = frame["label_noise"].fillna(0.0)
    check_values(frame, path)
    return frame


def check_values(frame: pd.DataFrame, path: Path) -> None:
    """Reject rows the analysis cannot place: unknown status or kind, arms without λ, no lr."""
    checks = [("kind", schema.KINDS)] + ([("status", schema.STATUSES)] if "status" in frame else [])
    for column, allowed in checks:
        bad = frame.loc[~frame[column].isin(allowed), column]
        if len(bad):
            raise ResultsError(f"{path}: column {column!r} has {bad.iloc[0]!r}; allowed: {', '.join(allowed)}")
    hyper = frame["lam"].where(frame["kind"] == "fixed", frame["lambda_awd"])
    for column, values in (("lam or lambda_awd", hyper), ("lr", frame["lr"])):
        bad = frame.loc[values.isna(), "trial_id"]
        if len(bad):
            raise ResultsError(f"{path}: trial {bad.iloc[0]!r} has no {column} (NaN)")
    kinds = frame.groupby("method")["kind"].nunique()
    if (kinds > 1).any():
        raise ResultsError(f"{path}: arm {kinds[kinds > 1].index[0]!r} is both fixed and adaptive")


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest as a dict, or None when the file is absent (then nothing is planned)."""
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise ResultsError(f"{path}: expected a JSON object at the top level")
    return manifest
