"""Helpers for tests that run the real `decaylab` command (and with it a real Ray cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]

# A study small enough for a test: 2 arms × 2 values × 2 lr × 1 seed, 2 epochs on 300 digits.
TINY = {
    "name": "tiny",
    "data": {"dataset": "digits", "subset": 300},
    "model": {"arch": "small_cnn"},
    "train": {"epochs": 2, "batch_size": 64},
    "attack": {"train": {"kind": "pgd", "eps": 0.25, "steps": 2, "step_size": 0.15},
               "eval": {"kind": "pgd", "steps": 3}},
    "eval": {"val_examples": 100, "test_examples": 100, "train_examples": 100},
    "methods": {"wd": {"kind": "fixed", "lambda": [0.0, 5.0e-4]},
                "awd": {"kind": "adaptive", "lambda_awd": [0.01, 0.02]}},
    "lr": [0.02, 0.05],
    "seeds": [0],
    "resources": {"cpu": 1, "gpu": 0, "max_failures": 2},
}


def write_study(directory: Path, **changes) -> Path:
    study = {**TINY, **changes}
    path = directory / f"{study['name']}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def cli_env(extra: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("DECAYLAB_FAULTS", None)
    env.update(extra or {})
    return env


def decaylab(*args: str, env: dict | None = None, timeout: float = 300, cwd: Path | None = None
             ) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter (its own Ray), capturing output."""
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *map(str, args)], capture_output=True,
                          text=True, env=cli_env(env), timeout=timeout, cwd=cwd or REPO)


def start_decaylab(*args: str, env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", *map(str, args)], stdout=out,
                            stderr=subprocess.STDOUT, env=cli_env(env), cwd=REPO, start_new_session=True)


def comparable(epochs: pd.DataFrame) -> pd.DataFrame:
    """Epoch rows without wall-clock columns, in a canonical order."""
    return epochs.drop(columns=["epoch_seconds"]).sort_values(["trial_id", "epoch"]).reset_index(drop=True)
