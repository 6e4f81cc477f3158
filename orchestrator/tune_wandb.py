"""Ray's W&B logger, extended for decaylab (imported by `tune_trackers` when a study turns W&B on)."""

from __future__ import annotations

import os

from ray.air.integrations.wandb import WandbLoggerCallback

from orchestrator import tracking
from orchestrator.tune_trackers import Members


class WandbLogger(WandbLoggerCallback):
    """Ray's W&B logger puts every trial of an experiment in one group and logs its whole config. Here a
    run's group is its configuration (the trial id without the seed), so that seeds sit together, and its
    config is the flat hyperparameters."""

    def __init__(self, project: str, mode: str, members: Members):
        super().__init__(project=project, mode=mode)
        self.members = members

    def setup(self, *args, **kwargs) -> None:
        if self.kwargs["mode"] == "offline":
            # Ray asks for an API key unless WANDB_MODE says offline (it does not look at `mode`)
            os.environ["WANDB_MODE"] = "offline"
        super().setup(*args, **kwargs)

    def log_trial_start(self, trial) -> None:
        members = self.members(trial.config)
        init = {"id": trial.trial_id, "name": tracking.run_name(members), "resume": False, "reinit": True,
                "allow_val_change": True, "group": tracking.configuration(members[0]), "project": self.project,
                "config": tracking.hyperparameters(members), **self.kwargs}
        self._start_logging_actor(trial, [*self._exclude_results, *self.excludes, "config"], **init)
