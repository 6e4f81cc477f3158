"""Storage on S3 for real: a sweep, a killed driver, a resume and a report through `s3://`, against a local
S3-compatible server (moto) that the test starts on 127.0.0.1.

The endpoint reaches pyarrow (decaylab's records), Ray (its experiment directory) and the trial
workers through the environment (`AWS_ENDPOINT_URL`), as it would for MinIO or Ceph.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pyarrow.fs as pafs
import pytest
from helpers.sweep import decaylab, start_decaylab, write_study

pytestmark = [pytest.mark.slow, pytest.mark.ray]
pytest.importorskip("moto", reason="moto[server] (the dev extra) provides the local S3 server")

BUCKET = "decaylab"
STUDY = {"name": "ons3", "lr": [0.02, 0.05], "methods": {"wd": {"kind": "fixed", "lambda": [5.0e-4]}},
         "train": {"epochs": 3, "batch_size": 64}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with an empty bucket; yields (environment, filesystem)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_EC2_METADATA_DISABLED": "true"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, log.read_text()
                time.sleep(0.2)
        fs = pafs.S3FileSystem(access_key="test", secret_key="test", region="us-east-1", scheme="http",
                               endpoint_override=f"127.0.0.1:{port}", allow_bucket_creation=True)
        fs.create_dir(BUCKET)
        yield env, fs
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_sweep_kill_resume_and_report_through_s3(s3, tmp_path):
    env, fs = s3
    storage = f"s3://{BUCKET}/results"
    run = f"{storage}/{STUDY['name']}"
    study = write_study(tmp_path, **STUDY)
    proc = start_decaylab("sweep", study, "--storage", storage, env=env, log=tmp_path / "sweep.log")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # the first checkpoint, then kill the driver
        found = fs.get_file_info(pafs.FileSelector(f"{BUCKET}/results/ons3/trials", recursive=True,
                                                   allow_not_found=True))
        if any(f.base_name.startswith("checkpoint-") for f in found):
            break
        time.sleep(0.2)
    assert proc.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(3)  # the orphaned workers notice within seconds

    # the sweep above went through Ray; the resume reads and writes the same S3 records in process
    out = decaylab("resume", run, "--executor", "local", env=env)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    with fs.open_input_file(f"{BUCKET}/results/ons3/epochs.parquet") as f:
        epochs = pd.read_parquet(f)
    with fs.open_input_file(f"{BUCKET}/results/ons3/trials.parquet") as f:
        trials = pd.read_parquet(f)
    assert len(trials) == 2 and set(trials["status"]) == {"ok"}
    assert len(epochs) == 2 * 3 and not epochs.duplicated(["trial_id", "epoch"]).any()

    status = decaylab("status", run, env=env)
    assert status.returncode == 0 and "2 ok" in status.stdout
    report = decaylab("report", run, "--out", tmp_path / "report", env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    assert (tmp_path / "report" / "report.md").exists()
