"""The study's trackers as Ray Tune logger callbacks (imported by `tune_backend` on the driver only).

Ray's own loggers do the logging: TensorBoard (`TBXLoggerCallback`), MLflow
(`MLflowLoggerCallback`) and W&B (`WandbLoggerCallback`). Every logger's x-axis is the epoch: the
trainable reports it as `timesteps_total`, which Ray's TensorBoard and MLflow loggers use as the
step in place of Ray's iteration counter (that one restarts when `resume` starts a new experiment).
Each is extended only where it cannot do what decaylab needs, as its class says.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.air.integrations.wandb import WandbLoggerCallback
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

from orchestrator import tracking
from orchestrator.spec import Study
from orchestrator.storage import RunDir
from trials.config import TrialConfig

Members = Callable[[dict], list[TrialConfig]]  # a Ray trial's config → its member trials


class TensorBoardLogger(TBXLoggerCallback):
    """Ray's TensorBoard logger. Its HParams entry would hold the Ray trial's search-space values (for
    decaylab, whole trial configurations); here it holds the flat hyperparameters and, as metrics, the
    selection rule's accuracies from the members' records."""

    def __init__(self, run: RunDir, members: Members):
        super().__init__()
        self.run, self.members = run, members

    def _try_log_hparams(self, trial, result: dict) -> None:
        from tensorboardX.summary import hparams

        members = self.members(trial.config)
        metrics = {f"final/{k}": v for k, v in tracking.final_metrics(self.run, members).items()}
        writer = self._trial_writer[trial]
        step = self._trial_result[trial].get("ray/tune/timesteps_total", 0)
        for tag, value in metrics.items():  # HParams shows the scalars that carry its metrics' tags
            writer.add_scalar(tag, value, global_step=step)
        for summary in hparams(hparam_dict=tracking.hyperparameters(members), metric_dict=metrics):
            writer.file_writer.add_summary(summary)


class MlflowLogger(MLflowLoggerCallback):
    """Ray's MLflow logger makes one top-level run per trial and logs its whole config as parameters. Here
    the trial runs are nested under one parent run per run directory (MLflow's `mlflow.parentRunId` tag;
    `resume` finds the parent again by its `decaylab_run_dir` tag), and their parameters are the flat
    hyperparameters; the selection rule's accuracies are logged when a trial ends."""

    def __init__(self, uri: str, experiment: str, run: RunDir, study_name: str, members: Members):
        super().__init__(tracking_uri=uri, experiment_name=experiment)
        self.run, self.study_name, self.members = run, study_name, members

    def setup(self, *args, **kwargs) -> None:
        super().setup(*args, **kwargs)
        self.parent = self._parent_run()
        self.tags = {"mlflow.parentRunId": self.parent}

    def _parent_run(self) -> str:
        client = self.mlflow_util._get_client()
        experiment = self.mlflow_util.experiment_id
        found = client.search_runs([experiment], f"tags.decaylab_run_dir = '{self.run.location}'", max_results=1)
        if found:
            return found[0].info.run_id
        parent = client.create_run(experiment, run_name=self.study_name,
                                   tags={"decaylab_run_dir": self.run.location})
        return parent.info.run_id

    def log_trial_start(self, trial) -> None:
        if trial in self._trial_runs:
            return
        members = self.members(trial.config)
        run = self.mlflow_util.start_run(tags={**self.tags, "trial_name": str(trial)},
                                         run_name=tracking.run_name(members))
        self._trial_runs[trial] = run.info.run_id
        self.mlflow_util.log_params(run_id=run.info.run_id, params_to_log=tracking.hyperparameters(members))

    def log_trial_end(self, trial, failed: bool = False) -> None:
        if not failed:
            step = (trial.last_result or {}).get("timesteps_total") or 0
            self.mlflow_util.log_metrics(run_id=self._trial_runs[trial], step=step, metrics_to_log={
                f"final/{k}": v for k, v in tracking.final_metrics(self.run, self.members(trial.config)).items()})
        super().log_trial_end(trial, failed)

    def on_experiment_end(self, trials, **info) -> None:
        self.mlflow_util._get_client().set_terminated(self.parent, "FINISHED")


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


def callbacks(study: Study, run: RunDir, members: Members) -> list:
    """Ray's CSV and JSON loggers (the trial folders Ray writes under sweep-NNN/) and the study's trackers.
    Ray adds no loggers of its own (TUNE_DISABLE_AUTO_CALLBACK_LOGGERS), so `tensorboard: false` is off."""
    t = study.tracking
    out: list = [CSVLoggerCallback(), JsonLoggerCallback()]
    if t.tensorboard:
        out.append(TensorBoardLogger(run, members))
    if t.mlflow:
        out.append(MlflowLogger(t.mlflow.uri, t.mlflow.experiment or study.name, run, study.name, members))
    if t.wandb:
        out.append(WandbLogger(t.wandb.project, t.wandb.mode, members))
    return out
