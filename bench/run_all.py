"""Run every benchmark, each in its own process; then write one record and regenerate BENCHMARKS.md.

    .venv/bin/python -m bench.run_all            what `make bench` runs (budget: about 20 minutes on 2 cores)
    .venv/bin/python -m bench.run_all --quick    every benchmark at its smallest sizes: a check that all run

Each benchmark's output passes through as it comes. A benchmark closes with `name: value` lines; the
summary repeats each with its target and verdict (`bench.record`). A full run writes one record to
bench/results/ and regenerates BENCHMARKS.md (`bench.report`); a quick run, or one of `--only` some
modules, writes neither. The exit status is 1 only if a benchmark failed to run: a MISS is a
measurement, reported, not an error.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime, timezone

from bench import record, report
from bench.record import FIGURES, MODULES


def run(module: str, quick: bool) -> tuple[dict[str, str], float, int]:
    """({closing name: line}, seconds, exit status) of `python -m bench.<module>`, echoing its output."""
    print(f"\n===== bench.{module} =====", flush=True)
    names = [f.name for f in FIGURES if f.module == module]
    env = {**os.environ, "BENCH_QUICK": "1" if quick else "0", "PYTHONUNBUFFERED": "1"}
    start, closings = time.perf_counter(), {}
    with subprocess.Popen([sys.executable, "-m", f"bench.{module}"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, cwd=record.REPO) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            for name in names:
                if line.startswith(f"{name}: "):
                    closings[name] = line.strip()
    return closings, time.perf_counter() - start, proc.returncode


def figures(results: dict[str, tuple[dict[str, str], float, int]]) -> list[dict]:
    """The record's figures from each module's (closing lines, seconds, exit status)."""
    out = []
    for figure in FIGURES:
        if figure.module in results:
            closings, seconds, status = results[figure.module]
            out.append(record.figure_entry(figure, closings.get(figure.name), status, seconds))
    return out


def summary(entries: list[dict]) -> str:
    lines = []
    for e in entries:
        target = f"target {record.target_text((e['target']['op'], e['target']['bound']))}" if e["target"] else ""
        lines.append(f"{e['line'] or e['name'] + ': (no closing line)':<56} {target:<16} {e['verdict']:<5} "
                     f"({e['module']}, {e['module_seconds']:.0f} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smallest sizes; no record, no page")
    parser.add_argument("--only", nargs="+", choices=MODULES, metavar="MODULE", help="only these; no record, no page")
    args = parser.parse_args(argv)
    commit = record.commit()  # before the run: the tree it measured
    started, start = datetime.now(timezone.utc), time.perf_counter()
    results = {module: run(module, args.quick) for module in (args.only or MODULES)}
    duration = time.perf_counter() - start
    entries = figures(results)
    print(f"\n===== summary: {len(results)} benchmarks in {duration / 60:.1f} min =====")
    if args.quick or args.only:
        print("(not recorded: " + ("a quick run's sizes are too small for its figures to mean anything)"
                                   if args.quick else "a partial run)"))
    print(summary(entries))
    if not (args.quick or args.only):
        rec = record.build(figures=entries, started=started, duration_s=duration, commit_=commit,
                           machine_=record.machine())
        path = record.write(rec)
        report.write_page(report.render(record.read_all()))
        print(f"record: {path.relative_to(record.REPO)}; BENCHMARKS.md regenerated")
    return 1 if any(e["verdict"] == "ERROR" for e in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
