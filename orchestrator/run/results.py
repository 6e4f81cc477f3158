"""Trial records → tidy results: `epochs.parquet`, `trials.parquet`, `evaluations.parquet`.

When a trial ends (ok, diverged, failed or stopped), its record (`orchestrator.run.records`) is turned
into three parts, `parts/<table>/<trial_id>.arrow` — by the trial's worker when it finished, by the
driver otherwise: work in proportion to that trial's epochs, done once per trial, so a sweep's
export cost grows linearly with its size. Parts are Arrow IPC files (at a trial's few rows about a
tenth of parquet's cost to write and read); parts that earlier versions wrote as
`<trial_id>.parquet` are still read. `consolidate` concatenates the parts into the three result
files, atomically, at the end of every sweep and before every report. A trial's summary (best
epoch, last epoch, gap, score) comes from `trials.selection`, the rule the training loop and
the analysis use too. Everything here works without Ray.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.run import records
from orchestrator.run.layout import LEGACY_PART, MAX_PART, PART, PARTS
from orchestrator.run.storage import RunDir
from trials import selection
from trials.config import TrialConfig
from trials.schema import CONFIG_COLUMNS, EPOCH_COLUMNS, EVAL_COLUMNS, TRIAL_COLUMNS, conform

if TYPE_CHECKING:  # pandas is imported where the result files are written: `status` never needs it
    import pandas as pd

TABLES = {"epochs": EPOCH_COLUMNS, "trials": TRIAL_COLUMNS, "evaluations": EVAL_COLUMNS}
FINISHED = ("ok", "diverged")  # ended on their own
ENDED = (*FINISHED, "stopped")  # stopped: cut short by the tuning stage's scheduler (ASHA)


# ----------------------------------------------------------------------------- one trial


def trial_state(run: RunDir, trial_id: str) -> dict[str, Any]:
    """What the record of one trial says: status, config, rows, evaluations and its summary inputs.
    DamagedRecord, naming the file, when a file of the record cannot be used."""
    return _checked_state(run, trial_id)[0]


def trial_record(run: RunDir, trial_id: str) -> dict[str, Any]:
    """What the record of one trial says, as `trial_state`, without checking that its values fit the result
    tables (cheaper; for readers that only summarise it). DamagedRecord when a file cannot be used."""
    try:
        return _trial_state(run, trial_id)
    except records.DamagedRecord:
        raise
    except Exception as e:  # the files are anyone's
        raise records.DamagedRecord(f"{records.TRIALS}/{trial_id}: its record cannot be used "
                                    f"({type(e).__name__}: {str(e)[:160]})") from None


def _checked_state(run: RunDir, trial_id: str) -> tuple[dict[str, Any], dict[str, pa.Table]]:
    """The trial's state and its rows of the three tables (which also check that every value fits them)."""
    state = trial_record(run, trial_id)
    try:
        return state, trial_tables(state)
    except Exception as e:  # any content that does not fit is damage, not a crash
        raise records.DamagedRecord(f"{records.TRIALS}/{trial_id}: its record cannot be used "
                                    f"({type(e).__name__}: {str(e)[:160]})") from None


def _trial_state(run: RunDir, trial_id: str) -> dict[str, Any]:
    result = records.read_result(run, trial_id)
    evaluation = records.read_evaluation(run, trial_id)
    if result is not None:
        evals = evaluation["rows"] if evaluation else result["evaluations"]
        return {**result, "error": "", "evaluations": evals}
    error = records.read_error(run, trial_id)
    stopped = records.read_json(run, records.TRIALS, trial_id, records.STOPPED) if records.is_stopped(
        run, trial_id) else None
    if stopped is not None and not (isinstance(stopped, dict) and isinstance(stopped.get("config"), dict)):
        raise records.DamagedRecord(f"{records.TRIALS}/{trial_id}/{records.STOPPED}: not a stop record")
    rows = records.read_epoch_rows(run, trial_id)
    status = "stopped" if stopped is not None else "failed" if error is not None else "running"
    config = (error or {}).get("config") or (stopped or {}).get("config")
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
        if r["sparsity"] == 0.0 and r["checkpoint"] in records.CHECKPOINTS:
            out[f"autoattack_{r['checkpoint']}"] = r["autoattack_acc"]
    return out


def trial_tables(state: dict) -> dict[str, pa.Table]:
    """The three tables' rows of one trial, as Arrow tables of the schema's types. Building them is the
    check that every value fits its column (a value that does not raises TypeError, naming the column)."""
    rows = [dict(r, status=state["status"]) for r in state["rows"]]
    return {"epochs": arrow_table(rows, "epochs"), "trials": arrow_table([trial_row(state)], "trials"),
            "evaluations": arrow_table(state["evaluations"], "evaluations")}


# the Arrow type of each schema dtype ("Int64" is pandas' nullable integer: int64 with nulls)
ARROW_TYPES = {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64(), "Int64": pa.int64()}
SCHEMAS = {table: pa.schema([(name, ARROW_TYPES[dtype]) for name, dtype in columns.items()])
           for table, columns in TABLES.items()}


def arrow_table(rows: list[dict], table: str) -> pa.Table:
    """`rows` (dicts; keys outside the table are ignored) as a table of the schema. Built column by column
    from Python values: a trial's few rows cost microseconds here, where a pandas frame costs milliseconds."""
    columns = TABLES[table]
    arrays = [pa.array([_cell(row.get(name), dtype, name) for row in rows], ARROW_TYPES[dtype])
              for name, dtype in columns.items()]
    return pa.Table.from_arrays(arrays, schema=SCHEMAS[table])


def _cell(value: Any, dtype: str, column: str) -> Any:
    """One value converted as `trials.schema.conform` would: a missing float is NaN, missing text or a
    missing nullable integer is null, an integral float is an integer; anything else that does not fit
    (text for a number, a number for text, a missing integer) is a TypeError naming the column."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if dtype == "float64":
        if value is None:
            return math.nan
        if isinstance(value, int | float):
            return float(value)
    elif dtype == "string":
        if missing or isinstance(value, str):
            return None if missing else value
    elif missing and dtype == "Int64":
        return None
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"column {column!r}: {str(value)[:40]!r} is not a {dtype} value")


def part_bytes(table: pa.Table) -> bytes:
    """A part: an Arrow IPC file (uncompressed; a trial's few rows)."""
    buf = io.BytesIO()
    with pa.ipc.new_file(buf, table.schema) as writer:
        writer.write_table(table)
    return buf.getvalue()


def scan(run: RunDir, tables: bool = True) -> tuple[dict[str, dict], dict[str, str]]:
    """Every trial with a record → its state, and every trial whose record is damaged → why.
    `tables=False` skips the check that the record's values fit the result tables (`trial_record`)."""
    read = trial_state if tables else trial_record
    states, damaged = {}, {}
    for tid in records.trial_ids(run):
        try:
            states[tid] = read(run, tid)
        except records.DamagedRecord as e:
            damaged[tid] = str(e)
    return states, damaged


def set_aside_damaged(run: RunDir) -> dict[str, str]:
    """Move the record of every damaged trial to `damaged/<trial_id>/` (kept for a look, never read)
    and drop its parts, so that the trial runs again from the start; returns trial → why."""
    _, damaged = scan(run)
    for tid in damaged:
        target = records.free_name(run, records.DAMAGED, tid)
        for name in run.listdir(records.TRIALS, tid):
            run.move((records.TRIALS, tid, name), (records.DAMAGED, target, name))
        run.delete_dir(records.TRIALS, tid)
        for table in TABLES:
            for suffix in (PART, LEGACY_PART):
                run.delete(PARTS, table, tid + suffix)
    return damaged


def export_trial(run: RunDir, trial_id: str) -> str:
    """Write the trial's parts (it has ended, or failed); returns its status."""
    state, tables = _checked_state(run, trial_id)  # the tables are built once: they are the check too
    for table, rows in tables.items():
        # no fsync: a part left empty by a crash of the machine is rebuilt from the record (`_read_part`)
        run.write_atomic(part_bytes(rows), PARTS, table, trial_id + PART, durable=False)
    return state["status"]


# ------------------------------------------------------------------------------ the run


def consolidate(run: RunDir) -> dict[str, int]:
    """Concatenate every trial's parts into the three result files; returns trial counts by status.

    Trials that ended but have no part yet (the driver was killed between the two) are exported
    first, so the files always hold every ended trial.
    """
    ended = set(part_ids(run, "trials"))
    # a part is the checked product of its record (export_trial), so only records without one are checked
    states, damaged = scan(run, tables=False)
    for trial_id, state in states.items():
        if trial_id not in ended and state["status"] != "running":
            try:
                export_trial(run, trial_id)
            except records.DamagedRecord as e:
                damaged[trial_id] = str(e)
    for why in damaged.values():  # left out until `decaylab resume` redoes them
        records.log.warning("%s: left out of the result files", why)
    frames = {}
    for table, columns in TABLES.items():  # Arrow tables concatenated, then one conversion to pandas
        parts = [part for tid in part_ids(run, table) if tid not in damaged
                 and (part := _read_part(run, table, tid)) is not None]
        joined = pa.concat_tables(parts) if parts else SCHEMAS[table].empty_table()
        frames[table] = conform(joined.to_pandas(), columns)
    for table in ("epochs", "evaluations", "trials"):  # trials last: readers key on it
        run.write_atomic(pandas_parquet_bytes(frames[table]), f"{table}.parquet")
    return frames["trials"]["status"].value_counts().to_dict()


def pandas_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """A result file: written through pandas, so that its readers get the schema's pandas dtypes back."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def part_ids(run: RunDir, table: str) -> list[str]:
    """The trials with a part of `table` (in either format)."""
    ids = {name.removesuffix(suffix) for name in run.listdir(PARTS, table) for suffix in (PART, LEGACY_PART)
           if name.endswith(suffix)}
    return sorted(tid for tid in ids if records.valid_trial_id(tid))


def _read_part_file(run: RunDir, table: str, trial_id: str) -> tuple[str, pa.Table]:
    """(file name, table) of a trial's part: the Arrow one, else one an earlier version wrote in parquet."""
    name = trial_id + PART
    try:
        data = run.read_bytes(PARTS, table, name, cap=MAX_PART)
    except FileNotFoundError:
        pass
    else:
        return name, pa.ipc.open_file(pa.BufferReader(data)).read_all()
    name = trial_id + LEGACY_PART
    # ParquetFile.read, not read_table (the dataset API): a third of the time on files this small
    return name, pq.ParquetFile(pa.BufferReader(run.read_bytes(PARTS, table, name, cap=MAX_PART))).read(
        use_threads=False)


def _read_part(run: RunDir, table: str, trial_id: str) -> pa.Table | None:
    """A trial's part, or the same rows rebuilt from its record (the source of truth) when the part is
    unreadable, not of the schema or not this trial's; None when neither is usable."""
    name = trial_id + PART
    try:
        name, part = _read_part_file(run, table, trial_id)
        if not part.schema.equals(SCHEMAS[table]):  # written by an earlier version, or not a part at all
            part = part.select(list(TABLES[table])).cast(SCHEMAS[table])  # also drops any other metadata
        if len(part) and part.column("trial_id").unique().to_pylist() != [trial_id]:
            raise ValueError(f"it holds rows of other trials than {trial_id}")
        return part
    except Exception as e:  # unreadable, truncated, of another schema or foreign: rebuild it
        records.log.warning("part %s/%s/%s is unusable (%s): rebuilt", PARTS, table, name, str(e)[:160])
    try:
        return trial_tables(trial_state(run, trial_id))[table]
    except records.DamagedRecord as e:
        records.log.warning("%s: left out of the result files", e)
        return None


def trial_states(run: RunDir) -> dict[str, dict]:
    """Every trial with a usable record → its state (running trials included; damaged ones left out)."""
    return scan(run)[0]


def finished_trials(run: RunDir) -> set[str]:
    """Trials that need no more work: ended on their own, or stopped by the tuning scheduler."""
    return {tid for tid, state in trial_states(run).items() if state["status"] in ENDED}
