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


def epoch_file(epoch: int) -> str:
    return f"epoch-{int(epoch):04d}.json"


def checkpoint_file(epoch: int) -> str:
    return f"checkpoint-{int(epoch):04d}.pt"


def experiment(number: int) -> str:
    return f"sweep-{number:03d}"
