"""The study's experiment trackers, as Ray Tune's own logger callbacks configured through their public
arguments: TensorBoard (`TBXLoggerCallback`), MLflow (`MLflowLoggerCallback`) and W&B
(`WandbLoggerCallback`).

What they log comes from what each Ray trial reports (`orchestrator.ray.executor.trainable`): every
epoch, each member's per-epoch metrics (`s<seed>/` prefixed when an entry trains several seeds) with
the epoch as `timesteps_total` (the loggers' x-axis); on its last report, the selection rule's
accuracies and the final evaluation as `final/<name>`. Each trial's hyperparameters are its entry's
flat parameters (arm, the arm's own, lr, seeds, label noise), which Tune hands the loggers as the
trial's config. The MLflow and W&B packages are imported only when a study turns them on.
"""

from __future__ import annotations

import os

from orchestrator.run import manifest
from orchestrator.run.storage import RunDir
from orchestrator.study.schema import Study


def callbacks(study: Study, run: RunDir) -> list:
    """Ray's JSON logger (each Ray trial's reports, its node among them, in `sweep-NNN/<entry>/result.json`)
    and the loggers the study's `tracking` section turns on."""
    from ray.tune.logger import JsonLoggerCallback

    t = study.tracking
    out: list = [JsonLoggerCallback()]
    if t.tensorboard:
        from ray.tune.logger import TBXLoggerCallback

        out.append(TBXLoggerCallback())
    if t.mlflow:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        experiment = t.mlflow.experiment or study.name
        tags = {"decaylab_run_dir": run.location, "decaylab_study": study.name,
                "mlflow.parentRunId": mlflow_parent(run, t.mlflow.uri, experiment, study.name)}
        out.append(MLflowLoggerCallback(tracking_uri=t.mlflow.uri, experiment_name=experiment, tags=tags))
    if t.wandb:
        from ray.air.integrations.wandb import WandbLoggerCallback

        if t.wandb.mode == "offline":  # Ray asks for an API key unless W&B's own variable says offline
            os.environ["WANDB_MODE"] = "offline"
        out.append(WandbLoggerCallback(project=t.wandb.project, group=study.name, mode=t.wandb.mode))
    return out


def mlflow_parent(run: RunDir, uri: str, experiment: str, name: str) -> str:
    """The MLflow run every trial of this run directory is nested under: made once, its id kept in the
    manifest, so that `resume` nests its trials under the same parent."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    known = (manifest.read_manifest(run) or {}).get("mlflow_parent_run")
    if isinstance(known, str) and known:
        return known
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    parent = client.create_run(experiment_id, run_name=name, tags={"decaylab_run_dir": run.location}).info.run_id
    man = manifest.read_manifest(run) or {}
    manifest.write_manifest(run, {**man, "mlflow_parent_run": parent})
    return parent


def finish(study: Study, run: RunDir) -> None:
    """Mark the MLflow parent run finished once a sweep ends (a resumed sweep reopens nothing: its trials
    nest under the same parent)."""
    parent = (manifest.read_manifest(run) or {}).get("mlflow_parent_run")
    if study.tracking.mlflow and isinstance(parent, str):
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=study.tracking.mlflow.uri).set_terminated(parent, "FINISHED")
