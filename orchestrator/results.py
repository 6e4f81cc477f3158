"""Trial records → tidy results: `epochs.parquet`, `trials.parquet`, `evaluations.parquet`.

When a trial ends (ok, diverged, failed or stopped) the driver turns its record
(`orchestrator.records`) into three parquet parts, `parts/<table>/<trial_id>.parquet`: work in
proportion to that trial's epochs, done once per trial, so a sweep's export cost grows
linearly with its size. `consolidate` concatenates the parts into the three result files,
atomically, at the end of every sweep and before every report. A trial's summary (best
epoch, last epoch, gap, score) comes from `trials.selection`, the rule the training loop and
the analysis use too. Everything here works without Ray.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.schema import CONFIG_COLUMNS, EPOCH_COLUMNS, EVAL_COLUMNS, TRIAL_COLUMNS, conform
from orchestrator import records
from orchestrator.storage import RunDir
from trials import selection
from trials.config import TrialConfig

TABLES = {"epochs": EPOCH_COLUMNS, "trials": TRIAL_COLUMNS, "evaluations": EVAL_COLUMNS}
PARTS = "parts"
FINISHED = ("ok", "diverged")  # ended on their own
ENDED = (*FINISHED, "stopped")  # stopped: cut short by the tuning stage's scheduler (ASHA)


# ----------------------------------------------------------------------------- one trial


def trial_state(run: RunDir, trial_id: str) -> dict[str, Any]:
    """What the record of one trial says: status, config, rows, evaluations and its summary inputs."""
    result = records.read_result(run, trial_id)
    evaluation = records.read_evaluation(run, trial_id)
    if result is not None:
        evals = evaluation["rows"] if evaluation else result["evaluations"]
        return {**result, "error": "", "evaluations": evals}
    error = records.read_error(run, trial_id)
    stopped = records.is_stopped(run, trial_id)
    rows = records.read_epoch_rows(run, trial_id)
    status = "stopped" if stopped else "failed" if error is not None else "running"
    config = (error or {}).get("config") or (records.read_json(run, records.TRIALS, trial_id, records.STOPPED)
                                             or {}).get("config")
    return {"trial_id": trial_id, "status": status, "rows": rows, "evaluations": [], "config": config,
            "error": (error or {}).get("error", "") if status == "failed" else "",
            "label_noise_actual": math.nan, "train_seconds": sum(r.get("epoch_seconds", 0.0) for r in rows)}


def key_columns(state: dict) -> dict[str, Any]:
    """The configuration columns of a trial: from its first row, else from its config."""
    if state["rows"]:
        return {k: state["rows"][0].get(k) for k in CONFIG_COLUMNS}
    if state.get("config"):
        return TrialConfig.from_dict(state["config"]).key_columns()
    raise records.DamagedRecord(f"{records.TRIALS}/{state['trial_id']}: no rows and no configuration")


def trial_row(state: dict) -> dict[str, Any]:
    """The trials.parquet row of one trial."""
    rows, status = state["rows"], state["status"]
    keys = {k: v for k, v in key_columns(state).items() if k in TRIAL_COLUMNS}
    summary = selection.summarize(rows)
    config = state.get("config") or {}
    out = keys | summary | {
        "status": status, "error": state.get("error", ""),
        "epochs": int((config.get("train") or {}).get("epochs", len(rows))), "epochs_done": len(rows),
        "score": selection.score(status, summary["best_val_robust_acc"]),
        "label_noise_actual": state.get("label_noise_actual", math.nan),
        "train_seconds": state.get("train_seconds", math.nan)}
    for r in state["evaluations"]:
        if r["sparsity"] == 0.0 and r["checkpoint"] in ("best", "last"):
            out[f"autoattack_{r['checkpoint']}"] = r["autoattack_acc"]
    return out


def trial_frames(state: dict) -> dict[str, pd.DataFrame]:
    """The three tables' rows of one trial, conformed to the schema."""
    rows = [dict(r, status=state["status"]) for r in state["rows"]]
    return {"epochs": _frame(rows, EPOCH_COLUMNS), "trials": _frame([trial_row(state)], TRIAL_COLUMNS),
            "evaluations": _frame(state["evaluations"], EVAL_COLUMNS)}


def _frame(rows: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    return conform(pd.DataFrame(rows, columns=list(columns)), columns)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def export_trial(run: RunDir, trial_id: str) -> str:
    """Write the trial's parts (it has ended, or failed); returns its status."""
    state = trial_state(run, trial_id)
    for table, frame in trial_frames(state).items():
        run.write_atomic(parquet_bytes(frame), PARTS, table, f"{trial_id}.parquet")
    return state["status"]


# ------------------------------------------------------------------------------ the run


def consolidate(run: RunDir) -> dict[str, int]:
    """Concatenate every trial's parts into the three result files; returns trial counts by status.

    Trials that ended but have no part yet (the driver was killed between the two) are exported
    first, so the files always hold every ended trial.
    """
    ended = set(part_ids(run, "trials"))
    for trial_id in records.trial_ids(run):
        if trial_id not in ended and trial_state(run, trial_id)["status"] != "running":
            export_trial(run, trial_id)
    frames = {}
    for table, columns in TABLES.items():
        parts = [_read_part(run, table, tid) for tid in part_ids(run, table)]
        frames[table] = conform(pd.concat(parts, ignore_index=True), columns) if parts else _frame([], columns)
    for table in ("epochs", "evaluations", "trials"):  # trials last: readers key on it
        run.write_atomic(parquet_bytes(frames[table]), f"{table}.parquet")
    return frames["trials"]["status"].value_counts().to_dict()


def part_ids(run: RunDir, table: str) -> list[str]:
    return [name.removesuffix(".parquet") for name in run.listdir(PARTS, table)
            if name.endswith(".parquet") and records.valid_trial_id(name.removesuffix(".parquet"))]


def _read_part(run: RunDir, table: str, trial_id: str) -> pd.DataFrame:
    try:
        return pq.read_table(pa.BufferReader(run.read_bytes(PARTS, table, f"{trial_id}.parquet"))).to_pandas()
    except (OSError, pa.ArrowException) as e:
        # a damaged part is rebuilt from the trial's record, the source of truth
        records.log.warning("part %s/%s/%s.parquet is unreadable (%s): rebuilt", PARTS, table, trial_id, e)
        return trial_frames(trial_state(run, trial_id))[table]


def trial_states(run: RunDir) -> dict[str, dict]:
    """Every trial with a record → its state (for `status`: running trials included)."""
    return {tid: trial_state(run, tid) for tid in records.trial_ids(run)}


def finished_trials(run: RunDir) -> set[str]:
    """Trials that need no more work: ended on their own, or stopped by the tuning scheduler."""
    done = set()
    for tid in records.trial_ids(run):
        if records.is_stopped(run, tid) or records.read_result(run, tid) is not None:
            done.add(tid)
    return done


def read_manifest(run: RunDir) -> dict | None:
    try:
        manifest = json.loads(run.read_text("manifest.json"))
    except (OSError, FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def write_manifest(run: RunDir, manifest: dict) -> None:
    run.write_atomic(json.dumps(manifest, indent=2, default=str).encode(), "manifest.json")
