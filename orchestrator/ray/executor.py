"""Everything that touches Ray Tune (the only module that imports `ray.tune`).

A Ray trial trains one or more *member* trials in lockstep (one for the grid comparison; one
per seed for an Optuna configuration) and reports once per epoch. Each member keeps its own
record in the run directory (`orchestrator.records`): its rows, checkpoints and result. A
member starts from its newest readable checkpoint there — on a Ray retry, on `resume` and on
"extend" alike — so Ray's own checkpoints and pickled experiment state are never needed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import math
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# Set before Ray starts so that local workers inherit them.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# decaylab stops a sweep on SIGINT itself (orchestrator.signals); Tune's handler would end the
# running trials as if they had completed
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Tune's experiment snapshot pickles every trial (its cost grows with the sweep; by default Tune spends up
# to 5% of the driver's time on it). decaylab never reads it — resume starts from the trials' own records —
# so it is taken every 5 minutes and at the end; on object-store storage the folders Ray's loggers write
# (TensorBoard events) are uploaded with it.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "300")
# decaylab passes Ray's loggers itself (`tune_trackers.callbacks`): the study says which trackers run
os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
# What Tune sets in every trial actor's runtime_env (ray.tune.execution.class_cache.DEFAULT_ENV_VARS), set
# here so that a local cluster's workers inherit it (`trials_in_prestarted_workers`)
os.environ.setdefault("PL_DISABLE_FORK", "1")

import ray
import torch
from ray import tune
from ray.tune.error import TuneError
from ray.tune.execution import class_cache
from ray.tune.search import BasicVariantGenerator

from orchestrator import faults, optuna_stage, records, results, signals, tracking
from orchestrator.errors import UserError
from orchestrator.progress import Progress
from orchestrator.spec import Study, study_from_dict
from orchestrator.storage import RunDir
from trials.config import TrialConfig
from trials.evaluation import sanity_problems
from trials.train import Trainer, start_trial, step

if TYPE_CHECKING:  # the trackers' module imports their packages: the driver's business only
    from orchestrator.tune_trackers import Members

log = logging.getLogger("decaylab.sweep")
# passed to the workers of a cluster joined by address (they do not inherit this process's environment)
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
    global _opened, _local
    if not ray.is_initialized():
        kwargs = init_kwargs(address, num_cpus, dashboard, os.environ)
        if kwargs["address"] == "local":
            if dashboard:
                check_dashboard_installed()
            # Ray starts a local cluster with token authentication (unless RAY_AUTH_MODE says otherwise) and
            # says so in a warning on every start, telling how to opt out: the sweep's output keeps the
            # authentication, not the warning
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        preload = threading.Thread(target=preload_driver_modules, daemon=True)
        preload.start()
        ray.init(**kwargs)
        _opened = True
        _local = kwargs["address"] == "local"
        preload.join()
    return ray.cluster_resources()


_opened = False  # whether `connect` started or joined the Ray session (not one its caller had opened)
_local = False  # whether that session is a local cluster `connect` started (its workers inherit os.environ)


def disconnect() -> None:
    """Leave the Ray session `connect` opened (a local cluster: stop it) once a command is done with Ray.
    Done here, not left to Ray's exit hook, which first waits half a second for workers' log lines that
    decaylab does not stream (`log_to_driver=False`)."""
    if _opened:
        shutdown()


@contextlib.contextmanager
def trials_in_prestarted_workers() -> Iterator[None]:
    """While the block runs, Tune starts its trial actors without a `runtime_env` on a local cluster
    `connect` started, so that they take the worker processes Ray starts during `ray.init`.

    Tune gives every trial actor `runtime_env={"env_vars": ...}`: its defaults (`PL_DISABLE_FORK=1`) and
    this process's values of the variables it propagates. Ray matches idle workers by runtime_env, so
    such an actor never takes a prestarted worker: it waits for a new one (about 1–2 s, the sweep's
    first trials) while the prestarted ones stay idle. A local cluster's workers inherit this process's
    environment, which holds the same values (the defaults are set above, before `ray.init`; Tune reads
    the rest from `os.environ`), so the runtime_env adds nothing there. Elsewhere, or when this process
    holds another value of a default, Tune's runtime_env is kept."""
    defaults, propagated = class_cache.DEFAULT_ENV_VARS, class_cache.ENV_VARS_TO_PROPAGATE
    inherited = _local and all(os.environ.get(k) == v for k, v in defaults.items())
    if inherited:
        class_cache.DEFAULT_ENV_VARS, class_cache.ENV_VARS_TO_PROPAGATE = {}, set()
    try:
        yield
    finally:
        class_cache.DEFAULT_ENV_VARS, class_cache.ENV_VARS_TO_PROPAGATE = defaults, propagated


# Imported by the driver right after `ray.init` on the way to the first trial: Ray's MLflow and W&B
# integrations (and with them mlflow and wandb, where installed; 0.85 and 0.31 s here) by Tune counting the
# types of the callbacks it is given, whichever trackers the study names. `ray.init` mostly waits for the
# cluster's processes to start, so they are imported meanwhile, in a thread.
DRIVER_PRELOAD = ("ray.air.integrations.mlflow", "ray.air.integrations.wandb")


def preload_driver_modules() -> None:
    for name in DRIVER_PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # imported again where it is needed, and fails there if it must
            log.debug("preloading %s failed", name, exc_info=True)


def check_dashboard_installed() -> None:
    """`--dashboard` needs the dashboard's packages (ray[default]); without them `ray.init` fails with a
    bare exception after starting half a cluster."""
    try:  # what Ray itself imports to decide whether it can start the dashboard
        import ray.dashboard.optional_deps  # noqa: F401
    except ImportError:
        raise UserError("--dashboard", "Ray's dashboard is not installed here (it comes with ray[default])",
                        "pip install 'ray[default]' into this environment, or run without --dashboard") from None


def init_kwargs(address: str | None, num_cpus: int | None, dashboard: bool, environ) -> dict:
    """The arguments of `ray.init` (a pure function, so the safety defaults can be tested)."""
    kwargs = {"include_dashboard": dashboard, "log_to_driver": False, "logging_level": logging.WARNING,
              # Ray 2.60 starts its API server process (dashboard.py) even without the dashboard; with
              # include_dashboard=False (not None, which loads whatever is installed) it loads only the
              # usage-stats module (off: RAY_USAGE_STATS_ENABLED=0) and no frontend. No supported option
              # skips the process; bound to this machine all the same
              "dashboard_host": "127.0.0.1"}
    address = address or environ.get("RAY_ADDRESS")
    if address:
        return {"address": address, **kwargs,
                "runtime_env": {"env_vars": {k: environ[k] for k in RAY_ENV_KEYS if k in environ}}}
    # "local": always a fresh cluster of this process, never one a `ray start` left running. Its workers
    # inherit this process's environment, so no job runtime_env: with one (even env_vars alone) Ray leaves
    # the workers it starts during `ray.init` idle and starts new ones for every task (about 2 s later)
    return {"address": "local", "num_cpus": num_cpus, "num_gpus": torch.cuda.device_count(), **kwargs}


def node_resources() -> list[dict[str, float]]:
    """The resources of each live node (a trial must fit on one)."""
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def shutdown() -> None:
    """End the Ray session, whoever opened it; what `connect` knew about it ends with it."""
    global _opened, _local
    if ray.is_initialized():
        if _local:
            end_autoscaler_monitor()
        ray.shutdown()
    _opened = _local = False


# A local cluster's autoscaler monitor (a child process of the driver) answers SIGTERM by reporting its end
# to the GCS, which `ray.shutdown` has stopped just before: Ray waits a second for it, then kills it (the
# second every sweep spent exiting). It holds no state, so it is killed first. Found through /proc (Linux);
# elsewhere, or if Ray moves the script, nothing is found and Ray's second stays.
MONITOR_SCRIPT = "ray/autoscaler/_private/monitor.py"


def end_autoscaler_monitor() -> list[int]:
    """Kill the autoscaler monitor(s) among this process's children; their pids."""
    ended = []
    for pid in child_processes(os.getpid()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.decode(errors="replace").endswith(MONITOR_SCRIPT) for a in argv):
            with contextlib.suppress(ProcessLookupError):  # a child stays until its parent reaps it
                os.kill(pid, signal.SIGKILL)
                ended.append(pid)
    return ended


def child_processes(parent: int) -> list[int]:
    """The pids of `parent`'s child processes, from /proc (empty where there is none)."""
    pids = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    stat = Path(entry.path, "stat").read_text()
                except OSError:  # ended meanwhile
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == parent:  # the field after the state
                    pids.append(int(entry.name))
    return pids


def gcs_address() -> str:
    """`host:port` of the cluster's GCS (Ray's head process). Once it is gone, every call into Ray waits
    a minute for it and then aborts the process."""
    return ray.get_runtime_context().gcs_address


# ------------------------------------------------------------------------------ trainable


class Entries:
    """A grid's member configurations (trial id → the members' configuration dicts), written once to the
    experiment's directory as `ENTRIES_FILE` (JSON). A worker reads them once per process and keeps them
    for the trials it runs after: shipping the table with every trial would cost per trial what grows
    with the sweep (about 0.5 MB and 10 ms at 1,000 trials). What travels with the trainable is where
    the table is.

    Not in Ray's object store: an object the driver puts there lives on the node whose raylet holds it,
    and when that raylet stops (a batch scheduler cancelling the job stops the driver and the nodes
    together) Ray tries to recover the driver's lost objects and, the node's object store being gone,
    ends the driver with status 1 within about 30 ms, before it can stop as a stopped sweep does
    (`sweep.exit_with_lost_cluster`)."""

    def __init__(self, run: RunDir, experiment: str, entries: dict[str, list[dict]]):
        self.location, self.experiment = run.location, experiment
        run.write_atomic(json.dumps(entries).encode(), experiment, ENTRIES_FILE)

    def __getitem__(self, trial_id: str) -> list[dict]:
        return _fetched(self.location, self.experiment)[trial_id]


ENTRIES_FILE = "decaylab-entries.json"
_FETCHED: dict[tuple[str, str], dict[str, list[dict]]] = {}  # this worker's table: the latest sweep's only


def _fetched(location: str, experiment: str) -> dict[str, list[dict]]:
    key = (location, experiment)
    if key not in _FETCHED:
        table = json.loads(RunDir(location).read_bytes(experiment, ENTRIES_FILE))
        _FETCHED.clear()
        _FETCHED[key] = table
    return _FETCHED[key]


def with_entries(entries: Entries) -> Callable[[dict], None]:
    """`trainable` with the grid's `entries` bound (the function Tune registers: it carries where the
    table is, not the table)."""

    def trainable_(params: dict) -> None:
        trainable(params, entries)

    trainable_.__name__ = trainable_.__qualname__ = trainable.__name__
    return trainable_


def members_of(params: dict, entries: Entries | dict[str, list[dict]] | None = None) -> list[TrialConfig]:
    """The member trials of a Ray trial: a grid trial's by its id (`entries`: id → the members'
    configurations), an Optuna trial's from its sample."""
    if "trial" in params:
        return [TrialConfig.from_dict(m) for m in entries[params["trial"]]]
    study = study_from_dict(params["study"], "optuna trial", check_data=False)
    return optuna_stage.members(study, params)


def resume(run: RunDir, cfg: TrialConfig, device: str) -> tuple[Trainer, str]:
    """A member's trainer at its newest usable checkpoint, and a warning when one was skipped. A
    checkpoint is usable when it loads into the trainer (a foreign or damaged one falls back to the
    one before, not a failure on every retry) and the rows of all its epochs are there."""
    rows = len(records.read_epoch_rows(run, cfg.trial_id))
    ended = records.read_result(run, cfg.trial_id) is not None  # its rows are in result.json

    def use(state: dict | None) -> Trainer:
        if state is not None and state["epoch"] > rows and not ended:
            raise records.DamagedRecord(f"the rows of epochs {rows + 1}…{state['epoch']} are missing or damaged")
        return start_trial(cfg, state, device)

    trainer, warning = records.load_checkpoint(run, cfg.trial_id, use)
    if trainer.finished and not ended:
        records.write_result(run, trainer.state_dict())  # the process died between checkpoint and result
        results.export_trial(run, cfg.trial_id)
    return trainer, warning


def evaluations_done(tr: Trainer) -> int:
    """Evaluated epochs so far (every `eval.every`-th and the last): ASHA's time axis."""
    every, epochs = tr.config.eval.every, tr.config.train.epochs
    return tr.epoch // every + (tr.epoch == epochs and epochs % every != 0)


def member_objective(tr: Trainer) -> float:
    """Best val robust accuracy so far (the selection rule's score, 0 once diverged, NaN before any)."""
    if tr.status == "diverged":
        return 0.0
    return tr.best["val_robust_acc"] if tr.best else math.nan


def trainable(params: dict, entries: Entries | None = None) -> None:
    """The Ray Tune function trainable: train the members, report every epoch."""
    members = members_of(params, entries)
    torch.set_num_threads(params["threads"])
    run = RunDir(params["run_dir"])
    started = [resume(run, cfg, params["device"]) for cfg in members]
    trainers = [tr for tr, _ in started]
    warning = "; ".join(w for _, w in started if w)  # shown by the driver with the first result
    reported = False
    while not all(tr.finished for tr in trainers) or not reported:
        for tr in trainers:
            if not tr.finished:
                row, state = step(tr)  # also kept in tr.rows, for the trackers' metrics below
                records.write_epoch_row(run, tr.config.trial_id, row)  # the row first, then its checkpoint
                records.write_checkpoint(run, tr.config.trial_id, state)
                if tr.finished:
                    records.write_result(run, state)
                    # its result parts too: here they are written in parallel across the workers,
                    # not one after the other by the driver (which exports failed and stopped trials)
                    results.export_trial(run, tr.config.trial_id)
        objectives = [member_objective(tr) for tr in trainers]
        finite = [v for v in objectives if not math.isnan(v)]
        metrics = {"objective": sum(finite) / len(finite) if len(finite) == len(objectives) else math.nan,
                   "epoch": max(tr.epoch for tr in trainers), "evaluations": min(map(evaluations_done, trainers)),
                   "epochs": trainers[0].config.train.epochs, "method": members[0].method,
                   "node": ray.get_runtime_context().get_node_id(), "warning": warning,
                   "status": "running" if not all(tr.finished for tr in trainers) else
                   ("ok" if all(tr.status == "ok" for tr in trainers) else "diverged"),
                   # the trackers' x-axis (see tune_trackers), and every member's latest per-epoch metrics
                   "timesteps_total": max(tr.epoch for tr in trainers),
                   **tracking.member_metrics([(tr.config, tr.rows[-1]) for tr in trainers if tr.rows])}
        tune.report(metrics)
        reported, warning = True, ""
        for tr in trainers:
            faults.maybe_fail(tr.config.trial_id, tr.epoch)


# ------------------------------------------------------------------------------- callback


class SweepCallback(tune.Callback):
    """Driver side: live progress, failed-trial records, and the result parts of trials that did not finish."""

    def __init__(self, run: RunDir, progress: Progress, members: Members):
        self.run = run
        self.progress = progress
        self.members = members

    def __getstate__(self) -> dict:  # pickled with the experiment state: keep it light
        return {"run": self.run, "progress": None, "members": None}

    def on_step_end(self, iteration, trials, **info):
        if self.progress:
            self.progress.tick()

    def on_trial_start(self, iteration, trials, trial, **info):
        for cfg in self.members(trial.config):
            records.clear_error(self.run, cfg.trial_id)
        if self.progress:
            self.progress.trial_started(trial_label(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.progress and result.get("warning"):
            self.progress.say(f"warning: {result['warning']}")
        if self.progress:
            self.progress.result(trial_label(trial), result.get("method", "?"), result.get("objective", math.nan),
                                 result.get("epoch", 0), result.get("epochs", 0))

    def on_trial_complete(self, iteration, trials, trial, **info):
        if signals.stopping():  # cut short by a stop signal: it resumes from its record
            return
        status = trial.last_result.get("status", "ok")
        if trial.last_result.get("epoch") is None:
            status = "failed"  # a trial that reports nothing is an error, not a success
        elif status == "running":  # ended without finishing: the tuning scheduler (ASHA) stopped it
            status = "stopped"
            for cfg in self.members(trial.config):
                records.record_stopped(self.run, cfg.trial_id, cfg.to_dict())
        self._finish(trial, status)

    def on_trial_error(self, iteration, trials, trial, **info):
        if signals.stopping():  # its worker went down with the sweep: not a failure of the trial
            return
        message = _error_message(trial)
        for cfg in self.members(trial.config):
            records.record_error(self.run, cfg.trial_id, message, cfg.to_dict())
        if self.progress:
            where = f" (traceback: {trial.error_file})" if trial.error_file else ""
            self.progress.say(f"trial {trial_label(trial)} failed: {message}{where}")
        self._finish(trial, "failed")

    def _finish(self, trial, status: str) -> None:
        for cfg in self.members(trial.config):
            if status not in results.FINISHED:  # a trial that finished exported its parts itself
                results.export_trial(self.run, cfg.trial_id)
            self._warn_sanity(cfg.trial_id)
        if self.progress:
            self.progress.finished(trial_label(trial), status)

    def _warn_sanity(self, trial_id: str) -> None:
        result = records.read_result(self.run, trial_id)
        for row in (result or {}).get("evaluations", []):
            for problem in sanity_problems(row):
                if self.progress:
                    self.progress.say(f"warning: {trial_id} ({row['checkpoint']}, sparsity {row['sparsity']:g}): "
                                      f"{problem}")


def trial_label(trial) -> str:
    return trial.config.get("trial") or trial.trial_id


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


class StopOnSignal(tune.Stopper):
    """Ends the experiment once SIGTERM or SIGINT has arrived (`orchestrator.signals`)."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return signals.stopping()


def _run_config(launch: Launch, members: Members) -> tune.RunConfig:
    from orchestrator import tune_trackers  # the trackers' packages are imported by the driver only

    callbacks = [SweepCallback(launch.run, launch.progress, members),
                 *tune_trackers.callbacks(launch.study, launch.run, members)]
    return tune.RunConfig(
        name=launch.experiment, storage_path=launch.run.location, verbose=0, callbacks=callbacks,
        stop=StopOnSignal(), failure_config=tune.FailureConfig(max_failures=launch.study.resources.max_failures),
    )


def _fit(tuner: tune.Tuner) -> None:
    """`tuner.fit()`; a storage error (full disk, permissions) raised in a callback surfaces as the
    OSError it is, not wrapped in Tune's traceback text, so the CLI can say it in one line."""
    try:
        with trials_in_prestarted_workers():
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
    entries = {e["trial_id"]: e["members"] for e in launch.entries}
    # Trials carry their id only; the configurations travel once, in a file of the experiment's
    # directory (`Entries`), rather than in every trial's config. The ids are given as points to evaluate,
    # in study order: Tune's `grid_search` would deep-copy the whole list of ids for every trial it
    # generates (O(trials²) on the driver: 7 s at 1,000 trials).
    tuner = tune.Tuner(
        tune.with_resources(with_entries(Entries(launch.run, launch.experiment, entries)),
                            _resources(launch.study, launch.device)),
        param_space={**_constants(launch), "trial": None},  # the placeholder each point fills
        tune_config=tune.TuneConfig(
            # (the concurrency limit is the generator's own: Tune ignores max_concurrent_trials with one)
            search_alg=BasicVariantGenerator(points_to_evaluate=[{"trial": t} for t in entries],
                                             max_concurrent=launch.study.resources.max_concurrent or 0),
            num_samples=len(entries), reuse_actors=True,
            trial_dirname_creator=lambda t: t.config["trial"], trial_name_creator=lambda t: t.config["trial"]),
        run_config=_run_config(launch, functools.partial(members_of, entries=entries)),
    )
    _fit(tuner)


def run_optuna(launch: Launch, resumed: bool = False) -> None:
    """The tuning stage: Optuna proposes (arm, its hyperparameters, lr); each is trained on its seeds."""
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    study = launch.study
    if resumed:
        storage, name, samples = optuna_stage.continued_study(launch.run, study)
    else:
        storage = optuna_stage.journal(study) if study.search.storage else None
        name, samples = (study.name if storage else None), optuna_stage.planned(study)
    if samples == 0:
        return
    sampler = optuna_stage.make_sampler(study, done=optuna_stage.planned(study) - samples)
    search = OptunaSearch(space=optuna_stage.OptunaSpace(study), metric="objective", mode="max",
                          sampler=sampler, storage=storage, study_name=name)
    scheduler = None
    if study.search.scheduler == "asha":
        evaluations = -(-study.train.epochs // study.eval.every)
        scheduler = ASHAScheduler(time_attr="evaluations", metric="objective", mode="max", max_t=evaluations,
                                  grace_period=study.search.grace_period,
                                  reduction_factor=study.search.reduction_factor)
    tuner = tune.Tuner(
        tune.with_resources(trainable, _resources(study, launch.device)),
        param_space={**_constants(launch), "study": study.to_dict()},
        tune_config=tune.TuneConfig(
            search_alg=search, scheduler=scheduler, num_samples=samples, reuse_actors=True,
            max_concurrent_trials=study.resources.max_concurrent,
            trial_dirname_creator=lambda t: f"optuna-{t.trial_id}"),
        run_config=_run_config(launch, members_of),
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
