"""The cluster recipes without a cluster: cluster/slurm.sbatch run with stand-ins for SLURM's and Ray's
commands (it starts the nodes with cluster/ray-nodes.sh and passes SIGTERM on to the sweep's driver), the
KubeRay RayJob manifest, and token authentication in every recipe.

What a user relies on, one sentence per test:

- test_every_ray_start_in_the_cluster_recipes_uses_token_mode_and_one_shared_token: whichever recipe in
  cluster/ starts the cluster (ray up, SLURM, KubeRay, or by hand from a comment), no node runs without Ray's
  token authentication, and all nodes share one token that only its owner can read.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from helpers.sweep import REPO

CLUSTER = REPO / "cluster"
SBATCH = CLUSTER / "slurm.sbatch"
RAY_START = re.compile(r"\bray start\b")

# stand-ins: each records its command line in $LOGS/<name>.log
STUBS = {
    "scontrol": 'echo "$*" >> "$LOGS/scontrol.log"; printf "node1\\nnode2\\n"',
    # srun -w NODE ... COMMAND: run COMMAND here
    "srun": 'echo "$*" >> "$LOGS/srun.log"; while [[ $1 == -* ]]; do [[ $1 == -w ]] && shift; shift; done; exec "$@"',
    "hostname": "echo 127.0.0.1",
    # `ray start --block` blocks until signalled; `ray status` shows a node per `ray start` so far; each start
    # also records the authentication it would run with in $LOGS/ray-auth.log
    "ray": 'if [[ $1 == start ]]; then trap "kill \\$!; exit 0" TERM; echo "$*" >> "$LOGS/ray.log"; '
           'echo "${RAY_AUTH_MODE:-none} ${RAY_AUTH_TOKEN:-}${RAY_AUTH_TOKEN_PATH:-}" >> "$LOGS/ray-auth.log"; '
           'sleep 60 & wait; else grep "^start" "$LOGS/ray.log" | sed "s/.*/ node_/"; fi',
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


@pytest.mark.slow
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
    auth = (tmp_path / "ray-auth.log").read_text().splitlines()  # both nodes: token mode, one token of the job
    assert len(auth) == 2 and len(set(auth)) == 1 and re.fullmatch(r"token [0-9a-f]{64}", auth[0])


def test_the_kuberay_job_runs_a_sweep_on_a_token_authenticated_cluster():
    job = yaml.safe_load((REPO / "cluster" / "kuberay-rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["entrypoint"].startswith("decaylab sweep ") and "--address auto" in spec["entrypoint"]
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token"} and cluster["rayVersion"] == "2.60.0"
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == \
        cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"]


def test_every_ray_start_in_the_cluster_recipes_uses_token_mode_and_one_shared_token(tmp_path):
    recipes = sorted(path for path in CLUSTER.iterdir() if path.is_file())
    names = {path.name for path in recipes}
    assert names >= {"aws.yaml", "onprem.yaml", "ray-nodes.sh", "slurm.sbatch", "kuberay-rayjob.yaml"}
    shells = [path for path in recipes if path.suffix in (".sh", ".sbatch")]
    starters = {name: path for path in shells for name in node_starters(path)}
    assert set(starters) == {"ray_head", "ray_worker"}
    for path in recipes:
        text = path.read_text()
        for command in by_hand_commands(text):
            assert "RAY_AUTH_MODE=token" in command and "RAY_AUTH_TOKEN" in command, f"{path.name}: {command}"
        if path.suffix == ".yaml":
            for document in yaml.safe_load_all(text):
                check_yaml(path.name, document)
        elif path in shells:
            check_script(path, set(starters))
        else:
            pytest.fail(f"cluster/{path.name}: a recipe this test has no check for; add one")
    for name, path in starters.items():
        check_refuses_without_token(path, name, tmp_path / name)


def by_hand_commands(text: str) -> list[str]:
    """The `ray start` commands a reader would copy from comments: backticked ones and indented comment lines."""
    commands = []
    for line in text.splitlines():
        comment = re.search(r"(?:^|\s)#(.*)$", line)
        if comment is None:
            continue
        body = comment.group(1)
        commands += [span for span in re.findall(r"`([^`]*)`", body) if RAY_START.search(span)]
        if re.match(r"\s{2,}\S", body) and RAY_START.search(body):
            commands.append(body.strip())
    return commands


def strings_in(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return [value] if isinstance(value, str) else []


def check_yaml(name: str, document: dict) -> None:
    """A KubeRay resource must ask the operator for token mode; a `ray up` config must start every node with it."""
    if document.get("kind") in ("RayJob", "RayCluster", "RayService"):
        spec = document["spec"]
        cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
        assert cluster.get("authOptions") == {"mode": "token"}, f"{name}: KubeRay without authOptions.mode token"
        assert not [s for s in strings_in(document) if RAY_START.search(s)], f"{name}: a ray start of its own"
    elif "head_start_ray_commands" in document:
        check_launcher(name, document)
    else:
        assert not [s for s in strings_in(document) if RAY_START.search(s)], f"{name}: a ray start this test misses"


def check_launcher(name: str, config: dict) -> None:
    """Each `ray start` of a `ray up` config runs with RAY_AUTH_MODE=token and one token file, which
    file_mounts ships from the launching machine to every node and a setup command makes mode 0600."""
    commands = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    starts = [command for command in commands if RAY_START.search(command)]
    assert len(starts) == 2 and not [s for s in strings_in(config) if RAY_START.search(s) and s not in starts]
    tokens = set()
    for command in starts:  # each command runs in a shell of its own: the variables must be on it
        prefix = command[: RAY_START.search(command).start()]
        assert re.search(r"(^|\s)RAY_AUTH_MODE=token\s", prefix), f"{name}: {command}"
        token = re.search(r"(?:^|\s)RAY_AUTH_TOKEN_PATH=(\S+)\s", prefix)
        assert token, f"{name}: {command}"
        tokens.add(token.group(1).replace("$HOME/", "~/"))
    assert len(tokens) == 1, f"{name}: the head and the workers use different tokens: {tokens}"
    token = tokens.pop()
    source = config["file_mounts"].get(token)
    assert source and source.startswith(("~/", "/")), f"{name}: {token} is not shipped from a file outside the repo"
    setup = config.get("setup_commands", []) + config.get("initialization_commands", [])
    assert f"chmod 600 {token}" in setup, f"{name}: {token} is not made mode 0600 on the nodes"


def code_lines(path: Path) -> list[tuple[str | None, str]]:
    """(function the line is in, or None at the top level; the line without its comment) of a shell script."""
    lines, function = [], None
    for line in path.read_text().splitlines():
        code = re.sub(r"(^|\s)#.*$", "", line)
        if definition := re.match(r"(\w+)\(\) \{", code):
            function = definition.group(1)
        lines.append((function, code))
        if code.startswith("}"):
            function = None
    return lines


def node_starters(path: Path) -> list[str]:
    """The functions of a shell script that run `ray start`; a `ray start` outside a function fails the test."""
    starters = set()
    for function, line in code_lines(path):
        if RAY_START.search(line):
            assert function, f"{path.name}: a ray start outside a function this test runs: {line.strip()}"
            starters.add(function)
    return sorted(starters)


def check_script(path: Path, starters: set[str]) -> None:
    """A script that starts nodes with the starter functions exports token mode and a token before it does."""
    lines = [line for function, line in code_lines(path) if function is None]
    calls = [i for i, line in enumerate(lines) if set(re.findall(r"\w+", line)) & starters]
    if not calls:
        return
    mode = [i for i, line in enumerate(lines) if re.match(r"export RAY_AUTH_MODE=token\b", line)]
    token = [i for i, line in enumerate(lines) if re.match(r"export RAY_AUTH_TOKEN(_PATH)?\b", line)]
    assert mode and token and max(mode[0], token[0]) < calls[0], f"{path.name}: starts nodes before the token"


def check_refuses_without_token(path: Path, function: str, work: Path) -> None:
    """Run `function` with a stand-in `ray`: it must not start a node without token mode and a token."""
    work.mkdir()
    (work / "ray").write_text('#!/bin/bash\necho "$RAY_AUTH_MODE $RAY_AUTH_TOKEN" >> "$LOGS/ray-auth.log"\n')
    (work / "ray").chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    base.update(PATH=f"{work}{os.pathsep}{os.environ['PATH']}", LOGS=str(work))
    command = f"source {path}; {function} 127.0.0.1 127.0.0.1:6379 1 0"
    without = ({}, {"RAY_AUTH_MODE": "token"}, {"RAY_AUTH_TOKEN": "x"}, {"RAY_AUTH_MODE": "off", "RAY_AUTH_TOKEN": "x"})
    for env in without:
        result = subprocess.run(["bash", "-c", command], env={**base, **env}, capture_output=True, text=True)
        assert result.returncode != 0 and not (work / "ray-auth.log").exists(), f"{path.name}: {function} {env}"
    env = {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "x"}
    result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True)
    assert result.returncode == 0 and (work / "ray-auth.log").read_text() == "token x\n", result.stderr
