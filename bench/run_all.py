"""Run every benchmark in turn, each in its own process, then summarise their closing lines.

    .venv/bin/python -m bench.run_all             (what `make bench` runs; ~6-8 minutes on 2 CPU cores)

Each benchmark's output is passed through as it comes. The summary repeats every closing
`name: value` line with its target and PASS / MISS (INFO where there is no target, SKIP where the
benchmark could not run here). The exit status is 1 only if a benchmark failed to run; a MISS is
a measurement, reported, not an error.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from orchestrator.progress import clock

# name: (comparison, target); None where the figure is informational
BENCHMARKS: dict[str, tuple[str, float] | None] = {
    "awd_overhead": ("<=", 1.02),
    "trainer_vs_reference": (">=", 1.4),
    "attack_cost": ("<=", 1.15),
    "sweep_overhead": ("<=", 1.15),
    "report_speed": None,
    "gpu_throughput": None,
}
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def run(name: str) -> tuple[str | None, float, int]:
    """(closing line or None, seconds, exit status) of `python -m bench.<name>`, echoing its output."""
    print(f"\n===== bench.{name} =====", flush=True)
    start, closing = time.perf_counter(), None
    with subprocess.Popen([sys.executable, "-m", f"bench.{name}"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith(f"{name}: "):
                closing = line.strip()
    return closing, time.perf_counter() - start, proc.returncode


def verdict(name: str, closing: str | None, status: int) -> tuple[str, str]:
    """(target text, PASS / MISS / INFO / SKIP / ERROR)."""
    target = BENCHMARKS[name]
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
    results = {name: run(name) for name in BENCHMARKS}
    total = time.perf_counter() - start
    print(f"\n===== summary: {len(results)} benchmarks in {clock(total)} =====")
    failed = False
    for name, (closing, seconds, status) in results.items():
        target_text, word = verdict(name, closing, status)
        failed |= word == "ERROR"
        line = closing or f"{name}: (no closing line, exit status {status})"
        print(f"{line:<58} {target_text:<16} {word:<5} ({clock(seconds)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
