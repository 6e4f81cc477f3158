"""Faults injected into real sweeps: a killed driver, killed or failing trials, corrupted checkpoints,
a diverging configuration, a report read mid-sweep, storage that cannot be written.

The Ray tests run the real CLI in subprocesses on one small study (4 trials × 4 epochs), compared
with one uninterrupted run of it. Each property is checked on the files a user reads.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import torch
from sweep_helpers import REPO, comparable, decaylab, start_decaylab, write_study

from orchestrator import results
from orchestrator.checkpoints import load_first_good, load_state
from orchestrator.cli import main
from orchestrator.status import status_text
from orchestrator.storage import RunDir
from trials.config import TrialConfig

STUDY = {
    "name": "faults",
    "data": {"dataset": "digits", "subset": 600},
    "train": {"epochs": 4, "batch_size": 64},
    "methods": {"wd": {"kind": "fixed", "lambda": [5.0e-4]}, "awd": {"kind": "adaptive", "lambda_awd": [0.02]}},
    "lr": [0.02, 0.05],
}
TRIALS = 4
EPOCHS = 4
FINISHED = ("ok", "diverged")


# ------------------------------------------------------------------------------ helpers


def summaries(run: Path) -> list[tuple[Path, dict]]:
    """Every readable rows.json of the run, with its checkpoint directory."""
    out = []
    for path in run.glob("sweep-*/*/checkpoint_*/*/rows.json"):
        with contextlib.suppress(OSError, ValueError):
            out.append((path.parent, json.loads(path.read_text())))
    return out


def newest(run: Path) -> dict[str, tuple[Path, dict]]:
    """trial_id → its most advanced readable checkpoint."""
    best: dict[str, tuple[Path, dict]] = {}
    for path, s in summaries(run):
        if s["trial_id"] not in best or s["epoch"] > best[s["trial_id"]][1]["epoch"]:
            best[s["trial_id"]] = (path, s)
    return best


def finished_trials(run: Path) -> set[str]:
    return {tid for tid, (_, s) in newest(run).items() if s["status"] in FINISHED}


def session_pids(sid: int) -> list[int]:
    """Processes of session `sid` (the driver started with start_new_session, and Ray's workers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # fields after "pid (comm)": state ppid pgrp session
                pids.append(int(stat.parent.name))
    return pids


def kill_driver(proc: subprocess.Popen) -> None:
    """SIGKILL the driver's process group, then wait for the Ray workers it leaves behind to die
    (they notice within seconds); any still there after 30 s are killed, by pid."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while session_pids(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in session_pids(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_until(proc: subprocess.Popen, condition, what: str, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert proc.poll() is None, f"the sweep ended before {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def assert_same_rows(run: Path, reference: Path) -> None:
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    pd.testing.assert_frame_equal(comparable(epochs), comparable(pd.read_parquet(reference / "epochs.parquet")))
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == TRIALS and set(trials["status"]) == {"ok"}
    assert json.loads((run / "manifest.json").read_text())["finished"]


def file_bytes(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in ("epochs.parquet", "trials.parquet", "evaluations.parquet")}


def cli(argv: list[str]) -> tuple[int, str, str]:
    """`decaylab ARGV` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


# --------------------------------------------------- the uninterrupted run, read while it writes


@dataclass
class Reference:
    run: Path
    log: str
    snapshots: list[tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)
    reports: list[tuple[int, str, str]] = field(default_factory=list)  # (status, report.md, stderr)
    dashboard_hosts: set[str] = field(default_factory=set)


def snapshot(run: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """trials.parquet, then epochs.parquet (a later export only adds rows: epochs ⊇ trials)."""
    if not (run / "trials.parquet").exists():
        return None
    return pd.read_parquet(run / "trials.parquet"), pd.read_parquet(run / "epochs.parquet")


def dashboard_hosts(sid: int) -> set[str]:
    hosts = set()
    for pid in session_pids(sid):
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            if any(a.endswith("dashboard.py") for a in args):
                hosts |= {a.split("=", 1)[1] for a in args if a.startswith("--host=")}
    return hosts


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    """The study run once without faults; while it runs, the result files are read and `decaylab
    report` is run over and over, as a user watching the sweep would."""
    import analysis.report  # noqa: F401 - imported now, so that each report mid-sweep takes a second or two

    base = tmp_path_factory.mktemp("reference")
    run = base / "results" / "faults"
    # one trial at a time: each trial's end is a separate export, with quiet moments in between
    proc = start_decaylab("sweep", write_study(base, **STUDY), "--storage", base / "results",
                          "--set", "resources.max_concurrent=1", log=base / "log")
    ref = Reference(run, "")
    try:
        while proc.poll() is None:
            ref.dashboard_hosts |= dashboard_hosts(proc.pid)
            try:
                snap = snapshot(run)
            except Exception as e:  # a torn or half-written parquet file would land here
                ref.read_errors.append(f"{type(e).__name__}: {e}")
                continue
            if snap is not None and len(ref.reports) < 6:
                ref.snapshots.append(snap)
                status, _, err = cli(["report", run, "--out", base / f"report-{len(ref.reports)}"])
                md = base / f"report-{len(ref.reports)}" / "report.md"
                ref.reports.append((status, md.read_text() if md.exists() else "", err))
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            kill_driver(proc)
    ref.log = (base / "log").read_text()
    assert proc.returncode == 0, ref.log[-3000:]
    return ref


@pytest.mark.slow
def test_reports_during_a_sweep_are_partial_and_consistent(reference):
    assert not reference.read_errors
    assert reference.snapshots, "the sweep ended before its results could be read mid-way"
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
    partial = [md for status, md, _ in reference.reports if status == 0 and "partial:" in md]
    assert partial, [(s, err[-500:]) for s, _, err in reference.reports]
    assert all(status == 0 and "Traceback" not in err for status, _, err in reference.reports)
    status, _, _ = cli(["report", reference.run, "--out", reference.run.parent / "final-report"])
    assert status == 0
    assert f"complete: {TRIALS} of {TRIALS} trials finished" in (reference.run.parent / "final-report" /
                                                                 "report.md").read_text()


@pytest.mark.slow
def test_ray_dashboard_of_a_sweep_listens_on_localhost_only(reference):
    assert reference.dashboard_hosts <= {"127.0.0.1"}


# ------------------------------------------------------------------------- a killed driver

KILL_POINTS = {
    # at least one epoch checkpointed, no trial finished yet
    "before-any-trial-finished": lambda run: bool(summaries(run)) and not finished_trials(run),
    # every trial has its final checkpoint: the driver is exporting or about to
    "all-final-checkpoints-written": lambda run: len(finished_trials(run)) == TRIALS,
}


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS, ids=KILL_POINTS)
def test_killed_driver_resumes_to_the_same_rows(reference, tmp_path, point):
    run = tmp_path / "results" / "faults"
    proc = start_decaylab("sweep", write_study(tmp_path, **STUDY), "--storage", tmp_path / "results",
                          log=tmp_path / "log")
    wait_until(proc, lambda: KILL_POINTS[point](run), point, tmp_path / "log")
    kill_driver(proc)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["finished"] is None, "the sweep had finished before the driver was killed"
    text = status_text(RunDir(str(run)))  # works without Ray, and says what to do
    assert "did not finish: `decaylab resume` continues it" in text
    out = decaylab("resume", run)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert_same_rows(run, reference.run)
    assert "did not finish" not in status_text(RunDir(str(run)))


# ------------------------------------------------------------------- corrupted checkpoints


def corrupt_midway_run(tmp_path: Path) -> Path:
    """A sweep killed once a trial has finished while another is part-way (epoch 2 of 4)."""
    run = tmp_path / "results" / "faults"
    proc = start_decaylab("sweep", write_study(tmp_path, **STUDY), "--storage", tmp_path / "results",
                          log=tmp_path / "log")

    def midway() -> bool:
        latest = newest(run)
        done = [s for _, s in latest.values() if s["status"] in FINISHED]
        return bool(done) and any(s["status"] == "running" and s["epoch"] == 2 for _, s in latest.values())

    # a worker left behind writes at most one more epoch: the part-way trial stays unfinished
    wait_until(proc, midway, "one trial finished and another at epoch 2", tmp_path / "log")
    kill_driver(proc)
    return run


@pytest.mark.slow
def test_corrupted_checkpoints_fall_back_and_resume_to_the_same_rows(reference, tmp_path, caplog):
    run = corrupt_midway_run(tmp_path)
    latest = newest(run)
    victim = next(tid for tid, (_, s) in latest.items() if s["status"] == "running" and s["epoch"] >= 2)
    ck, summary = latest[victim]
    (ck / "state.pt").write_bytes((ck / "state.pt").read_bytes()[:5000])  # truncated, as by a crash
    done = next(tid for tid, (_, s) in latest.items() if s["status"] == "ok")
    done_ck = latest[done][0]
    (done_ck / "rows.json").write_text((done_ck / "rows.json").read_text()[:300])  # garbled
    # status and the export still work; the garbled trial falls back to its previous checkpoint
    text = status_text(RunDir(str(run)))
    assert f"failed {done}" not in text
    results.export(results.Scanner(RunDir(str(run))))
    trials = pd.read_parquet(run / "trials.parquet").set_index("trial_id")
    assert trials.loc[done, "status"] == "running" and trials.loc[done, "epochs_done"] == EPOCHS - 1
    # the trial whose newest state is truncated starts from the checkpoint before, with a warning
    from orchestrator.tune_backend import initial_state

    with caplog.at_level(logging.WARNING, logger="decaylab.checkpoints"):
        state, warning = initial_state(RunDir(str(run)), TrialConfig.from_dict(summary["config"]), None)
    assert state["epoch"] == summary["epoch"] - 1
    assert "unreadable" in warning and "falling back" in caplog.text
    out = decaylab("resume", run)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{victim} resumes from an earlier one" in out.stderr  # the user is told
    assert "failed" not in out.stderr.replace("0 failed", "")  # no crash loop, no failed trial
    assert_same_rows(run, reference.run)


@pytest.mark.slow
def test_a_trial_without_a_loadable_checkpoint_restarts_with_a_warning(reference, tmp_path):
    from orchestrator.tune_backend import initial_state

    run = tmp_path / "faults"
    shutil.copytree(reference.run, run)
    _, summary = newest(run)[sorted(newest(run))[0]]
    for state in run.glob(f"sweep-*/*/checkpoint_*/{summary['trial_id']}/state.pt"):
        state.write_bytes(b"garbage")
    state, warning = initial_state(RunDir(str(run)), TrialConfig.from_dict(summary["config"]), None)
    assert state is None and "restarts from epoch 0" in warning


def test_a_checkpoint_holding_code_is_refused(tmp_path):
    """state.pt is loaded with weights_only=True: a pickled object is refused, an older one is used."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    run = RunDir(str(tmp_path))
    for name, state in (("old", {"format": 1, "epoch": 1, "w": torch.ones(2)}),
                        ("new", {"format": 1, "epoch": 2, "w": Payload()})):
        (tmp_path / name).mkdir()
        torch.save(state, tmp_path / name / "state.pt")
    with pytest.raises(Exception, match=r"(?i)weights_only|unsupported global"):
        load_state(run, "new")
    state, parts = load_first_good(run, [("new",), ("old",)])
    assert parts == ("old",) and state["epoch"] == 1
    assert not marker.exists()


@pytest.mark.slow
def test_garbled_rows_json_does_not_break_status_or_export(reference, tmp_path):
    run = tmp_path / "faults"
    shutil.copytree(reference.run, run)
    tid, (ck, _) = sorted(newest(run).items())[0]
    for damage in (b"", b"\x00\xff\xfe", b'{"trial_id": "x", "status"', b"[1, 2, 3]", b'{"trial_id": "x"}'):
        (ck / "rows.json").write_bytes(damage)
        assert "running" in status_text(RunDir(str(run)))
        counts = results.export(results.Scanner(RunDir(str(run))))
        assert counts == {"ok": TRIALS - 1, "running": 1}
        epochs = pd.read_parquet(run / "epochs.parquet")
        assert (epochs["trial_id"] == tid).sum() == EPOCHS - 1  # the previous checkpoint's rows


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
                                                                 ".pytest_cache/", ".ruff_cache/"))}


@pytest.fixture(scope="module")
def troubled(tmp_path_factory) -> Troubled:
    """One sweep with a killed worker, a trial failing on every attempt and two diverging ones
    (lr 1e6), run from a fresh working directory with --storage and --report-out inside it."""
    base = tmp_path_factory.mktemp("troubled")
    study = write_study(base, **TROUBLED)
    cwd = base / "work"
    cwd.mkdir()
    faults = [{"trial": KILLED, "epoch": 2, "action": "kill", "once": str(base / "killed")}]
    faults += [{"trial": FAILING, "epoch": e, "action": "raise"} for e in range(1, 4)]
    before = repo_state()
    out = decaylab("sweep", study, "--storage", "storage", "--report", "--report-out", "report", cwd=cwd,
                   env={"DECAYLAB_FAULTS": json.dumps(faults), "PYTHONPATH": str(REPO)})
    assert (base / "killed").exists(), out.stderr[-3000:]
    return Troubled(cwd / "storage" / "troubled", out, cwd / "report", {p.name for p in cwd.iterdir()},
                    before, repo_state())


@pytest.mark.slow
def test_a_killed_worker_is_retried_from_its_checkpoint(troubled):
    epochs = pd.read_parquet(troubled.run / "epochs.parquet")
    assert epochs.loc[epochs["trial_id"] == KILLED, "epoch"].tolist() == [1, 2, 3]  # each row exactly once
    trials = pd.read_parquet(troubled.run / "trials.parquet").set_index("trial_id")
    assert trials.loc[KILLED, "status"] == "ok"


@pytest.mark.slow
def test_a_trial_failing_every_attempt_is_marked_failed_and_the_rest_finish(troubled):
    out = troubled.out
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "1 trial(s) failed" in out.stderr and "decaylab status" in out.stderr
    trials = pd.read_parquet(troubled.run / "trials.parquet").set_index("trial_id")
    assert trials.loc[FAILING, "status"] == "failed"
    assert "injected fault in awd-0.02-lr0.05-s0" in trials.loc[FAILING, "error"]
    assert (trials.drop(index=FAILING)["status"].isin(FINISHED)).all()
    status, text, _ = cli(["status", troubled.run])
    assert status == 0 and f"failed {FAILING}: " in text and "injected fault" in text


@pytest.mark.slow
def test_a_diverging_trial_is_kept_but_never_selected(troubled):
    from analysis.load import load_run
    from analysis.pipeline import analyse

    trials = pd.read_parquet(troubled.run / "trials.parquet")
    diverged = trials[trials["lr"] == 1.0e6]
    assert len(diverged) == 2 and set(diverged["status"]) == {"diverged"}
    epochs = pd.read_parquet(troubled.run / "epochs.parquet")
    assert (epochs.loc[epochs["lr"] == 1.0e6, "epoch"] == 1).all()  # stopped within the first epoch
    assert set(epochs.loc[epochs["lr"] == 1.0e6, "trial_id"]) == set(diverged["trial_id"])  # rows kept
    a = analyse(load_run(troubled.run))
    assert len(a.best) and (a.best["lr"] != 1.0e6).all() and (a.best_per_lr["lr"] != 1.0e6).all()
    assert not a.settings.loc[a.settings["lr"] == 1.0e6, "eligible"].any()
    report = (troubled.report / "report.md").read_text()
    assert "partial:" in report and "diverged" in report


@pytest.mark.slow
def test_a_sweep_writes_only_its_run_and_report_directories(troubled):
    assert troubled.new_in_cwd == {"storage", "report"}
    assert sorted(p.name for p in troubled.run.parent.iterdir()) == ["troubled"]
    status_before, outputs_before = troubled.repo_before
    status_after, outputs_after = troubled.repo_after
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


def test_unwritable_storage_fails_before_anything_starts(tmp_path):
    (tmp_path / "ro").mkdir()
    with read_only(tmp_path / "ro"):
        out = decaylab("sweep", write_study(tmp_path, **STUDY), "--storage", tmp_path / "ro")
    assert_clean_storage_error(out, str(tmp_path / "ro" / "faults"), "not writable")
    assert list((tmp_path / "ro").iterdir()) == []


def test_full_storage_fails_before_anything_starts(tmp_path):
    with small_disk(tmp_path / "disk", 1) as disk:
        fill(disk, 0)
        out = decaylab("sweep", write_study(tmp_path, **STUDY), "--storage", disk)
        assert_clean_storage_error(out, str(disk / "faults"), "No space left on device")
        assert not (disk / "faults").exists() or not any((disk / "faults").iterdir())


def test_full_storage_in_process_before_ray(tmp_path, monkeypatch):
    """The same, simulated in this process: the first write fails with ENOSPC and Ray never starts."""
    import ray

    from orchestrator import storage

    def no_space(target, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(storage, "write_atomic_local", no_space)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started"))
    status, _, err = cli(["sweep", write_study(tmp_path, **STUDY), "--storage", tmp_path / "s"])
    assert status == 1 and "No space left on device" in err and str(tmp_path / "s" / "faults") in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_finished_results_survive_an_unwritable_run_directory(reference, tmp_path):
    run = tmp_path / "results" / "faults"
    shutil.copytree(reference.run, run)
    before = file_bytes(run)
    grown = write_study(tmp_path, **{**STUDY, "seeds": [0, 1]})  # extend: new trials to run
    with read_only(run):
        out = decaylab("sweep", grown, "--storage", tmp_path / "results")
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
        out = decaylab("resume", run)
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
        results.export(results.Scanner(RunDir(str(run))))
    assert err.value.filename == str(run / "epochs.parquet")  # the message names the file
    monkeypatch.undo()
    assert file_bytes(run) == before and not list(run.glob(".*.tmp"))


@pytest.mark.slow
def test_damaged_result_files_give_a_clear_error_and_the_hint_repairs_them(reference, tmp_path):
    run = tmp_path / "faults"
    shutil.copytree(reference.run, run)
    (run / "epochs.parquet").write_bytes(b"PAR1 not really parquet")
    status, _, err = cli(["report", run, "--out", tmp_path / "r1"])
    assert status == 1 and "cannot be read" in err and "decaylab resume" in err and "Traceback" not in err
    assert cli(["resume", run])[0] == 0  # nothing to run: the parquet files are rebuilt from the checkpoints
    assert cli(["report", run, "--out", tmp_path / "r2"])[0] == 0
    (run / "manifest.json").write_text('{"study": "fau')
    assert cli(["status", run])[0] == 0
    status, _, err = cli(["report", run, "--out", tmp_path / "r3"])
    assert status == 1 and "manifest.json" in err and "can be deleted" in err
    (run / "manifest.json").unlink()
    assert cli(["report", run, "--out", tmp_path / "r4"])[0] == 0


def test_a_storage_error_inside_tune_surfaces_as_itself():
    from ray.tune.error import TuneError

    from orchestrator.tune_backend import _fit

    class Tuner:
        def fit(self):
            try:
                raise OSError(errno.ENOSPC, "No space left on device", "/x/errors/t.json")
            except OSError:
                raise TuneError("Traceback (most recent call last): ...") from None

    with pytest.raises(OSError, match="No space left") as err:
        _fit(Tuner())
    assert not isinstance(err.value, TuneError)


# ------------------------------------------------------------------------------ Ray settings


def test_ray_dashboard_is_off_by_default_and_local_when_on():
    from orchestrator.tune_backend import init_kwargs

    off = init_kwargs(None, None, False, {})
    assert off["include_dashboard"] is False and off["dashboard_host"] == "127.0.0.1"
    assert off["address"] == "local"  # a fresh local cluster, never a stray `ray start` one
    on = init_kwargs(None, 2, True, {})
    assert on["include_dashboard"] is True and on["dashboard_host"] == "127.0.0.1" and on["num_cpus"] == 2
    joined = init_kwargs(None, None, False, {"RAY_ADDRESS": "10.0.0.1:6379", "DECAYLAB_FAULTS": "[]"})
    assert joined["address"] == "10.0.0.1:6379" and "num_cpus" not in joined
    assert joined["runtime_env"]["env_vars"] == {"DECAYLAB_FAULTS": "[]"}
