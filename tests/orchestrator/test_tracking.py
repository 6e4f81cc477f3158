"""Experiment trackers: what a trial reports to them, and (slow) a real sweep read back from MLflow's
SQLite store, TensorBoard's event files and W&B's offline files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.sweep import decaylab, write_study

from orchestrator.errors import UserError
from orchestrator.run import tracking
from orchestrator.study.load import study_from_dict
from trials.config import GridPoint, TrialConfig

REPO = Path(__file__).resolve().parents[2]


def config(seed: int = 0, method: str = "wd", kind: str = "fixed", params: dict | None = None) -> TrialConfig:
    point = GridPoint(arm=method, kind=kind, params=params or {"lam": 5e-4}, lr=0.1, seed=seed)
    return TrialConfig(study="s", point=point)


def row(value: float) -> dict:
    return {k: value for k in tracking.METRICS}


def test_one_member_reports_plain_keys_several_are_prefixed_by_seed():
    one = tracking.member_metrics([(config(), row(0.5))])
    assert one["lambda_mean"] == 0.5 and one["val_robust_acc"] == 0.5 and "epoch" not in one
    several = tracking.member_metrics([(config(0), row(0.1)), (config(1), row(0.2))])
    assert several["s0/val_robust_acc"] == 0.1 and several["s1/val_robust_acc"] == 0.2
    assert "val_robust_acc" not in several


def test_a_ray_trial_s_hyperparameters_are_its_entry_s_flat_parameters():
    """What the trackers show as a trial's hyperparameters (Tune hands them the trial's config)."""
    from orchestrator.study.plan import entry_params, members

    study = study_from_dict({"methods": {"wd": {"kind": "fixed", "lambda": [5e-4]}}, "lr": [0.1], "seeds": [0, 1]}, "s")
    params = entry_params(study, "wd", {"lam": 5e-4}, 0.1, [0, 1], 0.0)
    assert params == {"arm": "wd", "kind": "fixed", "setting": "λ=0.0005", "lambda": 5e-4, "lr": 0.1, "seeds": [0, 1],
                      "label_noise": 0.0, "stage": "tune"}
    assert [m.trial_id for m in members(study, params)] == ["wd-0.0005-lr0.1-s0", "wd-0.0005-lr0.1-s1"]


def test_a_tracker_needs_its_uri_and_its_package(monkeypatch):
    base = {"methods": {"wd": {"kind": "fixed", "lambda": [0.0]}}}
    with pytest.raises(UserError, match=r"tracking\.mlflow\.uri: must be a tracking URI"):
        study_from_dict({**base, "tracking": {"mlflow": {"uri": "mlruns"}}}, "s.yaml")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None if name == "wandb" else object())
    with pytest.raises(UserError, match=r"tracking\.wandb: the package wandb is not installed"):
        study_from_dict({**base, "tracking": {"wandb": {"project": "p"}}}, "s.yaml")


@pytest.mark.slow
@pytest.mark.ray
def test_a_sweep_reaches_mlflow_tensorboard_and_wandb(tmp_path):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    study = write_study(tmp_path, methods={"wd": {"kind": "fixed", "lambda": [0.0]},
                                           "awd": {"kind": "adaptive", "lambda_awd": [0.01]}}, lr=[0.05],
                        tracking={"mlflow": {"uri": uri, "experiment": "exp"},
                                  "wandb": {"project": "decaylab-test", "mode": "offline"}})
    out = decaylab("sweep", study, "--storage", tmp_path / "results", "--num-cpus", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    experiment = tmp_path / "results" / "tiny" / "sweep-000"
    trials = ["wd-0-lr0.05-s0", "awd-0.01-lr0.05-s0"]

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert len(parents) == 1 and set(children) == set(trials) and len(runs) == 3
    for child in children.values():
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_robust_acc")] == [1, 2]
        assert [m.step for m in client.get_metric_history(child.info.run_id, "lambda_mean")] == [1, 2]
        assert {"arm", "kind", "setting", "lr", "seeds", "label_noise"} <= set(child.data.params)
        assert {"final/best_test_robust_acc", "final/last_test_robust_acc"} <= set(child.data.metrics)

    events = EventAccumulator(str(experiment / "awd-0.01-lr0.05-s0"))
    events.Reload()
    assert [e.step for e in events.Scalars("ray/tune/lambda_mean")] == [1, 2]
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["arm"].string_value == "awd"
    assert start.session_start_info.hparams["lambda_awd"].number_value == 0.01
    info = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert {"ray/tune/final/best_test_robust_acc", "ray/tune/final/last_test_robust_acc"} <= \
        {m.name.tag for m in info.experiment.metric_infos}  # Ray's logger tags every metric ray/tune/...

    for trial in trials:
        assert list((experiment / trial / "wandb").glob("offline-run-*/run-*.wandb")), f"no W&B run for {trial}"


@pytest.mark.slow
def test_mlflow_and_wandb_are_imported_only_for_studies_that_use_them():
    """Their packages take over a second to import: a sweep with TensorBoard alone does not pay it."""
    code = ("import sys\nfrom orchestrator.study.load import study_from_dict\n"
            "from orchestrator.run.storage import RunDir\nfrom orchestrator.ray import trackers\n"
            "study = study_from_dict({'name': 't', 'methods': {'wd': {'kind': 'fixed', 'lambda': [0.0]}}, "
            "'lr': [0.1], 'seeds': [0]}, 't')\n"
            "names = [type(c).__name__ for c in trackers.callbacks(study, RunDir('/tmp/x'))]\n"
            "print(names, sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'wandb'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['JsonLoggerCallback', 'TBXLoggerCallback'] []"
