"""The cluster recipes, and the SLURM commands the docs show, are sized to the study they run: every GPU slot a
node offers (GPUs × ⌊1/gpu⌋ trials) has the CPUs its trial asks for, so no GPU is left idle."""

from __future__ import annotations

import math
import re
import shlex

import yaml
from helpers.docs import REPO, all_blocks, guides

from orchestrator.study.catalog import study_file
from orchestrator.study.load import load_study


def resources(words: list[str]):
    """The resources of the study a decaylab command line runs (`sweep STUDY … --set …`)."""
    study = words[words.index("sweep") + 1]
    sets = [w for w in words[words.index("sweep") + 2:] if "=" in w and not w.startswith("-")]
    return load_study(study_file(str(REPO / study) if "/" in study else study), sets, check_data=False).resources


def slots(cpus: float, gpus: float, r) -> tuple[int, int]:
    """(trials the node runs at once, trials its GPUs hold)."""
    by_gpu = gpus * math.floor(1 / r.gpu) if r.gpu < 1 else math.floor(gpus / r.gpu)
    return min(by_gpu, math.floor(cpus / r.cpu)), by_gpu


def test_the_kuberay_gpu_workers_leave_no_gpu_slot_idle():
    spec = yaml.safe_load((REPO / "cluster" / "kuberay-rayjob.yaml").read_text())["spec"]
    r = resources(shlex.split(spec["entrypoint"]))
    for group in spec["rayClusterSpec"]["workerGroupSpecs"]:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        running, held = slots(float(limits["cpu"]), float(limits.get("nvidia.com/gpu", 0)), r)
        assert held > 0 and running == held, f"{group['groupName']}: {running} of {held} GPU slots used"


def test_the_slurm_script_and_the_documented_sbatch_lines_leave_no_gpu_slot_idle():
    script = (REPO / "cluster" / "slurm.sbatch").read_text()
    defaults = dict(re.findall(r"^#SBATCH --(cpus-per-task|gpus-per-task)=(\d+)", script, re.M))
    example = re.search(r"^#\s+sbatch cluster/slurm.sbatch (sweep .*)$", script, re.M)[1]
    commands = [(defaults, shlex.split(example))]
    for block in all_blocks(guides(), "sh", "bash"):
        for line in block.text.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["sbatch"] and "sweep" in words:
                flags = dict(re.findall(r"--(cpus-per-task|gpus-per-task)=(\d+)", line))
                commands.append(({**defaults, **flags}, words))
    assert len(commands) >= 3
    for flags, words in commands:
        running, held = slots(float(flags["cpus-per-task"]), float(flags["gpus-per-task"]), resources(words))
        assert running == held, f"{' '.join(words)}: {running} of {held} GPU slots used"

