"""The study's trackers as Ray Tune logger callbacks (imported by `tune_backend` on the driver only).

Ray's own loggers do the logging: TensorBoard (`TBXLoggerCallback`), MLflow
(`MLflowLoggerCallback`) and W&B (`WandbLoggerCallback`). Every logger's x-axis is the epoch: the
trainable reports it as `timesteps_total`, which Ray's TensorBoard and MLflow loggers use as the
step in place of Ray's iteration counter (that one restarts when `resume` starts a new experiment).
Each is extended only where it cannot do what decaylab needs, as its class says. The MLflow and W&B
loggers (`tune_mlflow`, `tune_wandb`) are imported only when a study turns them on: their packages
take over a second to import.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ray.air.constants import TRAINING_ITERATION
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
from ray.tune.result import TIME_TOTAL_S, TIMESTEPS_TOTAL
from ray.tune.utils import flatten_dict

from orchestrator import tracking
from orchestrator.spec import Study
from orchestrator.storage import RunDir
from trials.config import TrialConfig

Members = Callable[[dict], list[TrialConfig]]  # a Ray trial's config → its member trials
# what Ray's TensorBoard logger leaves out of a result, and the types it logs as scalars
UNLOGGED = ("config", "pid", "timestamp", TIME_TOTAL_S, TRAINING_ITERATION)
SCALAR_TYPES = (int, float, np.float32, np.float64, np.int32, np.int64)


class TensorBoardLogger(TBXLoggerCallback):
    """Ray's TensorBoard logger. Its HParams entry would hold the Ray trial's search-space values (for
    decaylab, whole trial configurations); here it holds the flat hyperparameters and, as metrics, the
    selection rule's accuracies from the members' records. Each result's scalars go into one event (Ray's
    writes an event per scalar: ~2 ms of the driver's time per result for decaylab's ~30 metrics, against
    ~0.4 ms); TensorBoard reads the same series from either."""

    def __init__(self, run: RunDir, members: Members):
        super().__init__()
        self.run, self.members = run, members

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        """Ray's `log_trial_result` for results of scalars (the only kind decaylab's trainable reports): the
        same tags, values, step and filter (finite-or-inf numbers, NaN left out), in one Summary."""
        from tensorboardX.proto.summary_pb2 import Summary
        from tensorboardX.summary import _clean_tag

        if any(isinstance(v, list | np.ndarray) for v in result.values()):  # histograms, images: Ray's way
            return super().log_trial_result(iteration, trial, result)
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        step = result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION]
        flat = flatten_dict({k: v for k, v in result.items() if k not in UNLOGGED}, delimiter="/")
        scalars = {f"ray/tune/{k}": v for k, v in flat.items()
                   if isinstance(v, SCALAR_TYPES) and not np.isnan(v)}
        writer = self._trial_writer[trial]
        writer.file_writer.add_summary(
            Summary(value=[Summary.Value(tag=_clean_tag(tag), simple_value=float(v)) for tag, v in scalars.items()]),
            step)
        self._trial_result[trial] = scalars
        writer.flush()

    def log_trial_end(self, trial, failed: bool = False) -> None:
        # Ray writes HParams only for trials with search-space values (`evaluated_params`); decaylab's
        # trial ids are points to evaluate, which have none, so the entry is written here for every trial
        if trial in self._trial_writer and self._trial_result[trial]:
            self._log_hparams(trial)
        super().log_trial_end(trial, failed)

    def _try_log_hparams(self, trial, result: dict) -> None:
        """Ray's HParams entry (the Ray trial's config), replaced by `_log_hparams`."""

    def _log_hparams(self, trial) -> None:
        from tensorboardX.summary import hparams

        members = self.members(trial.config)
        metrics = {f"final/{k}": v for k, v in tracking.final_metrics(self.run, members).items()}
        writer = self._trial_writer[trial]
        step = self._trial_result[trial].get("ray/tune/timesteps_total", 0)
        for tag, value in metrics.items():  # HParams shows the scalars that carry its metrics' tags
            writer.add_scalar(tag, value, global_step=step)
        for summary in hparams(hparam_dict=tracking.hyperparameters(members), metric_dict=metrics):
            writer.file_writer.add_summary(summary)


def callbacks(study: Study, run: RunDir, members: Members) -> list:
    """Ray's CSV and JSON loggers (the trial folders Ray writes under sweep-NNN/) and the study's trackers.
    Ray adds no loggers of its own (TUNE_DISABLE_AUTO_CALLBACK_LOGGERS), so `tensorboard: false` is off."""
    t = study.tracking
    out: list = [CSVLoggerCallback(), JsonLoggerCallback()]
    if t.tensorboard:
        out.append(TensorBoardLogger(run, members))
    if t.mlflow:
        from orchestrator.tune_mlflow import MlflowLogger

        out.append(MlflowLogger(t.mlflow.uri, t.mlflow.experiment or study.name, run, study.name, members))
    if t.wandb:
        from orchestrator.tune_wandb import WandbLogger

        out.append(WandbLogger(t.wandb.project, t.wandb.mode, members))
    return out
