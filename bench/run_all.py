"""Run every benchmark in turn, each in its own process, then summarise their closing lines.

    .venv/bin/python -m bench.run_all             (what `make bench` runs; about 17 minutes on 2 CPU cores)

Each benchmark's output is passed through as it comes. A benchmark closes with one or more
`name: value` lines; the summary repeats each with its target and PASS / MISS (INFO where there is
no target, SKIP where the benchmark could not run here). The exit status is 1 only if a benchmark
failed to run; a MISS is a measurement, reported, not an error.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from orchestrator.progress import clock

Target = tuple[str, float] | None  # (comparison, bound); None where the figure is informational
# module: {closing name: target}, in the order they run
BENCHMARKS: dict[str, dict[str, Target]] = {
    "awd_overhead": {"awd_overhead": ("<=", 1.02)},
    "attack_cost": {"attack_cost": ("<=", 1.15)},
    "trainer_vs_reference": {"trainer_vs_reference": (">=", 1.4)},
    "conv_layouts": {"conv_layouts": None},
    "records_scaling": {"checkpoint_growth": ("<=", 1.01), "export_growth": ("<=", 1.2)},
    "cli_startup": {"cli_startup": ("<=", 1.0)},
    "sweep_overhead": {"sweep_overhead_default": ("<=", 1.15), "sweep_overhead": None, "sweep_steady": None},
    "orchestration_scaling": {"orchestration_vs_ray": ("<=", 1.5), "orchestration_growth": ("<=", 1.2),
                              "report_million_rows": None},
    "report_speed": {"report_speed": None},
    "gpu_check": {"gpu_check": None},
}
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def run(module: str) -> tuple[dict[str, str], float, int]:
    """({closing name: line}, seconds, exit status) of `python -m bench.<module>`, echoing its output."""
    print(f"\n===== bench.{module} =====", flush=True)
    start, closings = time.perf_counter(), {}
    with subprocess.Popen([sys.executable, "-m", f"bench.{module}"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            for name in BENCHMARKS[module]:
                if line.startswith(f"{name}: "):
                    closings[name] = line.strip()
    return closings, time.perf_counter() - start, proc.returncode


def verdict(target: Target, closing: str | None, status: int) -> tuple[str, str]:
    """(target text, PASS / MISS / INFO / SKIP / ERROR)."""
    target_text = f"target {'≤' if target[0] == '<=' else '≥'} {target[1]:g}" if target else "no target"
    if status != 0 or closing is None:
        return target_text, "ERROR"
    value = closing.split(":", 1)[1].strip()
    if value.startswith("skipped"):
        return target_text, "SKIP"
    if target is None:
        return target_text, "INFO"
    number = float(NUMBER.search(value).group())
    ok = number <= target[1] if target[0] == "<=" else number >= target[1]
    return target_text, "PASS" if ok else "MISS"


def main() -> int:
    start = time.perf_counter()
    results = {module: run(module) for module in BENCHMARKS}
    total = time.perf_counter() - start
    print(f"\n===== summary: {len(results)} benchmarks in {clock(total)} =====")
    failed = False
    for module, (closings, seconds, status) in results.items():
        for name, target in BENCHMARKS[module].items():
            target_text, word = verdict(target, closings.get(name), status)
            failed |= word == "ERROR"
            line = closings.get(name) or f"{name}: (no closing line, exit status {status})"
            print(f"{line:<58} {target_text:<16} {word:<5} ({module}, {clock(seconds)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
