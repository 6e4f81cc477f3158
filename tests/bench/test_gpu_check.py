"""The GPU check's code paths on the CPU: bf16 agreement, exact peaks, and the dry run (compile without
recompiles, evaluation, packing through Ray Tune)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # the benchmarks run from the repository root
    import bench.gpu_check

    return bench.gpu_check


def test_bf16_autocast_step_agrees_with_fp32(gpu_check):
    loss_difference, cosine = gpu_check.agreement(gpu_check.DRY)
    assert loss_difference < 0.05 and cosine > 0.95


def test_peak_is_looked_up_by_the_exact_device_name(gpu_check):
    assert gpu_check.PEAK_BF16_TFLOPS["NVIDIA H100 80GB HBM3"] > gpu_check.PEAK_BF16_TFLOPS["NVIDIA H100 PCIe"]
    assert gpu_check.PEAK_BF16_TFLOPS.get("NVIDIA H100") is None  # a part of a name matches nothing


@pytest.mark.slow
@pytest.mark.ray  # its packing section runs trials through Ray Tune on a local cluster
def test_dry_run_runs_every_section_and_prints_every_closing_line(gpu_check):
    assert gpu_check.DRY.train_images % gpu_check.DRY.batch, "the dry run must keep a ragged last batch"
    out = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--dry-run"], capture_output=True, text=True,
                         cwd=REPO, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    closing = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in out.stdout.splitlines()
               if line.startswith("gpu_")}
    assert set(closing) == set(gpu_check.CLOSINGS)
    assert closing["gpu_recompiles"] == "0"  # compiled once, the ragged last batch included, and never again
    assert float(closing["gpu_bf16_grad_cosine"]) > 0.95
