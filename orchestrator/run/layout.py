"""Every name in a run directory, in one place.

    RUN_DIR/
      study.yaml              the resolved study (what was run)
      manifest.json           provenance: commit, versions, hardware, start and end
      sweep.log               every line the sweeps printed
      best_grid.yaml          an Optuna stage's best configurations, as a grid study
      optuna.journal          an Optuna stage's study (optuna-dashboard reads it)
      epochs.parquet  trials.parquet  evaluations.parquet      the result files
      parts/<table>/<trial_id>.arrow                            each trial's rows of them
      trials/<trial_id>/      a trial's own record (`orchestrator.run.records`)
      damaged/<trial_id>/     records set aside by `resume` (never read)
      sweep-NNN/              one Ray Tune experiment per sweep run (Ray's own files; never read back)
      .decaylab.lock          held by the one decaylab that writes the run directory (`orchestrator.run.lock`)

Every file decaylab reads back is read with a cap (`max_bytes`): at most that many bytes, more is
damage, never data. Each cap is what a real file of that name needs, with ample room.
"""

from __future__ import annotations

import re

STUDY = "study.yaml"
MANIFEST = "manifest.json"
LOG = "sweep.log"
BEST_GRID = "best_grid.yaml"
JOURNAL = "optuna.journal"  # an Optuna stage's study (JSON lines), unless search.storage names another
LOCK = ".decaylab.lock"

TABLES = ("epochs", "trials", "evaluations")
EPOCHS, TRIALS_TABLE, EVALUATIONS = (f"{t}.parquet" for t in TABLES)
RESULT_FILES = (EPOCHS, TRIALS_TABLE, EVALUATIONS, MANIFEST)
PARTS = "parts"
PART, LEGACY_PART = ".arrow", ".parquet"  # a part's file suffix; earlier versions wrote parquet parts

TRIALS = "trials"
DAMAGED = "damaged"
RESULT, ERROR, STOPPED, EVALUATION = "result.json", "error.json", "stopped.json", "evaluation.json"
EPOCH_FILE = re.compile(r"epoch-(\d{4,})\.json$")
CHECKPOINT_FILE = re.compile(r"checkpoint-(\d{4,})\.pt$")

EXPERIMENT = re.compile(r"sweep-(\d{3,})$")


KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
MAX_STUDY = 1 * MIB  # study.yaml: a resolved study is a few KiB (the study-file reader's own bound)
MAX_MANIFEST = 4 * MIB  # manifest.json: the resolved study, versions, hardware and the experiments' names
MAX_LOCK = 64 * KIB  # .decaylab.lock: who holds the run directory
MAX_ROW = 256 * KIB  # epoch-NNNN.json: one row of about 50 numbers and labels (~1.2 KiB)
MAX_RECORD = 4 * MIB  # error.json, stopped.json: a message and the trial's config (per-epoch schedules included)
# result.json and evaluation.json, which `json.loads` turns into Python objects of 5 to 25 times their
# size: an epoch row is about 1.2 KiB of JSON, so the 10,000 epochs `train.epochs` allows take about
# 12 MiB; the final evaluations (checkpoint × sparsity rows, each example's correctness packed 8 to a
# byte) add a few MiB for a test split of 100,000 examples. 32 MiB holds both with room, and parses
# into well under a GiB even when a hostile file is all tiny values.
MAX_RESULT = 32 * MIB
MAX_PART = 64 * MIB  # parts/<table>/<trial_id>.arrow: a trial's rows, uncompressed (~0.5 KiB per epoch row)
# checkpoint-NNNN.pt: the weights up to five times (live, best, averaged, averaged best, SGD momentum); 8 GiB
# holds a network of about 400 million parameters (WRN-70-16 has 267 million)
MAX_CHECKPOINT = 8 * GIB
MAX_RESULT_FILE = 4 * GIB  # epochs/trials/evaluations.parquet, copied from an object store for the report
MAX_LOG = 64 * MIB  # sweep.log, read back only on object stores (to append the new lines)
MAX_BEST_GRID = 1 * MIB  # best_grid.yaml: a study file
CAPS = {STUDY: MAX_STUDY, MANIFEST: MAX_MANIFEST, LOCK: MAX_LOCK, LOG: MAX_LOG, BEST_GRID: MAX_BEST_GRID,
        RESULT: MAX_RESULT, EVALUATION: MAX_RESULT, ERROR: MAX_RECORD, STOPPED: MAX_RECORD,
        **dict.fromkeys((EPOCHS, TRIALS_TABLE, EVALUATIONS), MAX_RESULT_FILE)}


def max_bytes(name: str) -> int:
    """The most bytes decaylab reads of a run directory's file called `name` (its last path component)."""
    if name in CAPS:
        return CAPS[name]
    if EPOCH_FILE.fullmatch(name):
        return MAX_ROW
    if CHECKPOINT_FILE.fullmatch(name):
        return MAX_CHECKPOINT
    if name.endswith((PART, LEGACY_PART)):
        return MAX_PART
    raise ValueError(f"decaylab reads no file called {name!r} (no read limit is set for it)")


def epoch_file(epoch: int) -> str:
    return f"epoch-{int(epoch):04d}.json"


def checkpoint_file(epoch: int) -> str:
    return f"checkpoint-{int(epoch):04d}.pt"


def experiment(number: int) -> str:
    return f"sweep-{number:03d}"
