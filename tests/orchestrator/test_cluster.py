"""A real two-node Ray cluster on this machine: head and worker started on loopback by the functions of
cluster/ray-nodes.sh, the ones cluster/slurm.sbatch starts a SLURM job's nodes with."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers.sweep import REPO, decaylab, start_decaylab, write_study

pytestmark = [pytest.mark.slow, pytest.mark.ray]

RAY = str(Path(sys.executable).with_name("ray"))
# the nodes start with token authentication (cluster/ray-nodes.sh refuses without it) and every process of
# the cluster must present the token; the test makes its own rather than depend on one left on the machine
TOKEN_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env() -> dict:
    path = f"{Path(RAY).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # this venv's `ray` first
    return {**os.environ, "PATH": path, "RAY_USAGE_STATS_ENABLED": "0", **TOKEN_ENV}


def start_node(function: str, *args: str, log: Path) -> subprocess.Popen:
    """`ray_head`/`ray_worker` of cluster/ray-nodes.sh with `args`, one CPU and no GPU."""
    command = f"source {REPO / 'cluster' / 'ray-nodes.sh'}; {function} 127.0.0.1 {' '.join(args)} 1 0"
    return subprocess.Popen(["bash", "-c", command], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env=ray_env(), start_new_session=True)


def alive_nodes(address: str) -> int:
    out = subprocess.run([RAY, "status", "--address", address], capture_output=True, text=True, env=ray_env(),
                         timeout=60)
    return out.stdout.count(" node_") if out.returncode == 0 else 0


def raylet_of(node: subprocess.Popen) -> int:
    """The pid of the raylet a node started by `start_node` runs."""
    out = subprocess.run(["pgrep", "-a", "-g", str(node.pid)], capture_output=True, text=True).stdout
    return next(int(line.split()[0]) for line in out.splitlines() if line.split()[1].endswith("/raylet"))


def stop(proc: subprocess.Popen) -> None:
    """Stop a node and every process it started (its process group). `ray start --block` stops its node on
    SIGTERM, but a worker node then waits about half a minute on a head that is going too: after a few
    seconds the group is killed, which leaves nothing behind either."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=8)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the node's raylet, GCS and workers: none outlives the test
        proc.wait()


@pytest.fixture
def two_node_cluster(tmp_path):
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = start_node("ray_head", str(port), log=tmp_path / "head.log")
    procs = [head]
    try:
        deadline = time.monotonic() + 90
        while alive_nodes(address) < 1:
            assert time.monotonic() < deadline and head.poll() is None, (tmp_path / "head.log").read_text()[-2000:]
            time.sleep(1)
        procs.append(start_node("ray_worker", address, log=tmp_path / "worker.log"))
        while alive_nodes(address) < 2:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(1)
        yield address
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_sweep_and_evaluate_on_a_two_node_cluster_use_both_nodes(two_node_cluster, tmp_path):
    # trials of several seconds: of trials shorter than a worker's start, the first worker would run them all
    study = write_study(tmp_path, lr=[0.05], train={"epochs": 3, "batch_size": 64}, data={"dataset": "digits"},
                        eval={"val_examples": None, "test_examples": None, "train_examples": 300})
    out = decaylab("sweep", study, "--storage", tmp_path / "shared", "--address", two_node_cluster,
                   env=TOKEN_ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "shared" / "tiny"
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == 4 and set(trials["status"]) == {"ok"}
    assert len(pd.read_parquet(run / "epochs.parquet")) == 4 * 3
    nodes = set()
    for result in run.glob("sweep-000/*/result.json"):
        nodes |= {json.loads(line)["node"] for line in result.read_text().splitlines() if line.strip()}
    assert len(nodes) == 2, f"trials ran on {len(nodes)} node(s)"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["hardware"]["cluster"]["CPU"] == 2.0
    # `evaluate` joins the same cluster: each trial's AutoAttack a Ray task, its rows merged once
    out = decaylab("evaluate", run, "--address", two_node_cluster, "--set", "eval.autoattack.enabled=true",
                   "eval.autoattack.examples=20", env=TOKEN_ENV, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    evals = pd.read_parquet(run / "evaluations.parquet")
    assert evals["trial_id"].nunique() == 4 and evals["autoattack_acc"].notna().all()
    assert (evals["examples"] == 20).all()
    assert pd.read_parquet(run / "trials.parquet")["autoattack_best"].notna().all()


def test_a_sweep_whose_cluster_is_stopped_with_it_stops_at_once(tmp_path):
    """A batch scheduler cancelling the whole job stops the Ray nodes' steps and the driver together: the
    driver says its stop line and exits with 143 at once, not after Ray's minute of waiting for the head.

    The head's raylet is signalled a moment before the rest: it then shuts down cleanly (rather than
    after its agents' deaths, 10 s later), the order in which Ray would itself end a driver that had
    objects on that node with status 1 about 30 ms later (a CI run once met it by chance)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = start_node("ray_head", str(port), log=tmp_path / "head.log")
    try:
        deadline = time.monotonic() + 90
        while alive_nodes(address) < 1:
            assert time.monotonic() < deadline and head.poll() is None, (tmp_path / "head.log").read_text()[-2000:]
            time.sleep(1)
        study = write_study(tmp_path, lr=[0.05], train={"epochs": 8, "batch_size": 64})
        run = tmp_path / "shared" / "tiny"
        log = tmp_path / "driver.log"
        driver = start_decaylab("sweep", study, "--storage", tmp_path / "shared", "--address", address,
                                env=TOKEN_ENV, log=log)
        while not list(run.glob("trials/*/checkpoint-*.pt")):  # a trial is training
            assert time.monotonic() < deadline + 120 and driver.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        os.kill(raylet_of(head), signal.SIGTERM)
        time.sleep(0.005)
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops its node
        driver.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        driver.wait(timeout=120)
        took = time.monotonic() - sent
    finally:
        stop(head)
    text = log.read_text()
    assert driver.returncode == 143, text[-3000:]
    assert took < 30, f"the driver took {took:.0f} s to stop"
    assert f"`decaylab resume {run}`" in text.splitlines()[-1]
    assert "Traceback" not in text
