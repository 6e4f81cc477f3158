"""What one trial does: data, models, attacks, arms (weight-decay methods and their kin), the epoch loop.

Never imports Ray or `orchestrator`. Importing the package (or its torch-free modules: config,
checks, selection, datasets, arms) does not import torch: `run_trial` is loaded on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrialConfig", "run_trial"]


def __getattr__(name: str) -> Any:
    if name == "run_trial":
        from trials.train import run_trial

        return run_trial
    if name == "TrialConfig":
        from trials.config import TrialConfig

        return TrialConfig
    raise AttributeError(f"module 'trials' has no attribute {name!r}")
