"""Start-up of the reading commands, against `python -c pass`: they import neither torch nor Ray.

`validate`, `options`, `schema`, `status` and `report` each run in a fresh interpreter, interleaved
with `python -c pass`, `ROUNDS` times; medians are compared. Start-up is the command's wall time,
less (for `report`) the time spent inside `write_report` writing tables and figures, which is the
report's work rather than its start. Each run also lists which of torch and Ray it imported (the
fast tests in tests/test_cli.py guard the same property); any is a failure here.

The run directory read by `status` and `report` is synthetic (2 arms × 3 settings × 2 lr × 2 seeds
× 5 epochs) plus the default study file, written once before the timing.

    .venv/bin/python -m bench.cli_startup        (target: each command ≤ 1 s above `python -c pass`)
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

from bench.common import closing, machine_line

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 3
# the command, then what it imported and (report) the seconds inside write_report, as one JSON line
WRAPPER = """
import json, sys, time
inside = [0.0]
if sys.argv[1] == 'report':
    import analysis.report as report
    write = report.write_report
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return write(*args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - start
    report.write_report = timed
from orchestrator.cli import main
rc = main(sys.argv[1:])
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray'})
print('STARTUP ' + json.dumps({'rc': rc, 'heavy': heavy, 'inside': inside[0]}), file=sys.stderr)
"""


def run_dir(tmp: Path) -> Path:
    from orchestrator.spec import load_study
    from tests.synthetic import write_run_dir

    path = write_run_dir(tmp / "run", lrs=(0.03, 0.1), seeds=(0, 1), epochs=5, study="synthetic")
    study = load_study(str(REPO / "studies" / "digits.yaml"), ["name=synthetic"])
    (path / "study.yaml").write_text(yaml.safe_dump(study.to_dict(), sort_keys=False))
    return path


def run(argv: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=300)
    wall = time.perf_counter() - start
    info = {"rc": out.returncode, "heavy": [], "inside": 0.0}
    for line in out.stderr.splitlines():
        if line.startswith("STARTUP "):
            info = json.loads(line.removeprefix("STARTUP "))
    if info["rc"] != 0:
        raise SystemExit(f"{' '.join(argv[3:])} failed:\n{out.stderr[-2000:]}")
    return wall, info


def main() -> None:
    print(machine_line())
    with tempfile.TemporaryDirectory() as d:
        run_path = str(run_dir(Path(d)))
        commands = {
            "validate": ["validate", "studies/digits.yaml"],
            "options": ["options"],
            "schema": ["schema"],
            "status": ["status", run_path],
            "report": ["report", run_path, "--out", str(Path(d) / "report")],
        }
        base_cmd = [sys.executable, "-c", "pass"]
        walls: dict[str, list[float]] = {name: [] for name in ["python -c pass", *commands]}
        heavy: dict[str, set[str]] = {name: set() for name in commands}
        for r in range(ROUNDS):
            order = ["python -c pass", *commands]
            for name in order if r % 2 == 0 else reversed(order):
                if name == "python -c pass":
                    walls[name].append(run(base_cmd)[0])
                    continue
                wall, info = run([sys.executable, "-c", WRAPPER, *commands[name]])
                walls[name].append(wall - info["inside"])
                heavy[name] |= set(info["heavy"])
    base = statistics.median(walls["python -c pass"])
    print(f"python -c pass: {base:.3f} s (medians of {ROUNDS} rounds)")
    above = {}
    for name in commands:
        above[name] = statistics.median(walls[name]) - base
        note = f"imported {', '.join(sorted(heavy[name]))}!" if heavy[name] else "imports neither torch nor Ray"
        print(f"  {name:9s} start-up {above[name] + base:6.3f} s = pass + {above[name]:6.3f} s   ({note})")
    if any(heavy.values()):
        raise SystemExit("a reading command imported torch or Ray")
    worst = max(above, key=above.get)
    print(f"slowest start-up: {worst}, {above[worst]:.2f} s above python -c pass")
    closing("cli_startup", above[worst], ".2f")


if __name__ == "__main__":
    main()
