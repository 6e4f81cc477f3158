"""The Ray Tune executor: each entry a Ray trial, drawn from the sweep's work by a Tune searcher.

A Ray trial's config is its entry's key and flat parameters; the trainable rebuilds the member trials
from them and the run directory's recorded study, and trains them through `orchestrator.run.trial`,
reporting once per epoch. Ray's own checkpoints and pickled experiment state are never read: a
retried trial, `resume` and "extend" all continue from the trials' records.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import ray
from ray import tune
from ray.tune.error import TuneError
from ray.tune.search import Searcher

from orchestrator import signals
from orchestrator.ray import cluster, trackers
from orchestrator.run import records, results, tracking, trial
from orchestrator.run.directory import recorded_study
from orchestrator.run.storage import RunDir
from orchestrator.study import plan
from orchestrator.study.checks import local_node
from orchestrator.study.plan import Entry
from orchestrator.study.schema import Study
from trials.config import TrialConfig
from trials.evaluation import sanity_problems


class Live(Protocol):
    """The sweep's live view (`orchestrator.sweep.live.Progress`)."""

    def say(self, text: str) -> None: ...

    def tick(self) -> None: ...

    def trial_started(self, trial: str) -> None: ...

    def result(self, trial: str, arm: str, val_robust: float, epoch: int = 0, epochs: int = 0) -> None: ...

    def finished(self, trial: str, status: str) -> None: ...


class Work(Protocol):
    """The sweep's work (`orchestrator.sweep.work`)."""

    total: int

    def next(self) -> Entry | None: ...

    def epoch(self, entry: Entry, report: dict) -> bool: ...

    def ended(self, entry: Entry, status: str, report: dict) -> None: ...


class RayExecutor:
    """Trials as Ray Tune trials on a local Ray cluster or one joined by `address` (or RAY_ADDRESS)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None, dashboard: bool = False):
        self.address, self.num_cpus, self.dashboard = address, num_cpus, dashboard
        self.local = not (address or os.environ.get("RAY_ADDRESS"))
        cluster.check_address(address)

    def check(self, study: Study, where: str) -> None:
        """Everything a study asks of trackers, Ray's loggers do."""

    def start(self) -> dict[str, float]:
        return cluster.connect(self.address, num_cpus=self.num_cpus, dashboard=self.dashboard)

    def nodes(self) -> list[dict[str, float]]:
        if self.local and not ray.is_initialized():  # the cluster it will start: this machine
            return [local_node(self.num_cpus)]
        return cluster.node_resources()

    def run(self, work: Work, *, run: RunDir, experiment: str, study: Study, device: str, live: Live) -> None:
        if work.total == 0:
            return
        keys: dict[str, Entry] = {}  # Ray trial id → its entry
        gpu = study.resources.gpu if device == "cuda" else 0.0
        resources = {"cpu": study.resources.cpu, "gpu": gpu or (1.0 if device == "cuda" else 0.0)}
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space={"run_dir": run.location, "device": device,
                         "threads": plan.threads(study)},
            tune_config=tune.TuneConfig(
                search_alg=EntrySearcher(work, keys), num_samples=work.total, reuse_actors=True,
                max_concurrent_trials=study.resources.max_concurrent,
                trial_dirname_creator=trial_key, trial_name_creator=trial_key),
            run_config=tune.RunConfig(
                name=experiment, storage_path=run.location, verbose=0,
                callbacks=[SweepCallback(run, live, work, keys), *trackers.callbacks(study, run)],
                stop=WorkStopper(work, keys),
                failure_config=tune.FailureConfig(max_failures=study.resources.max_failures)),
        )
        with exit_with_lost_cluster(run, live, cluster.gcs_address()):
            fit(tuner)
        trackers.finish(study, run)

    def run_tasks(self, fn: Callable, arg_list: list[tuple], resources: dict,
                  on_done: Callable[[int, Any, str | None], None]) -> None:
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

    def stop(self) -> None:
        cluster.disconnect()


def trial_key(trial) -> str:
    return trial.config["key"]


def fit(tuner: tune.Tuner) -> None:
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


# ----------------------------------------------------------------------------- driver side


class EntrySearcher(Searcher):
    """Tune's source of trials: the next entry of the sweep's work, as that entry's key and flat parameters.
    Its state is never saved: decaylab resumes from the trials' records, not from Tune's."""

    def __init__(self, work: Work, keys: dict[str, Entry]):
        super().__init__()
        self.work, self.keys = work, keys

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        if signals.stopping():
            return Searcher.FINISHED
        entry = self.work.next()
        if entry is None:
            return Searcher.FINISHED
        self.keys[trial_id] = entry
        return {"key": entry.key, **entry.params}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """The sweep's callback tells the work how the entry ended (it knows failed from stopped)."""

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Nothing to save (see the class)."""


class WorkStopper(tune.Stopper):
    """Stops an entry when the work says so after one of its epochs (early stopping), and the whole
    experiment once SIGTERM or SIGINT has arrived (`orchestrator.signals`)."""

    def __init__(self, work: Work, keys: dict[str, Entry]):
        self.work, self.keys = work, keys

    def __call__(self, trial_id: str, result: dict) -> bool:
        entry = self.keys.get(trial_id)
        return entry is not None and result.get("status") == "running" and self.work.epoch(entry, result)

    def stop_all(self) -> bool:
        return signals.stopping()


class SweepCallback(tune.Callback):
    """Driver side: the live view, failed and stopped trials' records, and the work told how entries ended."""

    def __init__(self, run: RunDir, live: Live, work: Work, keys: dict[str, Entry]):
        self.run, self.live, self.work, self.keys = run, live, work, keys

    def __getstate__(self) -> dict:  # pickled with Tune's experiment state: keep it light
        return {"run": self.run, "live": None, "work": None, "keys": {}}

    def on_step_end(self, iteration, trials, **info):
        if self.live:
            self.live.tick()

    def on_trial_start(self, iteration, trials, trial, **info):
        for cfg in self._entry(trial).members:
            records.clear_error(self.run, cfg.trial_id)
        self.live.trial_started(trial_key(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("warning"):
            self.live.say(f"warning: {result['warning']}")
        self.live.result(trial_key(trial), result.get("arm", "?"), result.get("objective", math.nan),
                         result.get("epoch", 0), result.get("epochs", 0))

    def on_trial_complete(self, iteration, trials, trial, **info):
        if signals.stopping():  # cut short by a stop signal: it resumes from its record
            return
        status = trial.last_result.get("status", "ok")
        if trial.last_result.get("epoch") is None:
            status = "failed"  # a trial that reports nothing is an error, not a success
        elif status == "running":  # ended without finishing: stopped early by the work (pruned)
            status = "stopped"
            for cfg in self._entry(trial).members:
                if records.read_result(self.run, cfg.trial_id) is None:
                    records.record_stopped(self.run, cfg.trial_id, cfg.to_dict())
        self._finish(trial, status)

    def on_trial_error(self, iteration, trials, trial, **info):
        if signals.stopping():  # its worker went down with the sweep: not a failure of the trial
            return
        message = error_message(trial)
        for cfg in self._entry(trial).members:
            records.record_error(self.run, cfg.trial_id, message, cfg.to_dict())
        where = f" (traceback: {trial.error_file})" if trial.error_file else ""
        self.live.say(f"trial {trial_key(trial)} failed: {message}{where}")
        self._finish(trial, "failed")

    def _entry(self, trial) -> Entry:
        return self.keys[trial.trial_id]

    def _finish(self, trial, status: str) -> None:
        entry = self._entry(trial)
        for cfg in entry.members:
            if status not in results.FINISHED:  # a trial that finished exported its parts itself
                results.export_trial(self.run, cfg.trial_id)
            self._warn_sanity(cfg.trial_id)
        self.work.ended(entry, status, trial.last_result or {})
        self.live.finished(trial_key(trial), status)

    def _warn_sanity(self, trial_id: str) -> None:
        result = records.read_result(self.run, trial_id)
        for row in (result or {}).get("evaluations", []):
            for problem in sanity_problems(row):
                self.live.say(f"warning: {trial_id} ({row['checkpoint']}, sparsity {row['sparsity']:g}): {problem}")


def error_message(trial) -> str:
    """The last error line of a failed Ray trial (its exception, not Ray's wrapping of it)."""
    text = ""
    with contextlib.suppress(Exception):  # the error file may not be readable from here
        text = trial.get_error() or ""
    if not text and trial.error_file and os.path.exists(trial.error_file):
        text = Path(trial.error_file).read_text()
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    causes = [ln for ln in lines if ln.split(":")[0].endswith(("Error", "Exception"))]
    return (causes[-1] if causes else (lines[-1] if lines else "unknown error"))[:500]


@contextlib.contextmanager
def exit_with_lost_cluster(run: RunDir, live: Live, gcs: str, poll_s: float = 0.25) -> Iterator[None]:
    """While the block runs: once a stop signal has arrived and the Ray cluster is gone too (its GCS no
    longer accepts connections — a signal sent to the whole process group or batch job ends Ray's processes
    as well), consolidate the result files, say the stop line and exit with 128 + the signal at once: Tune's
    orderly stop would wait a minute for the dead cluster and abort. Nothing is lost by not waiting: every
    finished trial is in its record and every running one has a checkpoint at its last finished epoch."""
    lock, done = threading.Lock(), threading.Event()

    def watch() -> None:
        while not signals.wait(poll_s):
            if done.is_set():
                return
        heard = time.monotonic()
        while not done.is_set():
            if cluster.connection_error(gcs, timeout=1.0):
                with lock:
                    if done.is_set():  # the block ended meanwhile: the orderly path says the rest
                        return
                    stop = signals.Interrupted(signals.received)
                    try:
                        results.consolidate(run)
                    finally:
                        line = signals.stop_line(run.location, stop)
                        live.say(f"{line} (the stop signal also ended Ray's processes)")
                        signals.exit_now(stop.exit_status)
            # the GCS stops accepting connections within milliseconds of its signal: look often at first
            done.wait(0.01 if time.monotonic() - heard < 2.0 else poll_s)

    threading.Thread(target=watch, name="decaylab-lost-cluster", daemon=True).start()
    try:
        yield
    finally:
        with lock:
            done.set()


# ----------------------------------------------------------------------------- trial side


@functools.lru_cache(maxsize=4)
def _study(location: str, digest: str) -> Study:
    return recorded_study(RunDir(location), check_data=False)


def study_of(run: RunDir) -> Study:
    """The run directory's recorded study, read once per worker process (and again only if it changed)."""
    from orchestrator.run.layout import STUDY

    return _study(run.location, hashlib.sha256(run.read_bytes(STUDY)).hexdigest())


EXECUTOR_KEYS = ("run_dir", "device", "threads", "key")  # the config's keys that are not the entry's parameters


def entry_members(study: Study, config: dict) -> tuple[TrialConfig, ...]:
    """The member trials of the entry whose flat parameters a trial's Tune config carries."""
    return plan.members(study, {k: v for k, v in config.items() if k not in EXECUTOR_KEYS})


def trainable(config: dict) -> None:
    """The Ray Tune function trainable: the entry's members trained from their records, one report per epoch
    (and one when every member had already ended)."""
    run = RunDir(config["run_dir"])
    members = entry_members(study_of(run), config)
    node = ray.get_runtime_context().get_node_id()
    first = True

    def report(trials: list[trial.RecordedTrial]) -> None:
        nonlocal first
        metrics = {**trial.progress(trials), "key": config["key"], "node": node,
                   "warning": "; ".join(t.warning for t in trials if t.warning) if first else "",
                   "timesteps_total": max(t.trainer.epoch for t in trials),
                   **tracking.member_metrics([(t.config, t.trainer.rows[-1]) for t in trials if t.trainer.rows])}
        if all(t.finished for t in trials):
            metrics |= {f"final/{k}": v for k, v in tracking.final_metrics(run, [t.config for t in trials]).items()}
        tune.report(metrics)
        first = False

    trial.train(run, members, device=config["device"], threads=config["threads"], after_epoch=report)
