"""Ray's MLflow logger, extended for decaylab (imported by `tune_trackers` when a study turns MLflow on)."""

from __future__ import annotations

from ray.air.integrations.mlflow import MLflowLoggerCallback

from orchestrator import tracking
from orchestrator.storage import RunDir
from orchestrator.tune_trackers import Members


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
