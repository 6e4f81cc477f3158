"""Trust boundaries, second round, without Ray: reads that cannot be redirected, one writer per run
directory, durable writes and exports, model files, bounded studies, and output that cannot act on the
terminal that shows it.

Each test reproduces a finding of a review on the code before it was fixed. A command that would hang or
exhaust memory before the fix runs in a subprocess with a timeout and a memory limit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import os
import resource
import socket
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from helpers.sweep import REPO, TINY, cli_env

from orchestrator.cli import main
from orchestrator.errors import RunError, UserError
from orchestrator.run import records
from orchestrator.run.storage import RunDir

STUDY = {**TINY, "name": "trust2", "lr": [0.05], "methods": {"wd": {"kind": "fixed", "lambda": [0.0]}}}
TID = "wd-0-lr0.05-s0"
RAW = ("\x1b", "\x07", "\x9b")  # ESC, BEL (ends an OSC sequence), CSI


def make_run(tmp: Path, study: dict = STUDY) -> Path:
    run = tmp / "run"
    run.mkdir()
    (run / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    return run


def limited(memory: int = 3 << 30):
    """For a subprocess: at most `memory` bytes of address space (a runaway read fails instead of
    taking the machine's memory)."""
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def cli(*args, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    """The real command in a fresh interpreter, with a timeout and a memory limit; and its wall time."""
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", *map(str, args)], capture_output=True,
                         text=True, timeout=timeout, cwd=REPO, env=cli_env(), preexec_fn=limited())
    return out, time.monotonic() - start


def run_main(argv: list) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as e:
            status = int(e.code)
    return status, err.getvalue()


# ================================================================ A: reads that cannot be redirected


def test_status_of_a_run_whose_study_file_is_a_fifo_answers_at_once(tmp_path):
    """Before: `open` of the FIFO waited for a writer forever."""
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "study.yaml")
    out, seconds = cli("status", run)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "study.yaml" in out.stderr and "not a regular file (a FIFO" in out.stderr and "hint:" in out.stderr
    assert seconds < 30


def test_a_manifest_linked_to_dev_zero_is_not_read(tmp_path):
    """Before: the link was followed and /dev/zero read until memory ran out."""
    run = make_run(tmp_path)
    (run / "manifest.json").symlink_to("/dev/zero")
    out, seconds = cli("status", run)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "manifest.json: unreadable (a symbolic link" in out.stderr  # read as absent: the manifest is descriptive
    assert seconds < 30


def test_reads_refuse_links_fifos_and_files_above_their_cap(tmp_path):
    run = RunDir(str(make_run(tmp_path)))
    root = Path(run.location)
    (root / "error.json").write_bytes(b"x" * 10)
    assert run.read_bytes("error.json", cap=10) == b"x" * 10
    with pytest.raises(OSError, match="larger than 9 bytes"):
        run.read_bytes("error.json", cap=9)
    os.mkfifo(root / "stopped.json")
    with pytest.raises(OSError, match="FIFO"):  # at once: no writer is waited for
        run.read_bytes("stopped.json")
    os.mkfifo(root / "sweep.log")
    with pytest.raises(OSError, match="FIFO"):  # the log a sweep appends to: no reader is waited for
        run.open_append("sweep.log")
    (root / "sweep.log").unlink()
    (tmp_path / "elsewhere.txt").write_text("kept\n")
    (root / "sweep.log").symlink_to(tmp_path / "elsewhere.txt")  # progress lines sent to a file outside
    with pytest.raises(OSError):
        run.open_append("sweep.log")
    assert (tmp_path / "elsewhere.txt").read_text() == "kept\n"
    (root / "result.json").symlink_to(root / "error.json")  # a link, even to a file inside, is not followed
    with pytest.raises(OSError, match="symbolic link"):
        run.read_bytes("result.json")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "result.json").write_text("{}")
    (root / "trials").mkdir()
    (root / "trials" / TID).symlink_to(tmp_path / "outside")  # a directory above the file leads outside
    with pytest.raises(RunError, match="outside the run directory"):
        run.read_bytes("trials", TID, "result.json")


def test_a_result_file_above_its_cap_is_damage_and_never_parsed(tmp_path, monkeypatch):
    """Before: 256 MiB of JSON were parsed (several GiB of Python objects)."""
    from orchestrator.run.layout import MAX_RESULT

    assert records.MAX_JSON_BYTES == MAX_RESULT <= 64 << 20
    run = RunDir(str(make_run(tmp_path)))
    (Path(run.location) / "trials" / TID).mkdir(parents=True)
    with open(Path(run.location) / "trials" / TID / "result.json", "wb") as f:
        f.truncate(MAX_RESULT + 1)  # sparse: nothing to write
    monkeypatch.setattr(records.json, "loads", lambda *a: pytest.fail("a file above its cap was parsed"))
    with pytest.raises(records.DamagedRecord, match=f"larger than {MAX_RESULT:,} bytes"):
        records.read_result(run, TID)


# ================================================================ B: one writer per run directory

LONG = {**STUDY, "name": "locked", "data": {"dataset": "digits", "subset": 200},
        "train": {"epochs": 3, "batch_size": 50},
        "attack": {"train": {"kind": "pgd", "eps": 0.25, "steps": 1, "step_size": 0.25},
                   "eval": {"kind": "pgd", "steps": 1}},
        "eval": {"val_examples": 40, "test_examples": 40, "train_examples": 40, "final_examples": 40},
        "tracking": {"tensorboard": False}}


@pytest.mark.slow
def test_a_second_driver_is_refused_and_the_first_is_unaffected(tmp_path):
    """Before: both drivers trained the same trials into the same records."""
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(LONG, sort_keys=False))
    run = tmp_path / "storage" / "locked"
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "sweep", str(tmp_path / "study.yaml"),
                                  "--storage", str(tmp_path / "storage"), "--executor", "local", "--device", "cpu"],
                                 stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=cli_env())
    try:
        deadline = time.monotonic() + 120
        while first.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                if json.loads((run / ".decaylab.lock").read_text()).get("pid") == first.pid:
                    break
            time.sleep(0.05)
        assert first.poll() is None, f"the first driver ended before the second started:\n{log.read_text()}"
        status, err = run_main(["resume", run, "--executor", "local", "--device", "cpu"])
        assert status == 1, err
        assert f"another decaylab (pid {first.pid} on host {socket.gethostname()}) is running this run directory " \
               "since" in err and "(`decaylab sweep`)" in err and "hint: wait for it to end" in err, err
        assert first.wait(timeout=300) == 0, log.read_text()
    finally:
        if first.poll() is None:
            first.kill()
    import pandas as pd

    trials = pd.read_parquet(run / "trials.parquet")
    assert trials["trial_id"].tolist() == [TID] and trials["status"].tolist() == ["ok"]
    assert (run / "sweep.log").read_text().splitlines()[-1].startswith("done in ")
    assert (run / ".decaylab.lock").read_text() == ""  # released: the file stays, empty


def lease(run: Path, **fields) -> dict:
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat(timespec="seconds")
    info = {"pid": 4242, "host": "gone-host", "command": "sweep", "started": old, "heartbeat": old, "token": "t",
            **fields}
    (run / ".decaylab.lock").write_text(json.dumps(info))
    return info


def test_a_silent_lease_is_refused_and_broken_only_with_the_flag_a_dead_local_one_at_once(tmp_path, monkeypatch):
    """On object stores (no flock) a lock is a lease with a heartbeat; here a local directory is made to use one."""
    from orchestrator.run import lock

    monkeypatch.setattr(lock, "take_flock", lambda run, command: None)  # as a file system without flock
    run = make_run(tmp_path)
    evaluate = ["evaluate", run, "--executor", "local", "--device", "cpu"]
    lease(run)
    status, err = run_main(evaluate)
    assert status == 1 and "pid 4242 on host gone-host" in err and "its last heartbeat was 60 minutes ago" in err
    assert "hint: if no decaylab runs this run directory any more, run the command again with --break-lock" in err
    dead = subprocess.Popen(["true"])
    dead.wait()
    lease(run, host=socket.gethostname(), pid=dead.pid, heartbeat=dt.datetime.now(dt.timezone.utc).isoformat())
    status, err = run_main(evaluate)  # its process is provably gone: no flag needed
    assert status == 0 and f"its process ({dead.pid}) is no longer running on this host" in err, err
    assert "breaking the lock" in err and "nothing to evaluate" in err, err
    assert not (run / ".decaylab.lock").exists()  # released when it ended
    live = lease(run, heartbeat=dt.datetime.now(dt.timezone.utc).isoformat())  # another host's, beating
    status, err = run_main([*evaluate, "--break-lock"])
    assert status == 1 and "--break-lock breaks only a lock whose holder is gone" in err, err
    assert json.loads((run / ".decaylab.lock").read_text()) == live


def test_a_lease_is_refreshed_and_released(tmp_path, monkeypatch):
    from orchestrator.run import lock

    monkeypatch.setattr(lock, "take_flock", lambda run, command: None)
    monkeypatch.setattr(lock, "HEARTBEAT_S", 0.05)
    run = RunDir(str(make_run(tmp_path)))
    (Path(run.location) / ".decaylab.lock").write_text("")  # emptied by a released flock: nobody holds it
    with lock.hold(run, "sweep"):
        first = json.loads(run.read_bytes(".decaylab.lock"))
        deadline = time.monotonic() + 10
        while json.loads(run.read_bytes(".decaylab.lock"))["heartbeat"] == first["heartbeat"]:
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
        with pytest.raises(lock.Busy, match="is running this run directory"), lock.hold(run, "resume", True):
            pass
    assert not run.exists(".decaylab.lock")


def test_report_reports_from_the_files_while_another_decaylab_writes_the_run(tmp_path, monkeypatch):
    from orchestrator.cli import report
    from orchestrator.run import lock, results

    run = make_run(tmp_path)
    (run / "trials" / TID).mkdir(parents=True)
    (run / "trials.parquet").write_bytes(b"x")
    consolidated = []
    monkeypatch.setattr(results, "consolidate", lambda r: consolidated.append(r.location))
    monkeypatch.setattr(report, "write", lambda *a, **k: "REPORT")
    with lock.hold(RunDir(str(run)), "sweep"):
        status, err = run_main(["report", run])
    assert status == 0 and consolidated == [], err
    assert f"another decaylab (pid {os.getpid()} on host" in err
    assert "reporting from its result files as they are" in err
    status, err = run_main(["report", run])
    assert status == 0 and consolidated == [str(run)] and "reporting from" not in err


def test_the_holder_named_in_a_lock_file_cannot_act_on_the_terminal(tmp_path):
    run = make_run(tmp_path)
    with open(run / ".decaylab.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(json.dumps({"pid": 1, "host": "evil\x1b]0;owned\x07\x1b[2J", "command": "sweep", "started": "x"}))
        held.flush()
        status, err = run_main(["evaluate", run, "--executor", "local", "--device", "cpu"])
    assert status == 1 and "on host evil\\x1b]0;owned\\x07\\x1b[2J" in err, err
    assert not any(c in err for c in RAW)


def test_a_dangling_symlink_sweep_000_is_not_reused(tmp_path):
    """Before: the listing left out the dangling link, and `sweep-000` was handed out again."""
    from orchestrator.sweep.driver import next_experiment

    run = make_run(tmp_path)
    (run / "sweep-000").symlink_to(tmp_path / "nowhere")
    assert next_experiment(RunDir(str(run))) == "sweep-001" and (run / "sweep-001").is_dir()
    assert next_experiment(RunDir(str(run))) == "sweep-002"  # each call claims its own
    assert not (tmp_path / "nowhere").exists()


# ================================================================ C: durable writes and exports


def test_durable_writes_sync_the_directory_after_the_rename(tmp_path, monkeypatch):
    synced = []
    fsync = os.fsync

    def spy(fd):
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    RunDir(str(tmp_path)).write_atomic(b"{}", "trials", TID, "result.json")
    assert synced == ["file", "directory"]
    synced.clear()
    RunDir(str(tmp_path)).write_atomic(b"x", "parts", "epochs", f"{TID}.arrow", durable=False)
    assert synced == []


def small_model():
    from trials.config import ModelConfig
    from trials.datasets import dataset_info
    from trials.models import build_model

    info = dataset_info("digits", 8, 10)
    meta = {"format": "decaylab-model/1", "architecture": ModelConfig().model_dump(mode="json"),
            "dataset": {"name": "digits", "channels": info.channels, "size": info.size, "classes": 10,
                        "mean": list(info.mean), "std": list(info.std)}}
    return build_model(ModelConfig(), info), meta


def test_an_interrupted_export_is_refused_by_load_model(tmp_path, monkeypatch):
    """Before: new weights were written, the sidecar write failed, and the old sidecar loaded the new weights."""
    from orchestrator.run import export
    from trials.models import load_model

    model, meta = small_model()
    out = tmp_path / "model.pt"
    export.save(str(out), model.state_dict(), meta)
    assert torch.equal(load_model(out).state_dict()["1.head.weight"], model.state_dict()["1.head.weight"])
    other = {k: v + 1 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    writes = []
    write = export.write_atomic_local

    def crash_on_the_second(path, data, *args):
        writes.append(Path(path).name)
        if len(writes) == 2:
            raise OSError(28, "No space left on device", str(path))
        write(path, data, *args)

    monkeypatch.setattr(export, "write_atomic_local", crash_on_the_second)
    with pytest.raises(OSError):
        export.save(str(out), other, meta)
    with pytest.raises(ValueError, match=r"sha256.*run `decaylab export` again"):
        load_model(out)
    monkeypatch.setattr(export, "write_atomic_local", write)
    export.save(str(out), other, meta)  # the export run again: a matching pair
    assert torch.equal(load_model(out).state_dict()["1.head.weight"], other["1.head.weight"])


def test_an_export_keeps_the_sidecar_of_another_model_file(tmp_path):
    """`model.pt` and `model.pth` share `model.json`: before, the second export overwrote the first's sidecar."""
    from orchestrator.run import export

    model, meta = small_model()
    (tmp_path / "model.pth").write_bytes(b"their weights")
    theirs = json.dumps({**meta, "format": "decaylab-model/2",
                         "weights": {"file": "model.pth", "sha256": hashlib.sha256(b"their weights").hexdigest()}})
    (tmp_path / "model.json").write_text(theirs)
    with pytest.raises(UserError, match=r"describes another model file, model\.pth") as err:
        export.save(str(tmp_path / "model.pt"), model.state_dict(), meta)
    assert "another name" in err.value.hint
    assert (tmp_path / "model.json").read_text() == theirs and not (tmp_path / "model.pt").exists()


# ================================================================ D: model files


def exported(tmp_path: Path, state, meta: dict) -> Path:
    """A model file and a sidecar that names it with its sha256."""
    buf = io.BytesIO()
    torch.save(state, buf)
    out = tmp_path / "model.pt"
    out.write_bytes(buf.getvalue())
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    (tmp_path / "model.json").write_text(json.dumps({**meta, "format": "decaylab-model/2",
                                                      "weights": {"file": out.name, "sha256": sha}}))
    return out


@pytest.mark.parametrize("change, says", [
    ({"dataset": {"classes": 10**13}}, "dataset.classes"),
    ({"dataset": {"channels": 2}}, "dataset.channels"),
    ({"dataset": {"size": 100_000}}, "dataset.size"),
    ({"dataset": {"mean": [0.5, 0.5, 0.5]}}, "one value per channel"),
    ({"architecture": {"arch": "wide_resnet", "width": 10**9, "depth": 28}}, "architecture.width"),
    ({"architecture": {"arch": "evil"}}, "architecture.arch"),
], ids=["classes", "channels", "size", "mean", "width", "arch"])
def test_a_sidecar_out_of_bounds_is_refused_before_a_network_is_built(tmp_path, change, says):
    """Before: `classes: 10**13` or `width: 10**9` built the network (an allocation error, or worse)."""
    from trials.models import load_model

    model, meta = small_model()
    for key, values in change.items():
        meta[key] = {**meta[key], **values}
    out = exported(tmp_path, model.state_dict(), meta)
    start = time.monotonic()
    with pytest.raises(ValueError, match=says):
        load_model(out)
    assert time.monotonic() - start < 5


def deflated(data: bytes) -> bytes:
    """The same zip with every entry deflated (torch stores them)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return out.getvalue()


def checkpoint(epoch: int, **extra) -> bytes:
    buf = io.BytesIO()
    torch.save({"trial_id": TID, "epoch": epoch, "status": "running", "config": {}, **extra}, buf)
    return buf.getvalue()


def test_a_deflated_checkpoint_or_model_file_is_refused_before_torch_reads_it(tmp_path, monkeypatch):
    run = RunDir(str(tmp_path / "run"))
    run.write_atomic(checkpoint(1), "trials", TID, "checkpoint-0001.pt")
    run.write_atomic(deflated(checkpoint(2, w=torch.zeros(1 << 20))), "trials", TID, "checkpoint-0002.pt")
    state, warning = records.load_checkpoint(run, TID)
    assert state["epoch"] == 1 and "checkpoint-0002.pt is unusable" in warning and "is compressed" in warning

    from trials.models import load_model

    model, meta = small_model()
    out = exported(tmp_path, model.state_dict(), meta)
    out.write_bytes(deflated(out.read_bytes()))
    side = json.loads((tmp_path / "model.json").read_text())
    side["weights"]["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    (tmp_path / "model.json").write_text(json.dumps(side))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load saw a compressed file"))
    with pytest.raises(ValueError, match="is compressed"):
        load_model(out)


class System:
    """Unpickling it runs a shell command: what a crafted model file would do."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_code_in_a_model_file_is_refused_with_a_clear_error(tmp_path):
    """Refused before too (`weights_only=True`), but as torch's multi-line UnpicklingError, not a ValueError."""
    from trials.models import load_model

    marker = tmp_path / "pwned"
    _, meta = small_model()
    out = exported(tmp_path, {"1.head.weight": System(f"touch {marker}")}, meta)
    with pytest.raises(ValueError, match=r"model\.pt: refused by torch's weights-only loader") as err:
        load_model(out)
    assert "\n" not in str(err.value)
    run = RunDir(str(tmp_path / "run"))
    run.write_atomic(checkpoint(1), "trials", TID, "checkpoint-0001.pt")
    run.write_atomic(checkpoint(2, w=System(f"touch {marker}")), "trials", TID, "checkpoint-0002.pt")
    state, _ = records.load_checkpoint(run, TID)
    assert state["epoch"] == 1 and not marker.exists()


def test_an_old_torch_is_refused_before_any_file_is_loaded(tmp_path, monkeypatch):
    """Before: any torch loaded the files; the weights-only loader is a safety boundary from torch 2.10."""
    from trials.models import load_model

    model, meta = small_model()
    out = exported(tmp_path, model.state_dict(), meta)
    run = RunDir(str(tmp_path / "run"))
    run.write_atomic(checkpoint(1), "trials", TID, "checkpoint-0001.pt")
    monkeypatch.setattr(torch, "__version__", "2.9.1")
    with pytest.raises(RuntimeError, match=r"torch 2\.9\.1 is installed.*torch ≥ 2\.10"):
        load_model(out)
    with pytest.raises(RunError, match=r"torch 2\.9\.1") as err:  # not a damaged checkpoint to fall back from
        records.load_checkpoint(run, TID)
    assert "torch>=2.10" in err.value.hint
    assert '"torch>=2.10"' in (REPO / "pyproject.toml").read_text()


# ================================================================ E: bounded studies


def test_a_recorded_study_of_billions_of_trials_is_answered_at_once(tmp_path):
    """Before: reading the run's study built every one of its 8×10⁹ trials to check their ids."""
    axis = 2000
    study = {**STUDY, "methods": {"wd": {"kind": "fixed", "lambda": [i / 10_000 for i in range(axis)]}},
             "lr": [(i + 1) / 10_000 for i in range(axis)], "seeds": list(range(axis))}
    run = make_run(tmp_path, study)
    assert 40_000 < (run / "study.yaml").stat().st_size < 100_000
    out, seconds = cli("status", run)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "damaged" in out.stderr and "8,000,000,000 trials" in out.stderr and "1,000,000" in out.stderr
    assert seconds < 30


def test_readers_never_build_the_trials_of_a_recorded_study(tmp_path, monkeypatch):
    """A run of 200,000 trials (allowed with --allow-large-grid): `status` reads its study without building them."""
    from orchestrator.study import checks
    from trials.arms.base import ArmGrid

    study = {**STUDY, "methods": {"wd": {"kind": "fixed", "lambda": [i / 1000 for i in range(100)]}},
             "lr": [(i + 1) / 1000 for i in range(100)], "seeds": list(range(20))}
    run = make_run(tmp_path, study)
    monkeypatch.setattr(checks, "expand_grid", lambda s: pytest.fail("the grid was expanded"))
    monkeypatch.setattr(ArmGrid, "points", lambda self: pytest.fail("an arm's grid was expanded"))
    status, out = run_main(["status", run])
    assert status == 0 and "trials: 0" in out, out


# ================================================================ F: output that cannot act on its reader


def test_status_shows_escape_sequences_from_files_as_text(tmp_path, capsys):
    from orchestrator.study.load import study_from_dict
    from orchestrator.study.plan import expand_grid

    run = make_run(tmp_path)
    (run / "manifest.json").write_text(json.dumps({"study": "s\x1b[2J", "search": "grid\x1b]0;title\x07",
                                                   "trials_planned": 1, "finished": None}))
    config = expand_grid(study_from_dict(STUDY, "t"))[0].to_dict()
    (run / "trials" / TID).mkdir(parents=True)
    (run / "trials" / TID / "error.json").write_text(json.dumps(
        {"trial_id": TID, "error": "boom \x1b]52;c;cHduZWQ=\x07 \x9b31m red\r", "config": config}))
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr()
    assert not any(c in out.out + out.err for c in (*RAW, "\r")), out.out
    assert "\\x1b]52;c;cHduZWQ=\\x07 \\x9b31m red\\x0d" in out.out and "grid\\x1b]0;title\\x07" in out.out


def test_live_lines_and_the_sweep_log_show_escape_sequences_as_text():
    from orchestrator.sweep.live import Progress

    stream, sink = io.StringIO(), io.StringIO()
    live = Progress(total=2, stream=stream, sink=sink, every=0.0)
    live.trial_started("wd-0\x1b[2J")
    live.result("wd-0\x1b[2J", "wd\x1b]0;title\x07", 0.5, 1, 2)
    live.finished("wd-0\x1b[2J", "failed")
    live.say("warning: wd-0 failed: \x1b]52;c;cHduZWQ=\x07")
    for text in (stream.getvalue(), sink.getvalue(), "\n".join(live.log)):
        assert not any(c in text for c in RAW), text
    assert "wd\\x1b]0;title\\x07 0.500" in stream.getvalue()
