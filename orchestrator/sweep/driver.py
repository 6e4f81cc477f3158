"""Sweeps: plan the trials of a study, hand what is not finished to an executor, keep the run directory tidy.

One code path serves a new sweep, `resume` and "extend": the run directory keeps the resolved study
(`study.yaml`); every driver run is a new experiment `sweep-NNN` that runs only the trials not yet
finished, and each unfinished trial continues from its newest readable checkpoint in its own record.
The driver computes the work (the grid's unfinished trials, or an Optuna stage that asks and tells) and
the executor (`orchestrator.sweep.executor`) runs it: Hydra's sweeper/launcher split.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import time

from orchestrator import signals
from orchestrator.errors import UserError
from orchestrator.run import lock, manifest, results
from orchestrator.run.directory import check_writable, prepare
from orchestrator.run.layout import EXPERIMENT, LOG, MAX_LOG, STUDY, experiment
from orchestrator.run.storage import RunDir
from orchestrator.study.checks import check_fits, credential_warnings, require_cuda, tracker_destinations
from orchestrator.study.plan import grid_entries, planned_trials
from orchestrator.study.schema import Study
from orchestrator.sweep import confirm
from orchestrator.sweep.estimate import estimate
from orchestrator.sweep.executor import Executor
from orchestrator.sweep.live import Progress, clock
from orchestrator.sweep.work import GridWork, Work
from orchestrator.terminal import visible
from trials.files import TooLarge
from trials.schema import STATUSES


def run_study(study: Study, run: RunDir, *, executor: Executor, device: str, source: str | None = None,
              command: str = "sweep", break_lock: bool = False) -> int:
    """Run every unfinished trial of `study` in `run`; returns the exit status (1 if any failed).
    `source` (the study file) is where a problem found before the trials start is reported. The run
    directory's lock is held throughout (`orchestrator.run.lock`: `command` says who holds it;
    `break_lock` breaks a lease left by a driver that died)."""
    where = source or run.uri(STUDY)
    check_device(device, executor)
    executor.check(study, where)
    if executor.local:  # the cluster is this machine: check before anything is written or started
        check_fits(study, executor.nodes(), device, where, "this machine")
    check_writable(run)
    with lock.hold(run, command, break_lock):
        return run_locked(study, run, executor, device, where)


def run_locked(study: Study, run: RunDir, executor: Executor, device: str, where: str) -> int:
    """`run_study` once the run directory is this driver's."""
    prepare(run, study)
    for why in results.set_aside_damaged(run).values():
        print(f"warning: {visible(why)}: set aside under {run.uri('damaged')}/; the trial runs again",
              file=sys.stderr)
    planned = planned_trials(study)
    finished = results.finished_trials(run)
    work: Work
    if study.search.kind == "grid":
        work = GridWork(grid_entries(study, skip=finished))
    else:
        from orchestrator.sweep.optuna import OptunaWork

        work = OptunaWork(run, study)
    if not work.total and not confirm.pending(run, study, finished)[0]:
        return nothing_to_run(run, study, planned)
    with open_log(run) as sink:
        live = Progress(total=planned, already_done=len(finished), sink=sink)
        live.on_trial_end = Refresh(run, live)
        try:
            resources = executor.start()
            # after the executor started (`ray.init` installs its own SIGTERM handler: a stack dump and an abort)
            with signals.graceful_stop():
                try:
                    launch(study, run, work, executor, resources, device, where, live, planned, len(finished))
                finally:
                    counts = results.consolidate(run)
            signals.check()
        except signals.Interrupted as stop:
            executor.stop()
            live.say(signals.stop_line(run.location, stop))
            return stop.exit_status
        man = manifest.read_manifest(run) or {}
        manifest.write_manifest(run, {**man, "finished": manifest.now()})
        if study.search.kind == "optuna":
            from orchestrator.sweep.optuna import write_best_grid

            live.say(f"best configurations as a grid study: {write_best_grid(run, study)}")
        status = closing_line(run, live, counts)  # inside the log's block: its last line is the summary
    executor.stop()
    return status


class Refresh:
    """Rewrite the result files when a trial ends, so that a user (or `decaylab report`, which cannot take
    the lock the sweep holds) reads the trials that ended so far. At most once per `every` seconds: the
    files grow with the run, and trials of seconds ending together would otherwise rewrite them each time;
    the sweep's end always writes them."""

    every = 30.0

    def __init__(self, run: RunDir, live: Progress):
        self.run, self.live, self.last = run, live, -math.inf

    def __call__(self) -> None:
        if time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        try:
            results.consolidate(self.run)
        except OSError as e:  # the sweep goes on: its end writes them again
            self.live.say(f"warning: the result files could not be refreshed ({e.strerror or e})")


def launch(study: Study, run: RunDir, work: Work, executor: Executor, resources: dict, device: str, where: str,
           live: Progress, planned: int, finished: int) -> None:
    """Record the new experiment in the manifest, say what runs where, and let the executor run the work."""
    if not executor.local:
        check_fits(study, executor.nodes(), device, where, "the Ray cluster")
    use = resolve_device(device, resources, study)
    check_gpu(resources, use)
    name = next_experiment(run)
    man = manifest.manifest(run, study, planned, resources)
    manifest.write_manifest(run, {**man, "experiments": sorted({*man["experiments"], name})})
    todo = planned - finished
    live.say(f"{study.name}: {todo} trials to run ({planned} planned, {finished} already finished) on "
             f"{describe(resources, use)} → {run.location}")
    live.say(estimate(study, todo, cpus=resources.get("CPU"), device=use, measure=False).text())
    for line in tracker_destinations(study):
        live.say(f"tracker: {line}")
    for warning in credential_warnings(study, os.environ):
        live.say(f"warning: {warning}")
    if work.total:
        executor.run(work, run=run, experiment=name, study=study, device=use, live=live)
    signals.check()
    entries, notes = confirm.pending(run, study, results.finished_trials(run))
    for note in notes:
        live.say(f"warning: {note}")
    if entries:  # the tuning stage is over: its selections are final
        live.say(f"confirmation: {len(entries)} trials of the selected configurations on fresh seeds")
        again = next_experiment(run) if work.total else name
        man = manifest.read_manifest(run) or man
        manifest.write_manifest(run, {**man, "experiments": sorted({*man.get("experiments", []), again})})
        executor.run(GridWork(entries), run=run, experiment=again, study=study, device=use, live=live)


def nothing_to_run(run: RunDir, study: Study, planned: int) -> int:
    counts = results.consolidate(run)
    man = manifest.read_manifest(run)
    if man is not None and man.get("finished") is None:  # killed after its last trial: complete now
        manifest.write_manifest(run, {**man, "finished": manifest.now()})
    print(f"nothing to run: all {planned} trials of {study.name} are finished in {run.location}", file=sys.stderr)
    return closing_line(run, counts=counts)


def next_experiment(run: RunDir) -> str:
    """A new experiment `sweep-NNN`, after the highest one there. Locally its directory is made here, by
    `mkdir`, which fails on any name already taken (a dangling link too, which a listing leaves out): a name
    is never returned twice. On object stores, which have no directories, the run directory's lock makes
    the listing this driver's alone."""
    numbers = [int(m.group(1)) for n in run.listdir() if (m := EXPERIMENT.match(n))]
    number = max(numbers, default=-1) + 1
    if not run.local:
        return experiment(number)
    root = run.inside()
    while True:
        try:
            os.mkdir(os.path.join(root, experiment(number)))
            return experiment(number)
        except FileExistsError:
            number += 1


def check_device(flag: str, executor: Executor) -> None:
    """Fail before anything starts when a GPU is demanded on this machine and it has none."""
    if flag == "gpu" and executor.local:
        require_cuda("--device gpu", "use --device cpu (or auto), or --address a Ray cluster with GPUs")


def check_gpu(resources: dict, device: str) -> None:
    if device == "cuda" and resources.get("GPU", 0) <= 0:
        raise UserError("--device gpu", "the cluster has no GPU (trials would wait forever)",
                        "run with --device cpu, or connect to a cluster with GPUs (--address)")


def resolve_device(flag: str, resources: dict, study: Study) -> str:
    has_gpu = resources.get("GPU", 0) > 0
    if flag == "gpu":
        return "cuda"
    if flag == "cpu":
        return "cpu"
    return "cuda" if has_gpu and study.resources.gpu > 0 else "cpu"


def describe(resources: dict, device: str) -> str:
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    return f"{cpus:g} CPUs{f', {gpus:g} GPUs' if gpus else ''} ({device})"


@contextlib.contextmanager
def open_log(run: RunDir):
    """`RUN_DIR/sweep.log`, appended line by line as the sweep goes (local run directories); on object
    storage, where nothing can be appended, the lines are written once at the end."""
    if run.local:
        with run.open_append(LOG) as f:
            yield f
        return
    buffer = io.StringIO()
    try:
        yield buffer
    finally:
        try:
            old = run.read_text(LOG, cap=MAX_LOG) if run.exists(LOG) else ""
        except TooLarge:  # kept whole under another name; the log starts again
            run.move((LOG,), (f"{LOG}.old",))
            old = f"(earlier lines: {LOG}.old)\n"
        run.write_atomic((old + buffer.getvalue()).encode(), LOG)


def closing_line(run: RunDir, live: Progress | None = None, counts: dict[str, int] | None = None) -> int:
    """The closing line; `counts` (trials by status) as `results.consolidate` returned them."""
    if counts is None:
        counts = {}
        for state in results.trial_states(run).values():
            counts[state["status"]] = counts.get(state["status"], 0) + 1
    text = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s))
    elapsed = f" in {clock(time.monotonic() - live.started)}" if live else ""
    say = live.say if live else (lambda line: print(line, file=sys.stderr))
    say(f"done{elapsed}: {text or 'no trials'} → {run.location}")
    if counts.get("failed"):
        say(f"  {counts['failed']} trial(s) failed: see `decaylab status {run.location}`; "
            f"`decaylab resume {run.location}` retries them")
        return 1
    return 0
