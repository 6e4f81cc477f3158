"""decaylab's own record of each trial, under `RUN_DIR/trials/<trial_id>/` — the source of truth.

    epoch-0001.json …      one row per epoch, written once by the trial before its checkpoint
    checkpoint-0007.pt     the trial's state (`weights_only` loadable: tensors and plain data, never
                           code); the two newest are kept while it runs, the final one afterwards
    result.json            written when the trial ends on its own (ok / diverged): every row, the
                           final evaluations and the summary; the epoch files are then removed
    error.json             a failed trial's last error (the driver writes it)
    stopped.json           cut short by the tuning stage's scheduler (ASHA)
    evaluation.json        rows of `decaylab evaluate`, which replace the trial's own final evaluations

Every write is atomic (temp file + rename, or one PUT on object stores), every size is
independent of the other trials, and a checkpoint's size does not grow with the epochs. A
trial resumes from its newest readable checkpoint, on a Ray retry as on `decaylab resume`;
Ray's own checkpoints and pickles are never read. Names read back from disk are validated
before they are used in a path.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from orchestrator.errors import RunError
from orchestrator.run.layout import (
    CHECKPOINT_FILE,
    DAMAGED,
    EPOCH_FILE,
    ERROR,
    EVALUATION,
    MAX_CHECKPOINT,
    MAX_RESULT,
    RESULT,
    STOPPED,
    TRIALS,
    checkpoint_file,
    epoch_file,
)
from orchestrator.run.storage import RunDir
from orchestrator.terminal import VisibleLog

__all__ = ["DAMAGED", "TRIALS"]  # read by the results and the status
CHECKPOINTS = ("best", "last", "ema")  # the weights a final evaluation is made of
KEEP_CHECKPOINTS = 2
MAX_JSON_BYTES = MAX_RESULT  # the largest JSON record decaylab reads: why it is this, see `layout.MAX_RESULT`
# a trial id: an arm name, then values and tags joined by '-' (exact floats use digits . e + -)
TRIAL_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*(-[A-Za-z0-9_.+=,]+)+")

log = logging.getLogger("decaylab.records")  # its warnings quote files: escaped before they are shown
log.addFilter(VisibleLog())
T = TypeVar("T")


class DamagedRecord(ValueError):
    """A file of a trial's record cannot be used; the message names it."""


def valid_trial_id(name: Any) -> bool:
    """A name safe to use as one path component: an arm name and '-'-joined values, no '/' or '..'."""
    return (isinstance(name, str) and len(name) <= 200 and TRIAL_ID.fullmatch(name) is not None
            and ".." not in name)


def check_trial_id(name: Any, where: str) -> str:
    if not valid_trial_id(name):
        raise DamagedRecord(f"{where}: {str(name)[:80]!r} is not a decaylab trial id")
    return name


def trial_ids(run: RunDir) -> list[str]:
    """Trials that have a record (the valid names under trials/; anything else is ignored)."""
    return [name for name in run.listdir(TRIALS) if valid_trial_id(name)]


def free_name(run: RunDir, directory: str, name: str) -> str:
    """`name`, or `name.2`, `name.3`, … : the first not yet used under `directory`."""
    taken = set(run.listdir(directory))
    return next(n for n in (name, *(f"{name}.{i}" for i in range(2, 10_000))) if n not in taken)


def _path(trial_id: str, name: str) -> tuple[str, str, str]:
    return TRIALS, check_trial_id(trial_id, "trial id"), name


# ------------------------------------------------------------------------------- rows


def write_epoch_row(run: RunDir, trial_id: str, row: dict) -> None:
    run.write_atomic(json.dumps(row).encode(), *_path(trial_id, epoch_file(row["epoch"])))


def epoch_files(run: RunDir, trial_id: str) -> dict[int, str]:
    names = run.listdir(TRIALS, check_trial_id(trial_id, "trial id"))
    return {int(m.group(1)): name for name in names if (m := EPOCH_FILE.fullmatch(name))}


def read_epoch_rows(run: RunDir, trial_id: str) -> list[dict]:
    """The epoch rows of a trial that has not ended yet (a damaged one ends the list: later epochs are
    redone from a checkpoint before it)."""
    rows = []
    for epoch, name in sorted(epoch_files(run, trial_id).items()):
        try:
            row = read_json(run, TRIALS, trial_id, name)
        except DamagedRecord as e:
            log.warning("%s", e)
            break
        if not valid_row(row, trial_id, epoch):
            log.warning("%s/%s/%s is not a row of epoch %d of this trial: ignored", TRIALS, trial_id, name, epoch)
            break
        rows.append(row)
    return rows


def valid_row(row: Any, trial_id: str, epoch: int) -> bool:
    """An epoch row as the trial wrote it: its own trial and epoch, text and numbers where `status`, the
    selection and the result tables read them (NaN is a number: an epoch without evaluation)."""
    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    return (isinstance(row, dict) and row.get("trial_id") == trial_id and row.get("epoch") == epoch
            and not isinstance(row.get("epoch"), bool) and isinstance(row.get("seed"), int)
            and all(isinstance(row.get(k), str) for k in ("method", "kind", "setting"))
            and all(number(row.get(k)) for k in ("val_robust_acc", "val_clean_acc", "test_robust_acc",
                                                 "test_clean_acc", "lr")))


def drop_rows_after(run: RunDir, trial_id: str, epoch: int) -> None:
    """Remove rows of epochs after `epoch` (left by a process that died before checkpointing them)."""
    for e, name in epoch_files(run, trial_id).items():
        if e > epoch:
            run.delete(TRIALS, trial_id, name)


# -------------------------------------------------------------------------- checkpoints


def checkpoint_files(run: RunDir, trial_id: str) -> list[tuple[int, str]]:
    """(epoch, file name) of a trial's checkpoints, newest first."""
    found = [(int(m.group(1)), name) for name in run.listdir(TRIALS, check_trial_id(trial_id, "trial id"))
             if (m := CHECKPOINT_FILE.fullmatch(name))]
    return sorted(found, reverse=True)


def write_checkpoint(run: RunDir, trial_id: str, state: dict, keep: int = KEEP_CHECKPOINTS) -> None:
    import torch  # here, not at the top: `decaylab status` reads records without torch

    buf = io.BytesIO()
    torch.save(state, buf)
    run.write_atomic(buf.getvalue(), *_path(trial_id, checkpoint_file(state["epoch"])))
    for _, name in checkpoint_files(run, trial_id)[keep:]:
        run.delete(TRIALS, trial_id, name)


def load_state_bytes(data: bytes) -> dict:
    """A checkpoint's state: checked as a zip of stored entries within the checkpoint cap, then loaded by
    torch's weights-only loader (`trials.safe_torch`)."""
    from trials.safe_torch import load_bytes

    state = load_bytes(data, MAX_CHECKPOINT)
    if not isinstance(state, dict) or not {"trial_id", "epoch", "status", "config"} <= set(state):
        raise DamagedRecord("not a decaylab checkpoint (keys missing)")
    return state


def read_checkpoint(run: RunDir, trial_id: str, epoch: int, name: str) -> dict:
    """The state in one checkpoint file of a trial (`checkpoint_files`), checked to be that trial's at that
    epoch; reads only. `DamagedRecord` (or the loader's error) when it is not."""
    state = load_state_bytes(run.read_bytes(TRIALS, trial_id, name, cap=MAX_CHECKPOINT))
    if state["trial_id"] != trial_id or state["epoch"] != epoch:
        raise DamagedRecord(f"it holds trial {str(state['trial_id'])[:80]!r} epoch {state['epoch']!r}")
    return state


def unusable(trial_id: str, name: str, error: Exception) -> str:
    return f"{TRIALS}/{trial_id}/{name} is unusable ({type(error).__name__}: {str(error)[:120]})"


def load_checkpoint(run: RunDir, trial_id: str, use: Callable[[dict | None], T] = lambda state: state
                    ) -> tuple[T, str]:
    """`use(state)` of the newest checkpoint of a trial that loads and that `use` accepts (it raises
    for a state it cannot use: wrong keys or shapes), else `use(None)`; and a warning for the user
    when a newer one was skipped ("" when none was). Rows of later epochs are dropped: they are
    redone from it."""
    require_safe_torch()  # before the loop: an old torch is not a damaged checkpoint to fall back from
    problems = []
    for epoch, name in checkpoint_files(run, trial_id):
        try:
            used = use(read_checkpoint(run, trial_id, epoch, name))
        except Exception as e:  # a truncated, corrupted or foreign file: fall back to the one before
            problems.append(unusable(trial_id, name, e))
            log.warning("%s", problems[-1])
            continue
        drop_rows_after(run, trial_id, epoch)
        warning = f"{problems[0]}: {trial_id} resumes from epoch {epoch}" if problems else ""
        return used, warning
    drop_rows_after(run, trial_id, 0)
    return use(None), (f"{'; '.join(problems)}: {trial_id} restarts from epoch 0" if problems else "")


def require_safe_torch() -> None:
    from trials.safe_torch import OldTorch, check_torch

    try:
        check_torch()
    except OldTorch as e:
        reason, _, fix = str(e).partition("; upgrade with ")
        raise RunError("torch", reason, fix or None) from None


# ------------------------------------------------------------------------------ results


def write_result(run: RunDir, state: dict) -> dict:
    """The record of a trial that ended on its own: every row (from the epoch files), the final
    evaluations and the summary. Then the epoch files and all but the final checkpoint go."""
    trial_id = state["trial_id"]
    rows = [r for r in read_epoch_rows(run, trial_id) if r["epoch"] <= int(state["epoch"])]
    result = {"trial_id": trial_id, "status": state["status"], "epoch": int(state["epoch"]), "rows": rows,
              "evaluations": state["evaluations"], "label_noise_actual": state["label_noise_actual"],
              "train_seconds": state["train_seconds"], "config": state["config"]}
    run.write_atomic(json.dumps(result).encode(), *_path(trial_id, RESULT))
    for name in epoch_files(run, trial_id).values():
        run.delete(TRIALS, trial_id, name)
    for _, name in checkpoint_files(run, trial_id)[1:]:
        run.delete(TRIALS, trial_id, name)
    return result


def read_json(run: RunDir, *parts: str) -> Any:
    """A JSON file's content (read up to its name's cap, `layout.max_bytes`); DamagedRecord naming the file
    when it is unreadable: too large, not a regular file, a link, not JSON."""
    try:
        return json.loads(run.read_bytes(*parts))
    except FileNotFoundError:
        return None
    except OSError as e:  # its own words, without the path the message already starts with
        raise DamagedRecord(f"{'/'.join(parts)}: unreadable ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise DamagedRecord(f"{'/'.join(parts)}: unreadable ({type(e).__name__}: {str(e)[:120]})") from None


def read_result(run: RunDir, trial_id: str) -> dict | None:
    """A finished trial's result.json, checked; None when the trial has not ended."""
    if not run.exists(*_path(trial_id, RESULT)):
        return None
    result = read_json(run, TRIALS, trial_id, RESULT)
    where = f"{TRIALS}/{trial_id}/{RESULT}"
    if not isinstance(result, dict) or result.get("trial_id") != trial_id:
        raise DamagedRecord(f"{where}: not the result of trial {trial_id}")
    if result.get("status") not in ("ok", "diverged") or not isinstance(result.get("rows"), list):
        raise DamagedRecord(f"{where}: no valid status and rows")
    rows = result["rows"]
    if not all(valid_row(r, trial_id, i + 1) for i, r in enumerate(rows)) or result.get("epoch") != len(rows):
        raise DamagedRecord(f"{where}: its rows are not epochs 1…{len(rows)} of this trial")
    if not isinstance(result.get("evaluations"), list) or not all(valid_evaluation(r) for r in result["evaluations"]):
        raise DamagedRecord(f"{where}: its evaluations are not evaluation rows")
    if not isinstance(result.get("config"), dict):
        raise DamagedRecord(f"{where}: no configuration")
    return result


def valid_evaluation(row: Any) -> bool:
    """An evaluation row: which checkpoint, at which sparsity, with numeric accuracies."""
    return (isinstance(row, dict) and row.get("checkpoint") in CHECKPOINTS
            and all(isinstance(row.get(k), int | float) and not isinstance(row.get(k), bool)
                    for k in ("sparsity", "epoch"))
            and all(row.get(k) is None or isinstance(row.get(k), int | float)
                    for k in ("clean_acc", "fgsm_acc", "pgd_acc", "autoattack_acc"))
            and all(row.get(k) is None or isinstance(row.get(k), str)
                    for k in ("correct_clean", "correct_pgd", "correct_autoattack")))


def record_error(run: RunDir, trial_id: str, message: str, config: dict) -> None:
    rec = {"trial_id": trial_id, "error": message, "config": config}
    run.write_atomic(json.dumps(rec, default=str).encode(), *_path(trial_id, ERROR))


def read_error(run: RunDir, trial_id: str) -> dict | None:
    rec = read_json(run, TRIALS, trial_id, ERROR)
    if rec is not None and (not isinstance(rec, dict) or not isinstance(rec.get("error"), str)
                            or not isinstance(rec.get("config"), dict | None)):
        raise DamagedRecord(f"{TRIALS}/{trial_id}/{ERROR}: not an error record")
    return rec


def clear_error(run: RunDir, trial_id: str) -> None:
    run.delete(*_path(trial_id, ERROR))


def record_stopped(run: RunDir, trial_id: str, config: dict) -> None:
    run.write_atomic(json.dumps({"trial_id": trial_id, "config": config}).encode(), *_path(trial_id, STOPPED))


def is_stopped(run: RunDir, trial_id: str) -> bool:
    return run.exists(*_path(trial_id, STOPPED))


def write_evaluation(run: RunDir, trial_id: str, record: dict) -> None:
    run.write_atomic(json.dumps(record, default=str).encode(), *_path(trial_id, EVALUATION))


def read_evaluation(run: RunDir, trial_id: str) -> dict | None:
    rec = read_json(run, TRIALS, trial_id, EVALUATION)
    if rec is not None and (not isinstance(rec, dict) or rec.get("trial_id") != trial_id
                            or not isinstance(rec.get("rows"), list)
                            or not all(valid_evaluation(r) for r in rec["rows"])):
        raise DamagedRecord(f"{TRIALS}/{trial_id}/{EVALUATION}: not an evaluation record of this trial")
    return rec
