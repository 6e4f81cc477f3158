"""What the benchmarks share: side-by-side timing, synthetic 32×32 data, trial configs, closing lines.

Every ratio is measured in one process with its two variants interleaved (A B B A A B …) and
summarised by medians, so a machine that other jobs load at the same time slows both variants
alike. Times are taken on two clocks: wall time, and the CPU time of this process. With one
intra-op thread (how a `resources.cpu: 1` trial runs) the CPU clock does not count the time
the process waited for a core that another job held, so ratios from it are what an idle
machine would show; the benchmarks print both and close on the CPU-time ratio.

Every benchmark takes `--quick` (or BENCH_QUICK=1 in its environment): its smallest sizes, to check that
it runs; a quick run's figures mean nothing and `bench.run_all --quick` records none.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from trials import cost
from trials import data as data_mod
from trials.config import AttackConfig, DataConfig, GridPoint, ModelConfig, TrainAttackSpec, TrainConfig, TrialConfig
from trials.cost import forward_flops  # noqa: F401 - the benchmarks import it from here

REPO = Path(__file__).resolve().parents[1]
CIFAR_INFO = data_mod.DATASETS["cifar10"][0]  # 3×32×32, 10 classes, crop pad 4, flips
QUICK = "--quick" in sys.argv[1:] or os.environ.get("BENCH_QUICK", "0") not in ("", "0")


def sized(full, quick):
    """`full`, or `quick` in a quick run."""
    return quick if QUICK else full


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


def timed(fn: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def interleaved(variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[Timing]]:
    """Run the variants in turn, `repeats` rounds after `warmup` untimed ones; the order of each
    round is the reverse of the one before, so drift in the machine's load hits them evenly."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    out: dict[str, list[Timing]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            out[name].append(timed(variants[name]))
    return out


def median(times: list[Timing], clock: str = "cpu") -> float:
    return statistics.median(getattr(t, clock) for t in times)


def paired_ratio(a: list[Timing], b: list[Timing], clock: str = "cpu") -> float:
    """Median over rounds of a/b: each round's two runs saw the same machine state."""
    return statistics.median(getattr(x, clock) / getattr(y, clock) for x, y in zip(a, b, strict=True))


def one_thread() -> None:
    """One intra-op thread, as a `resources.cpu: 1` trial runs (and what keeps the CPU clock honest)."""
    torch.set_num_threads(1)


def machine_line() -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"machine: {cpu_model()}, {os.cpu_count()} CPUs, load average {load}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} intra-op thread(s)")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# `decaylab sweep` with one more Tune callback in the driver, which saves what Tune attaches to each trial's last
# result (its worker's pid, the trainable's time_total_s): decaylab runs no logger of Tune's that would keep them
SWEEP_WITH_ENDS = """
import json, sys
import orchestrator.ray.cluster  # its environment settings, before Tune is imported
from ray import tune
from orchestrator.ray import executor, trackers

class Ends(tune.Callback):
    def __init__(self):
        self.rows = []

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result
        self.rows.append({"key": trial.config["key"], "pid": result["pid"], "time_total_s": result["time_total_s"]})

ends, loggers = Ends(), trackers.callbacks
trackers.callbacks = lambda study, run: [*loggers(study, run), ends]
from orchestrator.cli import main
status = main(["sweep", *sys.argv[2:]])
with open(sys.argv[1], "w") as f:
    json.dump(ends.rows, f)
sys.exit(status)
"""


def sweep_command(ends: Path, *args: str) -> list[str]:
    """`decaylab sweep ARGS` in a fresh interpreter that writes each trial's key, pid and time_total_s to `ends`."""
    return [sys.executable, "-c", SWEEP_WITH_ENDS, str(ends), *args]


def closing(name: str, value: float, fmt: str = ".3f") -> None:
    """The last line of every benchmark, parsed by bench.run_all."""
    print(f"{name}: {value:{fmt}}", flush=True)


# ------------------------------------------------------------------------------ trial inputs


def synthetic_data(n: int, info: data_mod.DatasetInfo = CIFAR_INFO, seed: int = 0,
                   device: torch.device | str = "cpu") -> data_mod.TrialData:
    """Random uint8 images with random labels (CIFAR-shaped by default): for timing, the values do not matter."""
    return cost.synthetic_data(n, info, seed, device)


def trial(*, arch: str, dataset: str, batch_size: int, steps: int, eps: float, step_size: float | None = None,
          kind: str = "fixed", value: float = 5e-4, lr: float = 0.05, epochs: int = 1,
          compile_model: bool = False, precision: str = "auto", channels_last: bool | None = None) -> TrialConfig:
    """A one-trial config built directly (no study file: synthetic data needs no dataset root)."""
    attack = TrainAttackSpec(kind="pgd", eps=eps, steps=steps, step_size=step_size)
    params = {"lam": value} if kind == "fixed" else {"lambda_awd": value}
    point = GridPoint(arm="wd" if kind == "fixed" else "awd", kind=kind, params=params, lr=lr, seed=0)
    return TrialConfig(
        study="bench", point=point, data=DataConfig(dataset=dataset), model=ModelConfig(arch=arch),
        train=TrainConfig(epochs=epochs, batch_size=batch_size, compile=compile_model, precision=precision,
                          channels_last=channels_last),
        attack=AttackConfig(train=attack))

