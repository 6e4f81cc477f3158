"""Faults injected into real sweeps: a killed driver, SIGTERM and SIGINT, killed or failing trials,
corrupted checkpoints and records, crafted pickles, a diverging configuration, a report read mid-sweep,
storage that cannot be written.

The tests run the real CLI in subprocesses on one small study (4 trials × 4 epochs), compared with one
uninterrupted run of it (`reference`, made once per module with the local executor). What only Ray does
(its workers killed, its processes signalled with the driver, its retries) runs on a real local Ray
cluster (`@pytest.mark.ray`); the rest with the local executor, which records trials through the same
runner. Faults are injected by `helpers.faults` (the product has no fault switch). Each property is
checked on the files a user reads: the result parquet files and decaylab's own records under
`RUN_DIR/trials/<trial_id>/` (epoch-*.json, checkpoint-*.pt, result.json, error.json).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from helpers import faults as injected
from helpers.sweep import REPO, comparable, decaylab, start_decaylab, write_study

from orchestrator.cli import main
from orchestrator.run import layout, results
from orchestrator.run.status import status_text
from orchestrator.run.storage import RunDir

STUDY = {
    "name": "faults",
    "data": {"dataset": "digits", "subset": 400},
    "train": {"epochs": 4, "batch_size": 64},
    "methods": {"wd": {"kind": "fixed", "lambda": [5.0e-4]}, "awd": {"kind": "adaptive", "lambda_awd": [0.02]}},
    "lr": [0.02, 0.05],
}
TRIALS = 4
EPOCHS = 4
FINISHED = ("ok", "diverged")
NO_STACK_DUMP = ("Traceback", "*** SIG", "Stack trace", "core dumped", "PC: @")


# ------------------------------------------------------------------------------ helpers


def trial_dirs(run: Path) -> list[Path]:
    return sorted(p for p in (run / "trials").glob("*") if p.is_dir())


def finished_trials(run: Path) -> set[str]:
    return {p.name for p in trial_dirs(run) if (p / "result.json").exists()}


def newest_checkpoint(trial: Path) -> int:
    """The epoch of a trial's newest checkpoint (0 when it has none)."""
    names = (p.name for p in trial.glob("checkpoint-*.pt"))
    epochs = [int(m.group(1)) for name in names if (m := layout.CHECKPOINT_FILE.fullmatch(name))]
    return max(epochs, default=0)


def session_pids(sid: int) -> list[int]:
    """Processes of session `sid` (the driver started with start_new_session, and Ray's workers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # fields after "pid (comm)": state ppid pgrp session
                pids.append(int(stat.parent.name))
    return pids


def wait_for_session(sid: int, timeout: float = 30) -> None:
    """Wait for the processes of a driver's session to exit; kill any left after `timeout`, by pid."""
    deadline = time.monotonic() + timeout
    while session_pids(sid) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in session_pids(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill_driver(proc: subprocess.Popen) -> None:
    """SIGKILL the driver's process group, then wait for the Ray workers it leaves behind to die."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for_session(proc.pid)


def wait_until(proc: subprocess.Popen, condition, what: str, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert proc.poll() is None, f"the sweep ended before {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def assert_same_rows(run: Path, reference: Path) -> None:
    """Every trial exactly once, with the rows of the uninterrupted run."""
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    pd.testing.assert_frame_equal(comparable(epochs), comparable(pd.read_parquet(reference / "epochs.parquet")))
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == TRIALS and set(trials["status"]) == {"ok"} and trials["trial_id"].is_unique
    assert json.loads((run / "manifest.json").read_text())["finished"]


def file_bytes(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in ("epochs.parquet", "trials.parquet", "evaluations.parquet")}


def cli(argv: list) -> tuple[int, str, str]:
    """`decaylab ARGV` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def plant_pickles(run: Path, marker: Path) -> int:
    """Replace every pickle Ray left under sweep-*/ (tuner.pkl, params.pkl, ...) by one that creates
    `marker` when unpickled, and add a tuner.pkl to each experiment; returns how many."""
    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    paths = {*run.glob("sweep-*/**/*.pkl"), *(p / "tuner.pkl" for p in run.glob("sweep-*") if p.is_dir())}
    for path in paths:
        path.write_bytes(pickle.dumps(Payload()))
    return len(paths)


# --------------------------------------------------- the uninterrupted run, read while it writes


@dataclass
class Reference:
    run: Path
    log: str
    snapshots: list[tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)
    reports: list[tuple[int, str]] = field(default_factory=list)  # (status, stderr)


def snapshot(run: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """trials.parquet, then epochs.parquet (a later export only adds rows: epochs ⊇ trials)."""
    if not (run / "trials.parquet").exists():
        return None
    return pd.read_parquet(run / "trials.parquet"), pd.read_parquet(run / "epochs.parquet")


HELD = "wd-0.0005-lr0.05-s0"  # the study's second trial: held after its first epoch while reports run


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    """The study run once without faults; while it runs, the result files are read and `decaylab
    report` is run twice, as a user watching the sweep would.

    The second trial waits after its first epoch until both reports are written, so that they read the
    result files mid-way (one trial finished, the sweep holding the lock) however slow this machine is."""
    import analysis.report  # noqa: F401 - imported now, so that a report mid-sweep takes seconds

    base = tmp_path_factory.mktemp("reference")
    run = base / "results" / "faults"
    go = base / "go"
    env = injected.environment(base / "site", [{"trial": HELD, "epoch": 1, "action": "wait", "until": str(go)}])
    # one trial at a time: each trial's end is a separate export, with quiet moments in between
    proc = start_decaylab("sweep", write_study(base, **STUDY), "--storage", base / "results", "--executor", "local",
                          log=base / "log", env=env)
    ref = Reference(run, "")
    try:
        while proc.poll() is None:
            try:
                snap = snapshot(run)
            except Exception as e:  # a torn or half-written parquet file would land here
                ref.read_errors.append(f"{type(e).__name__}: {e}")
                continue
            if snap is not None:
                ref.snapshots.append(snap)
                while len(ref.reports) < 2:  # the sweep has written its first trial's results, and waits
                    status, _, err = cli(["report", run, "--out", base / f"report-{len(ref.reports)}"])
                    ref.reports.append((status, err))
                go.touch()
            time.sleep(0.2)
    finally:
        go.touch()
        if proc.poll() is None:
            kill_driver(proc)
    ref.log = (base / "log").read_text()
    assert proc.returncode == 0, ref.log[-3000:]
    return ref


@pytest.mark.slow
def test_reports_during_a_sweep_read_consistent_results(reference):
    assert not reference.read_errors
    assert reference.snapshots, "the sweep ended before its results could be read mid-way"
    # read mid-way: some snapshot lists fewer finished trials than the sweep has
    assert min(t["status"].isin(FINISHED).sum() for t, _ in reference.snapshots) < TRIALS
    final = comparable(pd.read_parquet(reference.run / "epochs.parquet"))
    for trials, epochs in reference.snapshots:
        assert not epochs.duplicated(["trial_id", "epoch"]).any()
        rows = epochs.groupby("trial_id").size()
        for t in trials.itertuples():
            assert rows.get(t.trial_id, 0) >= t.epochs_done
            if t.status in FINISHED:  # a finished trial's rows are final the moment it is listed
                mine = comparable(epochs[epochs["trial_id"] == t.trial_id])
                theirs = final[final["trial_id"] == t.trial_id].reset_index(drop=True)
                pd.testing.assert_frame_equal(mine.drop(columns="status"), theirs.drop(columns="status"))
    assert len(reference.reports) == 2
    for status, err in reference.reports:  # each ran while the sweep held the lock, from the files as they were
        assert status == 0 and "Traceback" not in err, err
        assert "reporting from its result files as they are" in err, err


@pytest.mark.slow
def test_the_sweep_log_is_appended_live_and_ends_with_the_summary(reference):
    log = (reference.run / "sweep.log").read_text().splitlines()
    assert any("trials to run" in line for line in log) and log[-1].startswith("done in ")
    assert sum(" done · " in line for line in log) >= TRIALS  # a progress line at each trial's end


# ------------------------------------------------------------------------- a killed driver

KILL_POINTS = {
    # at least one epoch checkpointed, no trial finished yet
    "before-any-trial-finished": lambda run: any(newest_checkpoint(t) for t in trial_dirs(run))
    and not finished_trials(run),
    # every trial has its result: the driver is exporting or about to
    "all-results-written": lambda run: len(finished_trials(run)) == TRIALS,
}


EXECUTORS = {"before-any-trial-finished": "ray", "all-results-written": "local"}


@pytest.mark.slow
@pytest.mark.parametrize("point", [pytest.param("before-any-trial-finished", marks=pytest.mark.ray),
                                   "all-results-written"])
def test_killed_driver_resumes_to_the_same_rows_without_reading_ray_pickles(reference, tmp_path, point):
    run = tmp_path / "results" / "faults"
    # the local executor exports within milliseconds of the last result: each consolidation waits 3 s first,
    # so that the driver is killed between the two, as a slower machine would be, not after
    env = injected.environment(tmp_path / "site", [], slow_consolidate=3.0 if point == "all-results-written" else 0.0)
    proc = start_decaylab("sweep", write_study(tmp_path, **STUDY), "--storage", tmp_path / "results",
                          "--executor", EXECUTORS[point], log=tmp_path / "log", env=env)
    wait_until(proc, lambda: KILL_POINTS[point](run), point, tmp_path / "log")
    kill_driver(proc)
    assert json.loads((run / "manifest.json").read_text())["finished"] is None, "the sweep had finished"
    text = status_text(RunDir(str(run)))  # works without Ray, and says what to do
    assert "did not finish: `decaylab resume` continues it" in text
    marker = tmp_path / "unpickled"
    assert plant_pickles(run, marker) >= 1
    out = decaylab("resume", run, "--executor", EXECUTORS[point])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert not marker.exists(), "resume unpickled a file of the run directory"
    assert_same_rows(run, reference.run)
    assert "did not finish" not in status_text(RunDir(str(run)))


# ------------------------------------------------------------------------------ pre-emption


@dataclass
class Stopped:
    returncode: int
    stdout: str  # its output, stderr included
    seconds: float  # from the signal to the driver's exit


def interrupt(run: Path, tmp_path: Path, sig: int, argv: list, name: str,
              group: bool = False) -> Stopped:
    """Start `decaylab ARGV`, send `sig` to the driver (`group`: to its whole process group, the Ray
    processes `ray.init` started included) once a trial has finished and another has made progress in this
    command (a checkpoint newer than it had at the start: so the sweep is running, not starting up), and
    return how the command ended."""
    log = tmp_path / f"{name}.log"
    epochs_before = {t.name: newest_checkpoint(t) for t in trial_dirs(run)} if run.exists() else {}
    proc = start_decaylab(*argv, log=log)

    def midway() -> bool:
        done = finished_trials(run)
        progressed = [t for t in trial_dirs(run)
                      if t.name not in done and newest_checkpoint(t) > epochs_before.get(t.name, 0)]
        return bool(done) and bool(progressed)

    wait_until(proc, midway, "one trial finished and another part-way", log)
    sent = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)  # the driver leads its group (start_new_session)
    else:
        proc.send_signal(sig)
    proc.wait(timeout=120)
    took = time.monotonic() - sent
    wait_for_session(proc.pid)
    return Stopped(proc.returncode, log.read_text(), took)


@pytest.mark.slow
@pytest.mark.ray
def test_sigterm_and_sigint_stop_a_sweep_gracefully_and_resume_gives_every_trial_once(reference, tmp_path):
    run = tmp_path / "results" / "faults"
    study = write_study(tmp_path, **STUDY)
    stopped = interrupt(run, tmp_path, signal.SIGTERM, ["sweep", study, "--storage", tmp_path / "results"], "term")
    assert stopped.returncode == 143, stopped.stdout[-3000:]
    assert f"`decaylab resume {run}`" in stopped.stdout.splitlines()[-1]
    assert not any(s in stopped.stdout for s in NO_STACK_DUMP), stopped.stdout[-3000:]
    kept = pd.read_parquet(run / "trials.parquet")
    assert set(kept["status"]) <= {"ok", "running"} and (kept["status"] == "ok").any()  # finished trials kept
    assert not list(run.glob("trials/*/error.json")), "a trial cut short by the stop was recorded as failed"
    assert plant_pickles(run, tmp_path / "unpickled") >= 1
    again = interrupt(run, tmp_path, signal.SIGINT, ["resume", run], "int")
    assert again.returncode in (0, 130), again.stdout[-3000:]  # 0: it had just finished
    assert not any(s in again.stdout for s in NO_STACK_DUMP), again.stdout[-3000:]
    out = decaylab("resume", run, "--executor", "local")  # what is left, through the same records
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert not (tmp_path / "unpickled").exists()
    assert_same_rows(run, reference.run)


@pytest.mark.slow
@pytest.mark.ray
def test_sigterm_to_the_whole_process_group_stops_at_once_and_resume_gives_every_trial_once(reference, tmp_path):
    # `timeout`, `kill -- -PGID` and systemd signal Ray's own processes too: the dead cluster must not hold
    # the driver (Ray Tune's orderly stop would wait a minute for it, then abort)
    run = tmp_path / "results" / "faults"
    study = write_study(tmp_path, **STUDY)
    stopped = interrupt(run, tmp_path, signal.SIGTERM, ["sweep", study, "--storage", tmp_path / "results"], "term",
                        group=True)
    assert stopped.returncode == 143, stopped.stdout[-3000:]
    assert stopped.seconds < 30, f"the driver took {stopped.seconds:.0f} s to stop"
    assert f"`decaylab resume {run}`" in stopped.stdout.splitlines()[-1]
    assert not any(s in stopped.stdout for s in NO_STACK_DUMP), stopped.stdout[-3000:]
    kept = pd.read_parquet(run / "trials.parquet")
    assert set(kept["status"]) <= {"ok", "running"} and (kept["status"] == "ok").any()
    assert not list(run.glob("trials/*/error.json")), "a trial cut short by the stop was recorded as failed"
    out = decaylab("resume", run, "--executor", "local")  # what is left, through the same records
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert_same_rows(run, reference.run)


@pytest.mark.slow
def test_sigterm_stops_the_local_executor_at_the_end_of_the_epoch_and_resume_gives_every_trial_once(reference,
                                                                                                    tmp_path):
    run = tmp_path / "results" / "faults"
    study = write_study(tmp_path, **STUDY)
    stopped = interrupt(run, tmp_path, signal.SIGTERM, ["sweep", study, "--storage", tmp_path / "results",
                                                        "--executor", "local"], "term")
    assert stopped.returncode == 143, stopped.stdout[-3000:]
    assert f"`decaylab resume {run}`" in stopped.stdout.splitlines()[-1]
    assert "Traceback" not in stopped.stdout
    assert not list(run.glob("trials/*/error.json")), "a trial cut short by the stop was recorded as failed"
    out = decaylab("resume", run, "--executor", "local")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert_same_rows(run, reference.run)


OPTUNA = {**STUDY, "name": "tune", "methods": {"wd": {"kind": "fixed"}, "awd": {"kind": "adaptive"}},
          "train": {"epochs": 3, "batch_size": 64},
          "search": {"kind": "optuna", "n_trials": 2, "seed": 3,
                     "space": {"lr": {"low": 0.01, "high": 0.1}, "wd.lambda": {"low": 1e-5, "high": 1e-2},
                               "awd.lambda_awd": {"low": 0.005, "high": 0.05}}}}


@pytest.mark.slow
def test_a_stopped_optuna_stage_resumes_from_its_records(tmp_path):
    run = tmp_path / "results" / "tune"
    stopped = interrupt(run, tmp_path, signal.SIGTERM, ["sweep", write_study(tmp_path, **OPTUNA), "--storage",
                                                        tmp_path / "results", "--executor", "local"], "term")
    assert stopped.returncode in (0, 143), stopped.stdout[-3000:]
    marker = tmp_path / "unpickled"
    plant_pickles(run, marker)
    out = decaylab("resume", run, "--executor", "local")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert not marker.exists()
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == 4 and set(trials["status"]) == {"ok"} and trials["trial_id"].is_unique
    assert sorted(trials["method"].value_counts().tolist()) == [2, 2]
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any() and len(epochs) == 4 * 3


# ----------------------------------------------------------- corrupted checkpoints and records


@pytest.mark.slow
def test_corrupted_records_fall_back_or_rerun_and_resume_to_the_same_rows(reference, tmp_path):
    """A driver killed mid-way; then the newest checkpoint of a running trial is truncated (it resumes
    from the one before, with a warning) and a finished trial's result.json is garbled (status calls it
    damaged; resume sets it aside and runs the trial again)."""
    run = tmp_path / "results" / "faults"
    proc = start_decaylab("sweep", write_study(tmp_path, **STUDY), "--storage", tmp_path / "results",
                          "--executor", "local", log=tmp_path / "log")

    def midway() -> bool:
        done = finished_trials(run)
        return bool(done) and any(newest_checkpoint(t) == 2 and t.name not in done for t in trial_dirs(run))

    wait_until(proc, midway, "one trial finished and another at epoch 2", tmp_path / "log")
    kill_driver(proc)
    victim = next(t for t in trial_dirs(run) if t.name not in finished_trials(run) and newest_checkpoint(t) >= 2)
    newest = victim / f"checkpoint-{newest_checkpoint(victim):04d}.pt"
    newest.write_bytes(newest.read_bytes()[:5000])  # truncated, as by a crash
    done = sorted(finished_trials(run))[0]
    result = run / "trials" / done / "result.json"
    result.write_text(result.read_text()[:300])  # garbled
    text = status_text(RunDir(str(run)))
    assert f"damaged trials/{done}/result.json" in text and "decaylab resume" in text
    out = decaylab("resume", run, "--executor", "local")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{victim.name} resumes from epoch {newest_checkpoint(victim) - 1}" in out.stderr or \
        f"{victim.name} resumes from epoch" in out.stderr  # the user is told
    assert f"trials/{done}/result.json" in out.stderr and (run / "damaged" / done / "result.json").exists()
    assert "failed" not in out.stderr.replace("0 failed", "")  # no crash loop, no failed trial
    assert_same_rows(run, reference.run)


@pytest.mark.slow
def test_garbled_result_files_do_not_break_status_or_export(reference, tmp_path):
    run = tmp_path / "faults"
    shutil.copytree(reference.run, run)
    tid = trial_dirs(run)[0].name
    for damage in (b"", b"\x00\xff\xfe", b'{"trial_id": "x", "status"', b"[1, 2, 3]", b'{"trial_id": "x"}'):
        (run / "trials" / tid / "result.json").write_bytes(damage)
        text = status_text(RunDir(str(run)))
        assert f"damaged trials/{tid}/result.json" in text
        counts = results.consolidate(RunDir(str(run)))
        assert counts == {"ok": TRIALS - 1}  # left out until resume redoes it, the others intact
        assert tid not in set(pd.read_parquet(run / "epochs.parquet")["trial_id"])


@pytest.mark.slow
def test_a_damaged_error_record_is_reported_not_skipped(reference, tmp_path):
    run = tmp_path / "faults"
    shutil.copytree(reference.run, run)
    tid = trial_dirs(run)[0].name
    (run / "trials" / tid / "result.json").unlink()
    (run / "trials" / tid / "error.json").write_text('{"trial_id": 3, "error": ')
    status, text, _ = cli(["status", run])
    assert status == 0 and f"damaged trials/{tid}/error.json" in text


# ------------------------------------------ killed worker, failing trial, diverging trial

TROUBLED = {**STUDY, "name": "troubled", "train": {"epochs": 3, "batch_size": 64}, "lr": [0.05, 1.0e6],
            "resources": {"cpu": 1, "gpu": 0, "max_failures": 1}}
KILLED = "wd-0.0005-lr0.05-s0"  # its worker is SIGKILLed once, after epoch 2
FAILING = "awd-0.02-lr0.05-s0"  # raises after every epoch, on every attempt


@dataclass
class Troubled:
    run: Path
    out: subprocess.CompletedProcess
    report: Path
    new_in_cwd: set[str]
    repo_before: tuple[str, dict]
    repo_after: tuple[str, dict]


def repo_state() -> tuple[str, dict[str, float]]:
    """`git status` of the working tree (every untracked file, ignored directories collapsed), and
    the files of its ignored output directories."""
    git = ["git", "status", "--porcelain"]
    status = subprocess.run([*git, "-uall"], cwd=REPO, capture_output=True, text=True).stdout
    ignored = subprocess.run([*git, "--ignored"], cwd=REPO, capture_output=True, text=True).stdout
    status += "".join(ln + "\n" for ln in ignored.splitlines() if ln.startswith("!!"))
    outputs = {str(p): p.stat().st_mtime for d in ("results", "reports") for p in (REPO / d).rglob("*")}
    outputs |= {str(p): p.stat().st_mtime for p in (Path.home() / "ray_results").glob("*")}
    return status, outputs


def beyond_source_edits(status: str) -> set[str]:
    """Status lines minus source files and tool caches: people may be editing this working tree
    while the tests run (decaylab writes none of these)."""
    return {ln for ln in status.splitlines() if not ln.endswith((".py", ".md", ".toml", ".yaml", "__pycache__/",
                                                                 ".pytest_cache/", ".ruff_cache/", ".sh"))}


def troubled_sweep(base: Path, executor: str, faults: list[dict], study: dict) -> Troubled:
    """One sweep with injected faults, run from a fresh working directory with --storage and the report
    directory inside it."""
    cwd = base / "work"
    cwd.mkdir()
    before = repo_state()
    out = decaylab("sweep", write_study(base, **study), "--storage", "storage", "--report", "--out", "report",
                   "--executor", executor, cwd=cwd, env=injected.environment(base / "site", faults))
    return Troubled(cwd / "storage" / study["name"], out, cwd / "report", {p.name for p in cwd.iterdir()},
                    before, repo_state())


@pytest.fixture(scope="module")
def troubled_ray(tmp_path_factory) -> Troubled:
    """On Ray: one trial's worker killed once after epoch 2, one trial failing on every attempt."""
    base = tmp_path_factory.mktemp("troubled-ray")
    faults = [{"trial": KILLED, "epoch": 2, "action": "kill", "once": str(base / "killed")}]
    faults += [{"trial": FAILING, "epoch": e, "action": "raise"} for e in range(1, 4)]
    out = troubled_sweep(base, "ray", faults, {**TROUBLED, "lr": [0.05]})
    assert (base / "killed").exists(), out.out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def troubled_local(tmp_path_factory) -> Troubled:
    """With the local executor: a trial failing on every attempt and two diverging ones (lr 1e6)."""
    base = tmp_path_factory.mktemp("troubled-local")
    return troubled_sweep(base, "local", [{"trial": FAILING, "epoch": e, "action": "raise"} for e in range(1, 4)],
                          TROUBLED)


def assert_failed_every_attempt(troubled: Troubled) -> None:
    out = troubled.out
    assert out.returncode == 1 and "Traceback" not in out.stderr.split("failed: RuntimeError")[-1]
    assert "1 trial(s) failed" in out.stderr and "decaylab status" in out.stderr
    trials = pd.read_parquet(troubled.run / "trials.parquet").set_index("trial_id")
    assert trials.loc[FAILING, "status"] == "failed"
    assert f"injected fault in {FAILING}" in trials.loc[FAILING, "error"]
    assert (trials.drop(index=FAILING)["status"].isin(FINISHED)).all()
    status, text, _ = cli(["status", troubled.run])
    assert status == 0 and f"failed {FAILING}: " in text and "injected fault" in text


@pytest.mark.slow
@pytest.mark.ray
def test_on_ray_a_killed_worker_is_retried_and_a_trial_failing_every_attempt_is_marked_failed(troubled_ray):
    """One sweep, two faults: a worker SIGKILLed once resumes its trial from the checkpoint (each epoch's row
    exactly once); a trial raising on every attempt is recorded as failed while the rest finish."""
    epochs = pd.read_parquet(troubled_ray.run / "epochs.parquet")
    assert epochs.loc[epochs["trial_id"] == KILLED, "epoch"].tolist() == [1, 2, 3], "the killed worker's trial"
    trials = pd.read_parquet(troubled_ray.run / "trials.parquet").set_index("trial_id")
    assert trials.loc[KILLED, "status"] == "ok"
    assert_failed_every_attempt(troubled_ray)


@pytest.mark.slow
def test_a_trial_failing_every_attempt_with_the_local_executor_is_marked_failed_too(troubled_local):
    assert_failed_every_attempt(troubled_local)


@pytest.mark.slow
def test_a_diverging_trial_is_kept_but_never_selected(troubled_local):
    trials = pd.read_parquet(troubled_local.run / "trials.parquet")
    diverged = trials[trials["lr"] == 1.0e6]
    assert len(diverged) == 2 and set(diverged["status"]) == {"diverged"}
    assert (diverged["score"] == 0.0).all()  # the selection rule's score: never above a trained trial
    assert (trials.loc[trials["status"] == "ok", "score"] > 0).all()
    epochs = pd.read_parquet(troubled_local.run / "epochs.parquet")
    assert (epochs.loc[epochs["lr"] == 1.0e6, "epoch"] == 1).all()  # stopped within the first epoch
    assert set(epochs.loc[epochs["lr"] == 1.0e6, "trial_id"]) == set(diverged["trial_id"])  # rows kept
    assert (troubled_local.report / "report.md").exists()  # the report was written despite the failed trial


@pytest.mark.slow
def test_a_sweep_writes_only_its_run_and_report_directories(troubled_local):
    assert troubled_local.new_in_cwd == {"storage", "report"}
    assert sorted(p.name for p in troubled_local.run.parent.iterdir()) == ["troubled"]
    status_before, outputs_before = troubled_local.repo_before
    status_after, outputs_after = troubled_local.repo_after
    assert beyond_source_edits(status_after) == beyond_source_edits(status_before)
    assert outputs_after == outputs_before


# ------------------------------------------------------------------------------- storage


@contextlib.contextmanager
def read_only(directory: Path):
    """Make `directory` really unwritable: chmod for a normal user; root ignores modes, so for root
    the immutable attribute (chattr +i), which stops root too."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(directory)]).returncode != 0:
        pytest.skip("running as root without chattr +i: no way to make a directory unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


@contextlib.contextmanager
def small_disk(directory: Path, megabytes: int):
    """A tmpfs of `megabytes` mounted on `directory` (root only), to fill up for real."""
    directory.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs",
                                            str(directory)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


def fill(directory: Path, leave_kib: int) -> None:
    free = shutil.disk_usage(directory).free // 1024
    with open(directory / "filler", "wb") as f:
        f.write(b"\0" * max(free - leave_kib, 0) * 1024)


def assert_clean_storage_error(out: subprocess.CompletedProcess, where: str, reason: str) -> None:
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert f"error: {where}" in out.stderr and reason in out.stderr and "hint:" in out.stderr


@pytest.mark.slow
def test_unwritable_storage_fails_before_anything_starts(tmp_path):
    (tmp_path / "ro").mkdir()
    with read_only(tmp_path / "ro"):
        out = decaylab("sweep", write_study(tmp_path, **STUDY), "--storage", tmp_path / "ro")
    assert_clean_storage_error(out, str(tmp_path / "ro" / "faults"), "not writable")
    assert list((tmp_path / "ro").iterdir()) == []


@pytest.mark.slow
def test_full_storage_fails_before_anything_starts(tmp_path):
    with small_disk(tmp_path / "disk", 1) as disk:
        fill(disk, 0)
        out = decaylab("sweep", write_study(tmp_path, **STUDY), "--storage", disk)
        assert_clean_storage_error(out, str(disk / "faults"), "No space left on device")
        assert not (disk / "faults").exists() or not any((disk / "faults").iterdir())


def test_full_storage_in_process_before_ray(tmp_path, monkeypatch):
    """The same, simulated in this process: the first write fails with ENOSPC and Ray never starts."""
    import ray

    from orchestrator.run import storage

    def no_space(target, data, *durable):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(storage, "write_atomic_local", no_space)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started"))
    status, _, err = cli(["sweep", write_study(tmp_path, **STUDY), "--storage", tmp_path / "s"])
    assert status == 1 and "No space left on device" in err and str(tmp_path / "s" / "faults") in err
    assert "Traceback" not in err


@pytest.mark.parametrize("storage, says", [("ftp://host/results", "ftp:// is not supported"),
                                           ("s3://bucket/results", "no credentials for s3://"),
                                           ("gs://bucket/results", "no credentials for gs://")])
def test_unusable_storage_uris_fail_in_seconds_before_ray(tmp_path, monkeypatch, storage, says):
    import ray

    for name in [n for n in os.environ if n.startswith(("AWS_", "GOOGLE_", "GCE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started"))
    start = time.monotonic()
    status, _, err = cli(["sweep", write_study(tmp_path, **STUDY), "--storage", storage])
    assert status in (1, 2) and says in err and "hint:" in err and "Traceback" not in err
    assert time.monotonic() - start < 10


@pytest.mark.slow
def test_finished_results_survive_an_unwritable_run_directory(reference, tmp_path):
    run = tmp_path / "results" / "faults"
    shutil.copytree(reference.run, run)
    before = file_bytes(run)
    grown = write_study(tmp_path, **{**STUDY, "seeds": [0, 1]})  # extend: new trials to run
    with read_only(run):
        out = decaylab("sweep", grown, "--storage", tmp_path / "results", "--executor", "local")
    assert_clean_storage_error(out, str(run), "not writable")
    assert file_bytes(run) == before
    assert len(pd.read_parquet(run / "epochs.parquet")) == TRIALS * EPOCHS


@pytest.mark.slow
def test_finished_results_survive_a_disk_that_fills_up(reference, tmp_path):
    with small_disk(tmp_path / "disk", 24) as disk:
        run = disk / "faults"
        shutil.copytree(reference.run, run)
        before = file_bytes(run)
        fill(disk, 8)  # room for the write test, not for the exported parquet files
        out = decaylab("resume", run, "--executor", "local")
        assert_clean_storage_error(out, str(run), "No space left on device")
        assert file_bytes(run) == before
        assert len(pd.read_parquet(run / "trials.parquet")) == TRIALS
        assert not list(run.glob(".*.tmp")), "a failed atomic write left its temporary file"


@pytest.mark.slow
def test_a_failed_export_keeps_the_previous_files(reference, tmp_path, monkeypatch):
    run = tmp_path / "faults"
    shutil.copytree(reference.run, run)
    before = file_bytes(run)

    def fsync_fails(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OSError) as err:
        results.consolidate(RunDir(str(run)))
    assert err.value.filename == str(run / "epochs.parquet")  # the message names the file
    monkeypatch.undo()
    assert file_bytes(run) == before and not list(run.glob(".*.tmp"))


@pytest.mark.slow
def test_damaged_result_files_are_rebuilt_from_the_records_or_give_a_clear_error(reference, tmp_path):
    run = tmp_path / "faults"
    shutil.copytree(reference.run, run)
    (run / "epochs.parquet").write_bytes(b"PAR1 not really parquet")
    assert cli(["resume", run, "--executor", "local"])[0] == 0  # nothing to run: the files are rebuilt
    assert pd.read_parquet(run / "epochs.parquet").shape[0] == TRIALS * EPOCHS
    (run / "epochs.parquet").write_bytes(b"PAR1 not really parquet")
    status, _, err = cli(["report", run, "--out", tmp_path / "r1"])  # report consolidates first: repaired too
    assert status == 0 and "Traceback" not in err
    assert pd.read_parquet(run / "epochs.parquet").shape[0] == TRIALS * EPOCHS
    bare = tmp_path / "bare"  # the result files without the records they come from
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("trials", "parts"))
    (bare / "epochs.parquet").write_bytes(b"PAR1 not really parquet")
    status, _, err = cli(["report", bare, "--out", tmp_path / "r2"])
    assert status in (1, 2) and "epochs.parquet" in err and "hint:" in err and "Traceback" not in err
    (run / "manifest.json").write_text('{"study": "fau')
    assert cli(["status", run])[0] == 0
    status, _, err = cli(["report", run, "--out", tmp_path / "r3"])
    assert status in (0, 1, 2) and "Traceback" not in err


def test_a_storage_error_inside_tune_surfaces_as_itself():
    from ray.tune.error import TuneError

    from orchestrator.ray.executor import fit

    class Tuner:
        def fit(self):
            try:
                raise OSError(errno.ENOSPC, "No space left on device", "/x/errors/t.json")
            except OSError:
                raise TuneError("Traceback (most recent call last): ...") from None

    with pytest.raises(OSError, match="No space left") as err:
        fit(Tuner())
    assert not isinstance(err.value, TuneError)


# ------------------------------------------------------------------------------ Ray settings


def test_ray_dashboard_is_off_by_default_and_local_when_on():
    from orchestrator.ray.cluster import init_kwargs

    off = init_kwargs(None, None, False, {})
    assert off["include_dashboard"] is False and off["dashboard_host"] == "127.0.0.1"
    assert off["address"] == "local"  # a fresh local cluster, never a stray `ray start` one
    on = init_kwargs(None, 2, True, {})
    assert on["include_dashboard"] is True and on["dashboard_host"] == "127.0.0.1" and on["num_cpus"] == 2
    joined = init_kwargs(None, None, False, {"RAY_ADDRESS": "10.0.0.1:6379", "RAY_CHDIR_TO_TRIAL_DIR": "0"})
    assert joined["address"] == "10.0.0.1:6379" and "num_cpus" not in joined
    assert joined["runtime_env"]["env_vars"] == {"RAY_CHDIR_TO_TRIAL_DIR": "0"}




@pytest.mark.slow
def test_a_thread_hears_a_stop_signal_while_the_main_thread_is_busy_elsewhere(monkeypatch):
    """`signals.wait` wakes the moment SIGTERM arrives, not when the main thread next runs Python code
    (inside Ray it may not for a while): here the main thread sleeps with SIGTERM blocked, so only the
    waiting thread's side of the handler runs, and it hears the signal at once. Other signals do not count."""
    import threading

    from orchestrator import signals

    monkeypatch.setattr(signals, "received", None)
    heard = []
    with signals.graceful_stop():
        assert signals.wait(0.01) is False  # nothing yet
        previous_usr1 = signal.signal(signal.SIGUSR1, lambda *_: None)
        waiter = threading.Thread(target=lambda: heard.append((signals.wait(10.0), time.monotonic())))
        waiter.start()  # created before the mask: it can take SIGTERM
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            os.kill(os.getpid(), signal.SIGUSR1)  # not a stop signal: the waiter keeps waiting
            time.sleep(0.2)
            assert heard == [] and signals.received is None
            sent = time.monotonic()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)  # the main thread runs no Python handler meanwhile
            assert heard and heard[0][0] is True and heard[0][1] - sent < 0.5, heard
            assert signals.received == signal.SIGTERM
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            signal.signal(signal.SIGUSR1, previous_usr1)
            waiter.join(10)
    assert signals.wait(0.01) is True  # it stays heard
