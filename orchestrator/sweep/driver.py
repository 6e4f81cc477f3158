"""Sweeps: plan the trials of a study, run what is not finished, keep the run directory tidy.

One code path serves a new sweep, `resume` and "extend": the run directory keeps the
resolved study (`study.yaml`); every driver run is a new Ray experiment `sweep-NNN` that
submits only the trials not yet finished, and each unfinished trial continues from its
newest readable checkpoint in its own record (`trials/<trial_id>/`). A study whose shared
settings changed is refused (its results would not be comparable); one whose grid grew just
runs the new points.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from orchestrator import feasibility, records, results, safe_yaml, signals
from orchestrator.errors import RunError, UserError
from orchestrator.progress import Progress, clock
from orchestrator.spec import Study, expand_grid, study_from_dict
from orchestrator.storage import RunDir, absolute, check_location
from trials.config import SHARED_SECTIONS
from trials.schema import STATUSES

STUDY_FILE = "study.yaml"
EXPERIMENT = re.compile(r"sweep-(\d{3,})$")


def run_dir_for(storage: str, study: Study) -> RunDir:
    check_location(storage)
    return RunDir(absolute(storage).rstrip("/") + "/" + study.name)


def open_run(location: str, check_data: bool = True) -> tuple[RunDir, Study]:
    """An existing run directory and its resolved study, or a clear error."""
    check_location(location)
    run = RunDir(absolute(location))
    if not run.exists():
        raise UserError(location, "no such run directory", "give <storage>/<study name>, e.g. results/digits")
    if not run.exists(STUDY_FILE):
        raise UserError(location, "not a decaylab run directory (it has no study.yaml)",
                        "give the directory `decaylab sweep` printed at its end")
    return run, recorded_study(run, check_data)


def recorded_study(run: RunDir, check_data: bool = True) -> Study:
    """The resolved study kept in the run directory. A damaged study.yaml (binary, truncated, edited
    into an invalid study) is called damaged, not blamed on one of its keys."""
    where = run.uri(STUDY_FILE)
    fix = ("rewrite it from `resolved_study` in manifest.json, or delete it and rerun `decaylab sweep` "
           "with the original study file and --storage")
    try:
        if run.size(STUDY_FILE) > safe_yaml.MAX_BYTES:
            raise UserError(where, f"larger than {safe_yaml.MAX_BYTES:,} bytes")
        raw = safe_yaml.load(run.read_text(STUDY_FILE), where)
        if not isinstance(raw, dict):
            raise UserError(where, "not a mapping of keys")
        return study_from_dict(raw, where, check_data, allow_large_grid=True)  # accepted when it started
    except UnicodeDecodeError as e:
        raise UserError(where, f"the run's study file is damaged (not UTF-8 text: {e.reason} at byte {e.start})",
                        fix) from None
    except OSError as e:
        raise UserError(where, f"the run's study file cannot be read ({e.strerror or e})", fix) from None
    except UserError as e:
        if e.reason.startswith("data.root"):  # the data is elsewhere on this machine: not damage
            raise
        raise UserError(e.where, f"the run's study file is damaged ({e.reason})", fix) from None


def check_writable(run: RunDir) -> None:
    """Fail before Ray starts if the run directory cannot be written (permissions, full disk)."""
    try:
        run.makedirs()
        run.write_atomic(b"ok\n", ".write_test")
        run.delete(".write_test")
    except OSError as e:
        raise RunError(run.location, f"the storage directory is not writable ({e.strerror or e})",
                       "choose another --storage, or free space / fix permissions") from None


def shared_differences(old: Study, new: Study) -> list[str]:
    """Dotted keys of shared settings that differ (the grid axes may differ: that is 'extend')."""
    diffs = []

    def walk(a, b, prefix):
        if isinstance(a, dict):
            for key in a:
                if prefix == "data" and key == "label_noise":
                    continue
                walk(a[key], b.get(key), f"{prefix}.{key}")
        elif a != b:
            diffs.append(f"{prefix}: {a!r} → {b!r}")

    old_d, new_d = old.to_dict(), new.to_dict()
    for section in SHARED_SECTIONS:
        walk(old_d[section], new_d[section], section)
    if old.search.kind != new.search.kind:
        diffs.append(f"search.kind: {old.search.kind} → {new.search.kind}")
    return diffs


def prepare(run: RunDir, study: Study) -> None:
    """Record the study in the run directory, refusing one whose shared settings changed."""
    if run.exists(STUDY_FILE):
        old = recorded_study(run)
        diffs = shared_differences(old, study)
        if diffs:
            raise UserError(run.location, "this run directory holds study "
                            f"{old.name!r} with other shared settings: " + "; ".join(diffs[:6]),
                            "results would not be comparable: give the study a new `name`, or use "
                            "another --storage (a grown grid of lr/seeds/λ is fine and runs only the new trials)")
    run.write_atomic(safe_yaml.dump(study.to_dict()).encode(), STUDY_FILE)


def manifest(run: RunDir, study: Study, planned: int, resources: dict | None) -> dict:
    old = results.read_manifest(run) or {}
    return {
        "study": study.name, "run_dir": run.location, "search": study.search.kind,
        "resolved_study": study.to_dict(), "trials_planned": planned,
        "git_commit": git_commit(), "versions": versions(), "hardware": hardware(resources),
        "started": old.get("started") or now(), "finished": None,
        "experiments": old.get("experiments", []),
    }


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("decaylab", "torch", "torchvision", "ray", "optuna", "pandas", "pyautoattack"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def hardware(resources: dict | None) -> dict:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"machine": platform.machine(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "gpus": gpus, "cluster": resources or {}}


def planned_trials(study: Study) -> int:
    if study.search.kind == "grid":
        return len(expand_grid(study))
    seeds = study.search.seeds_per_trial or len(study.seeds)
    return study.search.n_trials * len(study.methods) * seeds


def experiments(run: RunDir) -> list[str]:
    return sorted(n for n in run.listdir() if EXPERIMENT.match(n))


def next_experiment(run: RunDir) -> str:
    numbers = [int(EXPERIMENT.match(n).group(1)) for n in experiments(run)]
    return f"sweep-{max(numbers, default=-1) + 1:03d}"


ADDRESS_TIMEOUT_S = 10.0


def check_address(address: str | None) -> None:
    """Fail at once, before anything is written, when no Ray cluster answers at a `host:port`
    address: Ray itself keeps retrying the connection for minutes. `auto` and `local` are Ray's
    to resolve (a missing `auto` cluster fails quickly there)."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address or address in ("auto", "local"):
        return
    target = address.removeprefix("ray://")
    _, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"--address {address}", "not a Ray address",
                        "give host:port of the head node (e.g. 10.0.0.5:6379), `auto`, or ray://host:10001")
    if err := connection_error(target, ADDRESS_TIMEOUT_S):
        raise RunError(f"--address {address}", f"no Ray cluster answers there ({err.strerror or err})",
                       f"check the address with `ray status --address {target}`, or start the head node "
                       "with `ray start --head`")


def connection_error(host_port: str, timeout: float) -> OSError | None:
    """Why a TCP connection to `host:port` fails, or None when something accepts it."""
    host, _, port = host_port.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        return err
    return None


def decide_device(flag: str, address: str | None) -> None:
    """Fail before Ray starts when the cluster address does not answer, or when a GPU is demanded
    on a machine that has none (local runs)."""
    check_address(address)
    if flag == "gpu" and not (address or os.environ.get("RAY_ADDRESS")):
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device gpu", "this machine has no CUDA GPU",
                            "use --device cpu (or auto), or --address a Ray cluster with GPUs")


def run_study(study: Study, run: RunDir, *, address: str | None, device: str, num_cpus: int | None = None,
              dashboard: bool = False, source: str | None = None) -> int:
    """Run every unfinished trial of `study` in `run`; returns the exit status (1 if any failed).
    `source` (the study file) is where a problem found before the trials start is reported."""
    where = source or run.uri(STUDY_FILE)
    decide_device(device, address)
    local = not (address or os.environ.get("RAY_ADDRESS"))
    if local:  # the cluster is this machine: check before anything is written or started
        feasibility.check_fits(study, [feasibility.local_node(num_cpus)], device, where, "this machine")
    check_writable(run)
    prepare(run, study)
    for why in results.set_aside_damaged(run).values():
        print(f"warning: {why}: set aside under {run.uri(records.DAMAGED)}/; the trial runs again", file=sys.stderr)
    planned = planned_trials(study)
    finished = results.finished_trials(run)
    todo = []
    if study.search.kind == "grid":
        todo = [cfg for cfg in expand_grid(study) if cfg.trial_id not in finished]
        if not todo:
            counts = results.consolidate(run)
            man = results.read_manifest(run)
            if man is not None and man.get("finished") is None:  # killed after its last trial: complete now
                man["finished"] = now()
                results.write_manifest(run, man)
            print(f"nothing to run: all {planned} trials of {study.name} are finished in {run.location}",
                  file=sys.stderr)
            return summarize(run, counts=counts)
    from orchestrator import tune_backend as tb  # Ray starts only from here on

    with open_log(run) as sink:
        progress = Progress(total=planned, already_done=len(finished), sink=sink)
        try:
            resources = tb.connect(address, num_cpus=num_cpus, dashboard=dashboard)
            # after ray.init, which installs Ray's own SIGTERM handler (a stack dump and an abort)
            counts = None
            with signals.graceful_stop(), exit_with_lost_cluster(run, progress, tb.gcs_address()):
                try:
                    launch(study, run, todo, planned, len(finished), resources, device, local, where, progress)
                finally:
                    counts = results.consolidate(run)
            signals.check()
        except signals.Interrupted as stop:
            return interrupted(run, progress, stop)
        man = results.read_manifest(run) or {}
        man["finished"] = now()
        results.write_manifest(run, man)
        if study.search.kind == "optuna":
            from orchestrator.optuna_stage import write_best_grid

            progress.say(f"best configurations as a grid study: {write_best_grid(run, study)}")
        status = summarize(run, progress, counts)  # inside the log's block: its last line is the summary
    tb.disconnect()
    return status


def launch(study: Study, run: RunDir, todo: list, planned: int, finished: int, resources: dict, device: str,
           local: bool, where: str, progress: Progress) -> None:
    """Submit the unfinished trials as a new Ray Tune experiment of the run directory."""
    from orchestrator import tune_backend as tb
    from orchestrator.estimate import estimate

    if not local:
        feasibility.check_fits(study, tb.node_resources(), device, where, "the Ray cluster")
    use = resolve_device(device, resources, study)
    tb.check_gpu(resources, use)
    experiment = next_experiment(run)
    man = manifest(run, study, planned, resources)
    man["experiments"] = sorted({*man["experiments"], experiment})
    results.write_manifest(run, man)
    progress.say(f"{study.name}: {len(todo) or planned - finished} trials to run ({planned} planned, "
                 f"{finished} already finished) on {describe(resources, use)} → {run.location}")
    progress.say(estimate(study, len(todo) or planned - finished, cpus=resources.get("CPU"),
                          device=use, measure_gpu=False).text())
    spec = tb.Launch(run, experiment, study, use, progress,
                     entries=[{"trial_id": c.trial_id, "members": [c.to_dict()]} for c in todo])
    if study.search.kind == "grid":
        tb.run_grid(spec)
    else:
        tb.run_optuna(spec, resumed=bool(records.trial_ids(run)))


def interrupted(run: RunDir, progress: Progress, stop: signals.Interrupted) -> int:
    """After SIGTERM or SIGINT: Ray is shut down (no orphaned workers), finished trials are in the result
    files, and running ones continue from their last finished epoch on resume. Exit 128 + signal."""
    from orchestrator import tune_backend as tb

    tb.shutdown()
    progress.say(stop_line(run, stop))
    return stop.exit_status


def stop_line(run: RunDir, stop: signals.Interrupted) -> str:
    return (f"stopped by {stop}: finished trials are kept, running ones continue from their last finished epoch "
            f"— `decaylab resume {run.location}`")


@contextlib.contextmanager
def exit_with_lost_cluster(run: RunDir, progress: Progress, gcs_address: str,
                           poll_s: float = 0.25) -> Iterator[None]:
    """While the block runs: once a stop signal has arrived, if the Ray cluster is gone too (its GCS, at
    `gcs_address`, no longer accepts connections), consolidate the result files, say the stop line and
    exit with 128 + the signal at once.

    A stop signal sent to the whole process group (`timeout`, `kill -- -PGID`) or to every process of
    a job (systemd; a batch scheduler cancelling a job whose steps run the Ray nodes) also ends the
    cluster: the processes `ray.init` started here, or the head the sweep joined. Ray Tune's orderly stop
    would then wait a minute for the dead cluster and abort. Nothing is lost by not waiting: every
    finished trial is in its record and every running one has a checkpoint at its last finished epoch.
    The check starts the moment the signal arrives (`signals.wait`, from a thread, as the main thread is
    inside Ray) and repeats every `FAST_POLL_S` for `FAST_WINDOW_S` (a GCS stops accepting connections
    within about 15 ms of its signal), then every `poll_s`. (The driver keeps no object in Ray's object
    store, `tune_backend.Entries`: Ray would end it with status 1 when the node holding one stops.)"""
    lock, done = threading.Lock(), threading.Event()

    def watch() -> None:
        while not signals.wait(poll_s):
            if done.is_set():
                return
        heard = time.monotonic()
        while not done.is_set():
            if connection_error(gcs_address, timeout=1.0):
                with lock:
                    if done.is_set():  # the block ended meanwhile: the orderly path says the rest
                        return
                    stop = signals.Interrupted(signals.received)
                    try:
                        results.consolidate(run)
                    finally:
                        progress.say(stop_line(run, stop) + " (the stop signal also ended Ray's processes)")
                        signals.exit_now(stop.exit_status)
            done.wait(FAST_POLL_S if time.monotonic() - heard < FAST_WINDOW_S else poll_s)

    threading.Thread(target=watch, name="decaylab-lost-cluster", daemon=True).start()
    try:
        yield
    finally:
        with lock:
            done.set()


FAST_POLL_S, FAST_WINDOW_S = 0.01, 2.0


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
        with open(run.join("sweep.log"), "a", encoding="utf-8") as f:
            yield f
        return
    buffer = io.StringIO()
    try:
        yield buffer
    finally:
        old = run.read_text("sweep.log") if run.exists("sweep.log") else ""
        run.write_atomic((old + buffer.getvalue()).encode(), "sweep.log")


def summarize(run: RunDir, progress: Progress | None = None, counts: dict[str, int] | None = None) -> int:
    """The closing line; `counts` (trials by status) as `results.consolidate` returned them, which saves
    reading every record once more at the end of a large sweep."""
    if counts is None:
        counts = {}
        for state in results.trial_states(run).values():
            counts[state["status"]] = counts.get(state["status"], 0) + 1
    text = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s))
    elapsed = f" in {clock(time.monotonic() - progress.started)}" if progress else ""
    say = progress.say if progress else (lambda line: print(line, file=sys.stderr))
    say(f"done{elapsed}: {text or 'no trials'} → {run.location}")
    if counts.get("failed"):
        say(f"  {counts['failed']} trial(s) failed: see `decaylab status {run.location}`; "
            f"`decaylab resume {run.location}` retries them")
        return 1
    return 0
