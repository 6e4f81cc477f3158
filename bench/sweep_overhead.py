"""What Ray Tune and decaylab's orchestration add to a sweep, beyond the trials' own work.

Runs `decaylab sweep` in a subprocess on the embedded default study (studies/digits.yaml, what
`make sweep` runs) cut to one seed and two learning rates: 12 trials × 25 epochs, `resources.cpu: 1`
on a 2-CPU local cluster → 2 trials at a time, ~3 minutes. Its wall time is compared with the sum
of the trials' own times (`train_seconds` of trials.parquet: their epochs, training and
evaluation) divided by the concurrency. The difference is start-up (Python imports, Ray),
per-trial set-up, checkpoints, final evaluations, exports, scheduling gaps and teardown; each is
printed. The start-up and teardown (~8 s) are fixed, so the ratio falls as a sweep grows: the
full 36-trial `make sweep` sits below this one.

    .venv/bin/python -m bench.sweep_overhead      (target: wall / (Σ train_seconds / concurrency) ≤ 1.15)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from bench.common import closing, machine_line

CPUS, CPU_PER_TRIAL = 2, 1
DEFAULT_STUDY = Path(__file__).resolve().parents[1] / "studies" / "digits.yaml"
# the default study, one seed, two of its three learning rates: 12 of its 36 trials, unchanged otherwise
STUDY = {**yaml.safe_load(DEFAULT_STUDY.read_text()), "name": "bench-sweep", "seeds": [0], "lr": [0.03, 0.1],
         "resources": {"cpu": CPU_PER_TRIAL, "gpu": 0}}
CLI = "import sys; from orchestrator.cli import main; sys.exit(main())"


def run_sweep(tmp: Path) -> tuple[float, dict[str, float], list[str]]:
    """(wall seconds, {event: seconds after start}, output lines) of one `decaylab sweep`."""
    study = tmp / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # always a fresh local cluster
    cmd = [sys.executable, "-c", CLI, "sweep", str(study), "--storage", str(tmp / "results"), "--device", "cpu",
           "--num-cpus", str(CPUS)]
    # "… trials to run" is printed right after Ray is up, "done in …" once Tune has returned
    marks = {"connected": "trials to run", "done": "done in"}
    start, seen, lines = time.perf_counter(), {}, []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        for line in proc.stdout:
            lines.append(line.rstrip())
            for event, text in marks.items():
                if event not in seen and text in line:
                    seen[event] = time.perf_counter() - start
    wall = time.perf_counter() - start
    if proc.returncode != 0 or set(seen) != set(marks):
        raise SystemExit("decaylab sweep failed:\n" + "\n".join(lines[-20:]))
    return wall, seen, lines


def ray_trial_seconds(run_dir: Path) -> float:
    """Σ over trials of Ray's `time_total_s`: the trainable's whole time, set-up, checkpoints and
    final evaluations included (the last line of each trial's result.json)."""
    total = 0.0
    for path in run_dir.glob("sweep-*/*/result.json"):
        last = path.read_text().strip().splitlines()[-1]
        total += float(json.loads(last)["time_total_s"])
    return total


def main() -> None:
    print(machine_line())
    with tempfile.TemporaryDirectory() as d:
        wall, at, lines = run_sweep(Path(d))
        run_dir = Path(d) / "results" / STUDY["name"]
        trials = pd.read_parquet(run_dir / "trials.parquet")
        in_trainable = ray_trial_seconds(run_dir)
    n = len(trials)
    concurrency = min(CPUS // CPU_PER_TRIAL, n)
    work = float(trials["train_seconds"].sum())
    ideal = work / concurrency
    startup, teardown = at["connected"], wall - at["done"]
    scheduling = wall - startup - teardown - in_trainable / concurrency
    print(f"sweep: {n} trials × {STUDY['train']['epochs']} epochs of digits, concurrency {concurrency}, "
          f"statuses {trials['status'].value_counts().to_dict()}; {lines[-1] if lines else ''}")
    print(f"  Σ train_seconds {work:.1f} s ({work / n:.1f} s a trial) ÷ {concurrency} = {ideal:.1f} s;"
          f" sweep wall time {wall:.1f} s")
    print("  where the difference went:")
    print(f"    start-up (process start → Ray connected)        {startup:6.1f} s")
    print(f"    inside trials, outside epochs (set-up, checkpoints, final evaluations): "
          f"{(in_trainable - work) / n:.2f} s a trial → {(in_trainable - work) / concurrency:6.1f} s of wall time")
    print(f"    between trials (Ray scheduling, driver exports)  {scheduling:6.1f} s")
    print(f"    teardown (Tune done → process exit)             {teardown:6.1f} s")
    print(f"  ratio without start-up and teardown: {(wall - startup - teardown) / ideal:.3f}")
    closing("sweep_overhead", wall / ideal)


if __name__ == "__main__":
    main()
