"""Everything that touches Ray Tune (the only module that imports `ray.tune`).

A Ray trial trains one or more *member* trials in lockstep (one for the grid comparison;
one per seed for an Optuna configuration) and reports once per epoch with a checkpoint
directory holding one sub-directory per member. A trial starts from Tune's own checkpoint
on a retry, else from the most advanced checkpoint of the same trial left by an earlier
sweep of this run directory, so `resume` and `extend` never redo finished epochs.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Set before Ray starts so that local workers inherit them.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

import ray
import torch
from ray import tune
from ray.tune.error import TuneError

from orchestrator import faults, results
from orchestrator.checkpoints import load_first_good, write_checkpoint_dir
from orchestrator.errors import UserError
from orchestrator.progress import Progress
from orchestrator.spec import Study, study_from_dict, trial_config
from orchestrator.storage import RunDir
from trials.config import TrialConfig
from trials.evaluation import sanity_problems
from trials.train import start_trial, step

log = logging.getLogger("decaylab.sweep")
# passed to every worker, also on remote nodes (which do not inherit this process's environment)
RAY_ENV_KEYS = ("RAY_CHDIR_TO_TRIAL_DIR", "DECAYLAB_FAULTS")


# -------------------------------------------------------------------------------- cluster


def connect(address: str | None, num_cpus: int | None = None, dashboard: bool = False) -> dict:
    """Join the cluster at `address` (or RAY_ADDRESS), else start a local one. Returns its resources."""
    # Tune logs every trial error with its traceback; decaylab prints one line per failure
    # instead and keeps the traceback in the trial's error.txt.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    # Ray retries a failed upload of the experiment state with a warning and a traceback; when the
    # storage is really gone (full, read-only) decaylab says so itself, in one line
    logging.getLogger("ray.train._internal.syncer").setLevel(logging.ERROR)
    if not ray.is_initialized():
        ray.init(**init_kwargs(address, num_cpus, dashboard, os.environ))
    return ray.cluster_resources()


def init_kwargs(address: str | None, num_cpus: int | None, dashboard: bool, environ) -> dict:
    """The arguments of `ray.init` (a pure function, so the safety defaults can be tested)."""
    kwargs = {"include_dashboard": dashboard, "log_to_driver": False, "logging_level": logging.WARNING,
              "runtime_env": {"env_vars": {k: environ[k] for k in RAY_ENV_KEYS if k in environ}},
              # Ray runs its HTTP API server even without the dashboard: never beyond this machine
              "dashboard_host": "127.0.0.1"}
    address = address or environ.get("RAY_ADDRESS")
    if address:
        return {"address": address, **kwargs}
    # "local": always a fresh cluster of this process, never one a `ray start` left running
    return {"address": "local", "num_cpus": num_cpus, "num_gpus": torch.cuda.device_count(), **kwargs}


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()


# ------------------------------------------------------------------------------ trainable


def members_of(params: dict) -> list[TrialConfig]:
    """The member trials of a Ray trial, from its config (a grid entry or an Optuna sample)."""
    if "entry" in params:
        return [TrialConfig.from_dict(m) for m in params["entry"]["members"]]
    study = study_from_dict(params["study"], "optuna trial")
    arm = study.arm(params["method"])
    value = float(params[f"{arm.name}.{arm.param}"])
    seeds = study.seeds[: study.search.seeds_per_trial or len(study.seeds)]
    # Optuna tunes on the first label-noise level; a noise grid belongs to the grid comparison
    return [trial_config(study, arm, value, float(params["lr"]), seed, study.data.label_noise[0])
            for seed in seeds]


def initial_state(run: RunDir, cfg: TrialConfig, ray_trial_dir: str | None) -> tuple[dict | None, str]:
    """Most advanced loadable checkpoint of this member (Tune's own trial dir, then earlier sweeps),
    and a warning for the user when newer checkpoints could not be loaded ("" when none)."""
    scanner = results.Scanner(run)
    found = []
    if ray_trial_dir:
        found += scanner.candidates(ray_trial_dir, cfg.trial_id, every_checkpoint=True).get(cfg.trial_id, [])
    found += scanner.candidates(cfg.trial_id, cfg.trial_id, every_checkpoint=True).get(cfg.trial_id, [])
    found.sort(key=lambda t: (t[0], t[1]), reverse=True)
    paths = [c[2] for c in found]
    loaded = load_first_good(run, paths)
    if loaded is None:
        return None, f"no checkpoint of {cfg.trial_id} is readable: it restarts from epoch 0" if paths else ""
    state, parts = loaded
    if parts == paths[0]:
        return state, ""
    return state, (f"checkpoint {'/'.join(paths[0])} is unreadable: {cfg.trial_id} resumes from an earlier one "
                   f"(epoch {state['epoch']})")


def objective(rows: list[dict]) -> float:
    """Mean val robust accuracy of the members' latest epochs; a diverged member counts 0."""
    vals = [r["val_robust_acc"] if math.isfinite(r["val_robust_acc"]) else 0.0 for r in rows]
    return sum(vals) / len(vals)


def trainable(params: dict) -> None:
    """The Ray Tune function trainable: train the members, report every epoch with a checkpoint."""
    members = members_of(params)
    torch.set_num_threads(params["threads"])
    run = RunDir(params["run_dir"])
    ctx = tune.get_context()
    ray_dir = Path(ctx.get_trial_dir()).name if tune.get_checkpoint() is not None else None
    starts = [initial_state(run, cfg, ray_dir) for cfg in members]
    trainers = [start_trial(cfg, state, params["device"]) for cfg, (state, _) in zip(members, starts, strict=True)]
    warning = "; ".join(w for _, w in starts if w)  # shown by the driver with the first result
    latest = [tr.rows[-1] if tr.rows else None for tr in trainers]
    reported = False
    while not all(tr.finished for tr in trainers) or not reported:
        for i, tr in enumerate(trainers):
            if not tr.finished:
                latest[i], _ = step(tr)
        rows = [r for r in latest if r is not None]
        if not rows:
            raise RuntimeError(f"trial {members[0].trial_id} produced no epoch (train.epochs is 0?)")
        metrics = {"objective": objective(rows), "epoch": max(r["epoch"] for r in rows),
                   "method": rows[0]["method"], "node": ray.get_runtime_context().get_node_id(),
                   "val_robust_acc": rows[0]["val_robust_acc"], "warning": warning,
                   "status": "running" if not all(tr.finished for tr in trainers) else
                   ("ok" if all(tr.status == "ok" for tr in trainers) else "diverged")}
        with tempfile.TemporaryDirectory() as d:
            for tr in trainers:
                write_checkpoint_dir(tr.state_dict(), Path(d) / tr.config.trial_id)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        reported, warning = True, ""
        for tr in trainers:
            faults.maybe_fail(tr.config.trial_id, tr.epoch)


# ------------------------------------------------------------------------------- callback


class SweepCallback(tune.Callback):
    """Driver side: live progress, failed-trial records, and tidy results after each trial."""

    def __init__(self, run: RunDir, progress: Progress):
        self.run = run
        self.progress = progress
        self.scanner = results.Scanner(run)

    def __getstate__(self) -> dict:  # pickled with the experiment state: keep it light
        return {"run": self.run, "progress": None, "scanner": results.Scanner(self.run)}

    def on_trial_start(self, iteration, trials, trial, **info):
        for cfg in members_of(trial.config):
            results.clear_error(self.run, cfg.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.progress and result.get("warning"):
            self.progress.say(f"warning: {result['warning']}")
        if self.progress:
            self.progress.result(trial.trial_id, result.get("method", "?"), result.get("objective", math.nan))

    def on_trial_complete(self, iteration, trials, trial, **info):
        status = trial.last_result.get("status", "ok")
        if trial.last_result.get("epoch") is None:
            status = "failed"  # a trial that reports nothing is an error, not a success
        elif status == "running":  # ended without finishing: the tuning scheduler (ASHA) stopped it
            status = "stopped"
            for cfg in members_of(trial.config):
                results.record_stopped(self.run, cfg.trial_id)
        self._warn_sanity(trial)
        self._finish(trial, status)

    def on_trial_error(self, iteration, trials, trial, **info):
        message = _error_message(trial)
        for cfg in members_of(trial.config):
            results.record_error(self.run, cfg.trial_id, message, cfg.to_dict(), cfg.key_columns())
        if self.progress:
            where = f" (traceback: {trial.error_file})" if trial.error_file else ""
            self.progress.say(f"trial {trial_label(trial)} failed: {message}{where}")
        self._finish(trial, "failed")

    def _finish(self, trial, status: str) -> None:
        results.export(self.scanner)
        if self.progress:
            self.progress.finished(trial.trial_id, status)

    def _warn_sanity(self, trial) -> None:
        for cfg in members_of(trial.config):
            summary = self.scanner.latest().get(cfg.trial_id)
            for row in (summary or {}).get("evaluations", []):
                for problem in sanity_problems(row):
                    msg = f"warning: {cfg.trial_id} ({row['checkpoint']}, sparsity {row['sparsity']:g}): {problem}"
                    if self.progress:
                        self.progress.say(msg)


def trial_label(trial) -> str:
    return trial.config.get("entry", {}).get("trial_id") or trial.trial_id


def _error_message(trial) -> str:
    text = ""
    try:
        text = trial.get_error() or ""
    except Exception:  # the error file may not be readable from here
        text = ""
    if not text and trial.error_file and os.path.exists(trial.error_file):
        text = Path(trial.error_file).read_text()
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    causes = [ln for ln in lines if ln.split(":")[0].endswith(("Error", "Exception"))]
    return (causes[-1] if causes else (lines[-1] if lines else "unknown error"))[:500]


# ----------------------------------------------------------------------------- experiment


@dataclass
class Launch:
    """What one Ray Tune experiment needs."""

    run: RunDir
    experiment: str
    study: Study
    device: str  # "cpu" | "cuda"
    progress: Progress
    entries: list[dict] | None = None  # grid: one entry per Ray trial


def _resources(study: Study, device: str) -> dict:
    gpu = study.resources.gpu if device == "cuda" else 0.0
    if device == "cuda" and gpu == 0:
        gpu = 1.0
    return {"cpu": study.resources.cpu, "gpu": gpu}


def _constants(launch: Launch) -> dict:
    r = launch.study.resources
    return {"run_dir": launch.run.location, "device": launch.device,
            "threads": r.torch_threads or max(1, int(r.cpu))}


def _run_config(launch: Launch, callbacks: list) -> tune.RunConfig:
    return tune.RunConfig(
        name=launch.experiment, storage_path=launch.run.location, verbose=0, callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=launch.study.resources.max_failures),
        # the two newest checkpoints: a corrupted latest one falls back to the one before
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )


def _fit(tuner: tune.Tuner) -> None:
    """`tuner.fit()`; a storage error (full disk, permissions) raised in a callback surfaces as the
    OSError it is, not wrapped in Tune's traceback text, so the CLI can say it in one line."""
    try:
        tuner.fit()
    except TuneError as e:
        cause = e.__context__
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        if cause is None:
            raise
        raise cause from None


def run_grid(launch: Launch) -> None:
    """The comparison: every entry run to full length, FIFO, no early stopping."""
    space = {**_constants(launch), "entry": tune.grid_search(launch.entries)}
    tuner = tune.Tuner(
        tune.with_resources(trainable, _resources(launch.study, launch.device)),
        param_space=space,
        tune_config=tune.TuneConfig(
            reuse_actors=True, max_concurrent_trials=launch.study.resources.max_concurrent,
            trial_dirname_creator=lambda t: t.config["entry"]["trial_id"],
            trial_name_creator=lambda t: t.config["entry"]["trial_id"]),
        run_config=_run_config(launch, [SweepCallback(launch.run, launch.progress)]),
    )
    _fit(tuner)


class OptunaSpace:
    """Define-by-run space (picklable: Tune saves the searcher). The arm is fixed by the trial
    number, so each arm gets exactly n_trials; its own parameter (λ or λ_awd) and lr are
    suggested, and parameters of other arms are never suggested (a conditional space)."""

    def __init__(self, study: Study):
        self.study = study

    def __call__(self, trial) -> dict:
        arms, space = self.study.methods, self.study.search.space
        arm = arms[trial.number % len(arms)]
        name = f"{arm.name}.{arm.param}"
        _suggest(trial, name, space.get(name), arm.values)
        _suggest(trial, "lr", space.get("lr"), self.study.lr)
        return {"method": arm.name}


def optuna_space(study: Study) -> OptunaSpace:
    return OptunaSpace(study)


def _suggest(trial, name: str, rng, choices: tuple[float, ...]) -> None:
    if rng is not None:
        trial.suggest_float(name, rng.low, rng.high, log=rng.log)
    else:
        trial.suggest_categorical(name, list(choices))


def make_sampler(study: Study):
    import optuna

    s = study.search
    samplers = {"tpe": lambda: optuna.samplers.TPESampler(seed=s.seed),
                "random": lambda: optuna.samplers.RandomSampler(seed=s.seed),
                "gp": lambda: optuna.samplers.GPSampler(seed=s.seed),
                "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=s.seed)}
    return samplers[s.sampler]()


def run_optuna(launch: Launch, restore: bool = False) -> None:
    """The tuning stage: Optuna proposes (arm, λ or λ_awd, lr); each is trained on its seeds."""
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    study = launch.study
    path = launch.run.uri(launch.experiment)
    trainable_fn = tune.with_resources(trainable, _resources(study, launch.device))
    callbacks = [SweepCallback(launch.run, launch.progress)]
    if restore:
        tuner = tune.Tuner.restore(path, trainable_fn, resume_errored=True)
        tuner._local_tuner._run_config.callbacks = callbacks  # callbacks are not restored (RunConfig docs)
        _fit(tuner)
        return
    storage = None
    if study.search.storage:
        import optuna

        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(Path(study.search.storage).expanduser())))
    search = OptunaSearch(space=optuna_space(study), metric="objective", mode="max",
                          sampler=make_sampler(study), storage=storage,
                          study_name=study.name if storage else None)
    scheduler = None
    if study.search.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="training_iteration", metric="objective", mode="max",
                                  max_t=study.train.epochs,
                                  grace_period=study.search.grace_period,
                                  reduction_factor=study.search.reduction_factor)
    tuner = tune.Tuner(
        trainable_fn,
        param_space={**_constants(launch), "study": study.to_dict()},
        tune_config=tune.TuneConfig(
            search_alg=search, scheduler=scheduler,
            num_samples=study.search.n_trials * len(study.methods), reuse_actors=True,
            max_concurrent_trials=study.resources.max_concurrent,
            trial_dirname_creator=lambda t: f"optuna-{t.trial_id}"),
        run_config=_run_config(launch, callbacks),
    )
    _fit(tuner)


def check_gpu(resources: dict, device: str) -> None:
    if device == "cuda" and resources.get("GPU", 0) <= 0:
        raise UserError("--device gpu", "the Ray cluster has no GPU (trials would wait forever)",
                        "run with --device cpu, or connect to a cluster with GPUs (--address)")



def run_tasks(fn, arg_list: list[tuple], resources: dict, on_done) -> None:
    """Run `fn(*args)` for each args as Ray tasks; `on_done(index, result, error)` as each finishes."""
    remote = ray.remote(max_retries=1, **resources)(fn)
    pending = {remote.remote(*args): i for i, args in enumerate(arg_list)}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(ready[0])
        try:
            on_done(index, ray.get(ready[0]), None)
        except ray.exceptions.RayError as e:
            on_done(index, None, str(e).strip().splitlines()[-1][:300])
