"""Start-up of the reading commands against `python -c pass`: they answer without importing torch or Ray.

`validate`, `options`, `schema`, `status` and `report` (the `orchestrator.cli` package) each run in a fresh
interpreter, interleaved with `python -c pass`, a few rounds; start-up is the wall time from starting the
process to the command's first line of output (its answer; for `report`, the line saying what it reads and
where it writes, after checking both, before it imports its plotting libraries). Figure: the slowest
command's median above `python -c pass`'s, seconds. Each run also lists which of torch and Ray it imported;
any is a failure. `status` and `report` read a synthetic run directory (`bench.synthetic`) written first.

Why: a mistyped command or a wrong path should be answered at once, not after seconds of imports.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import REPO, closing, machine_line, sized
from bench.synthetic import write_run_dir
from orchestrator.study.load import load_study

ROUNDS = sized(3, 1)
# the command, then what it imported, as one JSON line
WRAPPER = """
import json, sys
from orchestrator.cli import main
rc = main(sys.argv[1:])
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray'})
print('STARTUP ' + json.dumps({'rc': rc, 'heavy': heavy}), file=sys.stderr)
"""


def run_dir(tmp: Path) -> Path:
    path = write_run_dir(tmp / "run", lrs=(0.03, 0.1), seeds=(0, 1), epochs=5, study="synthetic")
    study = load_study(str(REPO / "studies" / "digits.yaml"), ["name=synthetic"])
    (path / "study.yaml").write_text(yaml.safe_dump(study.to_dict(), sort_keys=False))
    return path


def run(argv: list[str]) -> tuple[float, float, dict]:
    """(seconds to the first line of output, seconds in all, what the wrapper said) of one command."""
    start = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO) as proc:
        lines = [proc.stdout.readline()]
        first = time.perf_counter() - start
        lines += proc.stdout.readlines()
        proc.wait(timeout=300)
    wall = time.perf_counter() - start
    info = {"rc": proc.returncode, "heavy": []}
    for line in lines:
        if line.startswith("STARTUP "):
            info = json.loads(line.removeprefix("STARTUP "))
    if lines[0].startswith("STARTUP "):  # it printed nothing of its own: its start-up is all of it
        first = wall
    if info["rc"] != 0:
        raise SystemExit(f"{' '.join(argv[3:])} failed:\n{''.join(lines)[-2000:]}")
    return first, wall, info


def main() -> None:
    print(machine_line())
    with tempfile.TemporaryDirectory() as d:
        run_path = str(run_dir(Path(d)))
        commands = {
            "validate": ["validate", "studies/digits.yaml"],
            "options": ["options"],
            "schema": ["schema"],
            "status": ["status", run_path],
            "report": ["report", run_path, "--report-dir", str(Path(d) / "report")],
        }
        base_cmd = [sys.executable, "-c", "pass"]
        walls: dict[str, list[float]] = {name: [] for name in ["python -c pass", *commands]}
        totals: dict[str, list[float]] = {name: [] for name in commands}
        heavy: dict[str, set[str]] = {name: set() for name in commands}
        for r in range(ROUNDS):
            order = ["python -c pass", *commands]
            for name in order if r % 2 == 0 else reversed(order):
                if name == "python -c pass":
                    walls[name].append(run(base_cmd)[1])
                    continue
                first, wall, info = run([sys.executable, "-c", WRAPPER, *commands[name]])
                walls[name].append(first)
                totals[name].append(wall)
                heavy[name] |= set(info["heavy"])
    base = statistics.median(walls["python -c pass"])
    print(f"python -c pass: {base:.3f} s (medians of {ROUNDS} rounds)")
    above = {}
    for name in commands:
        above[name] = statistics.median(walls[name]) - base
        note = f"imported {', '.join(sorted(heavy[name]))}!" if heavy[name] else "imports neither torch nor Ray"
        print(f"  {name:9s} start-up {above[name] + base:6.3f} s = pass + {above[name]:6.3f} s, "
              f"all of it {statistics.median(totals[name]):6.3f} s   ({note})")
    if any(heavy.values()):
        raise SystemExit("a reading command imported torch or Ray")
    worst = max(above, key=above.get)
    print(f"slowest start-up: {worst}, {above[worst]:.2f} s above python -c pass")
    closing("cli_startup", above[worst], ".2f")


if __name__ == "__main__":
    main()
