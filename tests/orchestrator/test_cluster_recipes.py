"""The cluster recipes without a cluster: cluster/slurm.sbatch run with stand-ins for SLURM's and Ray's
commands (it starts the nodes with cluster/ray-nodes.sh and passes SIGTERM on to the sweep's driver), and
the KubeRay RayJob manifest."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import yaml
from helpers.sweep import REPO

SBATCH = REPO / "cluster" / "slurm.sbatch"

# stand-ins: each records its command line in $LOGS/<name>.log
STUBS = {
    "scontrol": 'echo "$*" >> "$LOGS/scontrol.log"; printf "node1\\nnode2\\n"',
    # srun -w NODE ... COMMAND: run COMMAND here
    "srun": 'echo "$*" >> "$LOGS/srun.log"; while [[ $1 == -* ]]; do [[ $1 == -w ]] && shift; shift; done; exec "$@"',
    "hostname": "echo 127.0.0.1",
    # `ray start --block` blocks until signalled; `ray status` shows a node per `ray start` so far
    "ray": 'if [[ $1 == start ]]; then trap "kill \\$!; exit 0" TERM; echo "$*" >> "$LOGS/ray.log"; sleep 60 & wait; '
           'else grep "^start" "$LOGS/ray.log" | sed "s/.*/ node_/"; fi',
    # the sweep's driver: exits 130 on SIGTERM (as decaylab does), and says when it is ready for one
    "decaylab": 'trap "echo TERM >> $LOGS/decaylab.log; kill \\$!; exit 130" TERM; echo "$*" >> "$LOGS/decaylab.log"; '
                "sleep 60 & wait",
}


def stubs(directory: Path) -> Path:
    directory.mkdir()
    for name, body in STUBS.items():
        (directory / name).write_text(f"#!/bin/bash\n{body}\n")
        (directory / name).chmod(0o755)
    return directory


def test_the_slurm_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True).returncode == 0


def test_slurm_starts_ray_as_the_cluster_test_does_and_forwards_sigterm_to_the_driver(tmp_path):
    bin_dir = stubs(tmp_path / "bin")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LOGS": str(tmp_path),
           "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_SUBMIT_DIR": str(REPO), "SLURM_CPUS_PER_TASK": "16",
           "SLURM_GPUS_PER_TASK": "4", "DECAYLAB": str(bin_dir / "decaylab")}
    job = subprocess.Popen(["bash", str(SBATCH), "sweep", "studies/digits.yaml", "--storage", "/shared/x"],
                           env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    driver_log = tmp_path / "decaylab.log"
    deadline = time.monotonic() + 30
    while not driver_log.exists():
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[0]
        time.sleep(0.1)
    job.send_signal(signal.SIGTERM)  # what SLURM does on pre-emption or near the time limit
    output, _ = job.communicate(timeout=30)
    assert job.returncode == 130, output  # the driver's own status
    assert driver_log.read_text().splitlines() == ["sweep studies/digits.yaml --storage /shared/x "
                                                   "--address 127.0.0.1:6379", "TERM"]
    assert "sbatch cluster/slurm.sbatch resume RUN_DIR" in output
    starts = [line for line in (tmp_path / "ray.log").read_text().splitlines() if line.startswith("start")]
    # cluster/ray-nodes.sh's commands: tests/test_cluster.py starts its real two-node cluster with them
    assert starts == ["start --head --block --node-ip-address=127.0.0.1 --port=6379 --num-cpus=16 --num-gpus=4 "
                      "--include-dashboard=false --disable-usage-stats",
                      "start --block --node-ip-address=127.0.0.1 --address=127.0.0.1:6379 --num-cpus=16 "
                      "--num-gpus=4 --disable-usage-stats"]
    steps = (tmp_path / "srun.log").read_text()  # each node is a job step on its own node
    assert "--nodes=1 --ntasks=1 -w node1 bash -c" in steps and "--nodes=1 --ntasks=1 -w node2 bash -c" in steps


def test_the_kuberay_job_runs_a_sweep_on_a_token_authenticated_cluster():
    job = yaml.safe_load((REPO / "cluster" / "kuberay-rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["entrypoint"].startswith("decaylab sweep ") and "--address auto" in spec["entrypoint"]
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token"} and cluster["rayVersion"] == "2.60.0"
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == \
        cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"]
