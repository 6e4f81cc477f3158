"""Every shell block of README.md and the guides is run here, or says above it why not (`<!-- not run: … -->`).

A block runs as one bash script (`set -euo pipefail`) in a fresh directory holding `studies/` and the page's
`<!-- file: NAME -->` study files, with this environment's `decaylab` first on PATH; it must exit 0. Blocks that
train (`<!-- run: slow -->`) run with the slow tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.docs import REPO, Block, all_blocks, guides, study_files

SHELL = ("sh", "bash", "shell", "console")
BLOCKS = all_blocks(guides(), *SHELL)
FAST = [b for b in BLOCKS if b.marker is None]
SLOW = [b for b in BLOCKS if b.marker == "run: slow"]


def test_every_shell_block_is_run_or_says_why_not():
    unaccounted = [f"{b.where}: marker {b.marker!r}" for b in BLOCKS
                   if b.marker not in (None, "run: slow")
                   and not (b.marker.startswith("not run:") and b.marker.split(":", 1)[1].strip())]
    assert not unaccounted, ("a shell block must be run by the tests, or carry `<!-- not run: why -->` above it:\n"
                             + "\n".join(unaccounted))
    assert FAST and SLOW, "the guides' cheap commands run here; at least one sweep runs with the slow tests"


def run_block(block: Block, workdir: Path, timeout: float) -> None:
    (workdir / "studies").symlink_to(REPO / "studies", target_is_directory=True)
    for name, text in study_files(block.path).items():
        (workdir / name).write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, (f"{block.where} exited {done.returncode}:\n{block.text}\n"
                                  f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}")


@pytest.mark.parametrize("block", FAST, ids=lambda b: b.where)
@pytest.mark.slow
def test_a_shell_block_runs(block, tmp_path):
    run_block(block, tmp_path, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("block", SLOW, ids=lambda b: b.where)
def test_a_training_shell_block_runs(block, tmp_path):
    run_block(block, tmp_path, timeout=600)
