"""decaylab's checkpoint directory: `state.pt` (everything to resume) + `rows.json` (results).

`rows.json` repeats the trial's rows so far, its status and final evaluations, so results
can be exported and `status` shown without loading tensors or starting Ray. State files are
loaded with `weights_only=True`: a checkpoint can hold tensors and plain data, never code.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import torch

from orchestrator.storage import RunDir, write_atomic_local

STATE_FILE = "state.pt"
ROWS_FILE = "rows.json"
SUMMARY_KEYS = ("trial_id", "status", "epoch", "rows", "evaluations", "label_noise_actual", "train_seconds",
                "best_epoch", "config")

log = logging.getLogger("decaylab.checkpoints")


def write_checkpoint_dir(state: dict, directory: str | Path) -> None:
    directory = Path(directory)
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic_local(directory / STATE_FILE, buf.getvalue())
    # rows.json last: its presence marks a complete checkpoint directory
    write_atomic_local(directory / ROWS_FILE, json.dumps(summary_of(state)).encode())


def summary_of(state: dict) -> dict:
    return {k: state.get(k) for k in SUMMARY_KEYS}


def read_summary(run: RunDir, *parts: str) -> dict | None:
    """The rows.json of a checkpoint directory, or None if missing or unreadable (torn write)."""
    try:
        summary = json.loads(run.read_text(*parts, ROWS_FILE))
    except (OSError, FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(summary, dict) or not all(k in summary for k in SUMMARY_KEYS):
        return None
    return summary


def load_state_bytes(data: bytes) -> dict:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def load_state(run: RunDir, *parts: str) -> dict:
    return load_state_bytes(run.read_bytes(*parts, STATE_FILE))


def load_first_good(run: RunDir, candidates: list[tuple[str, ...]]) -> tuple[dict, tuple[str, ...]] | None:
    """Load the first candidate checkpoint directory whose state loads; warn about each bad one."""
    for parts in candidates:
        try:
            return load_state(run, *parts), parts
        except Exception as e:  # a truncated or corrupted file: fall back to the previous one
            log.warning("checkpoint %s is unreadable (%s: %s); falling back to an earlier one",
                        "/".join(parts), type(e).__name__, str(e)[:200])
    return None
