"""What Ray Tune and decaylab's orchestration add to a sweep, against the same trials run without them.

In one run, on a slice of the default study (studies/digits.yaml: its arms, settings and first lr,
two seeds, `EPOCHS` epochs; one CPU per trial, two at a time on this 2-CPU machine):

- **sweep**: `decaylab sweep` in a subprocess, from process start to exit;
- **baseline**: the same trials back to back with `trials.train.run_trial`, no Ray and no records,
  in as many processes as the sweep runs trials at once (each takes every other trial), from
  process start to the last exit. The two processes contend for the machine as the sweep's two
  trials do, so the comparison charges the orchestration with nothing the hardware does.

The ratio is sweep ÷ baseline. The difference is split into start-up (process start → Ray
connected, against the baseline's imports), each trial's work outside its epochs (set-up, row and
checkpoint files, final evaluations: Ray's `time_total_s` less the epochs), the gap a slot stays
empty between two trials (a trial's last report → the next trial's start in the same worker; the
first trial of each worker also waits for the worker's start and imports), and teardown.

    .venv/bin/python -m bench.sweep_overhead      (target: sweep ÷ baseline ≤ 1.15)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from bench.common import closing, machine_line

CPUS = 2
EPOCHS = 10
REPO = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((REPO / "studies" / "digits.yaml").read_text())
STUDY = {**DEFAULT, "name": "bench-sweep", "seeds": [0, 1], "lr": DEFAULT["lr"][:1],
         "train": {**DEFAULT["train"], "epochs": EPOCHS}, "resources": {"cpu": 1, "gpu": 0}}
ENV = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "PYTHONUNBUFFERED": "1"}
# one baseline process: every `step`-th trial of the study from `first`, back to back, one thread
BASELINE = """
import sys, time, torch
from orchestrator.spec import expand_grid, load_study
from trials.train import run_trial
torch.set_num_threads(1)
study = load_study(sys.argv[1], [])
for cfg in expand_grid(study)[int(sys.argv[2])::int(sys.argv[3])]:
    run_trial(cfg, lambda row, state: None, device="cpu")
print("BASELINE", time.time())
"""


def run_sweep(tmp: Path, study: Path) -> tuple[float, dict[str, float]]:
    """(wall seconds, {event: unix time}) of one `decaylab sweep`."""
    cmd = [sys.executable, "-m", "orchestrator.cli", "sweep", str(study), "--storage", str(tmp / "results"),
           "--device", "cpu", "--num-cpus", str(CPUS)]
    # "… trials to run" is printed right after Ray is up, "done in …" once Tune has returned
    marks = {"connected": "trials to run", "done": "done in"}
    seen: dict[str, float] = {}
    lines = []
    start = time.time()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
                          cwd=REPO) as proc:
        for line in proc.stdout:
            lines.append(line.rstrip())
            for event, text in marks.items():
                if event not in seen and text in line:
                    seen[event] = time.time()
    seen["start"], seen["exit"] = start, time.time()
    if proc.returncode != 0 or len(seen) != 4:
        raise SystemExit("decaylab sweep failed:\n" + "\n".join(lines[-20:]))
    return seen["exit"] - start, seen


def run_baseline(study: Path) -> float:
    """Wall seconds of the trials back to back in CPUS processes, from their start to the last exit."""
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", BASELINE, str(study), str(i), str(CPUS)], env=ENV, cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for i in range(CPUS)]
    for p in procs:
        p.communicate(timeout=3600)
        if p.returncode != 0:
            raise SystemExit("a baseline process failed")
    return time.perf_counter() - start


def trial_timeline(run_dir: Path) -> pd.DataFrame:
    """Per trial: its worker's pid, start and last report (unix times), and Ray's time_total_s.

    The last report is when the driver wrote Ray's result.json line for it (the file's mtime); the
    start is that, less Ray's time_total_s (the trainable's time from its start to its last report)."""
    rows = []
    for path in run_dir.glob("sweep-*/*/result.json"):
        last = json.loads(path.read_text().strip().splitlines()[-1])
        end = path.stat().st_mtime
        rows.append({"trial": path.parent.name, "pid": last["pid"], "start": end - last["time_total_s"],
                     "last_report": end, "time_total_s": last["time_total_s"]})
    return pd.DataFrame(rows).sort_values("start")


def slot_gaps(timeline: pd.DataFrame, connected: float) -> tuple[list[float], list[float]]:
    """(first trial's start after Ray connected, per worker; gaps between consecutive trials of a worker)."""
    firsts, gaps = [], []
    for _, trials in timeline.groupby("pid"):
        trials = trials.sort_values("start")
        firsts.append(trials["start"].iloc[0] - connected)
        gaps += (trials["start"].iloc[1:].to_numpy() - trials["last_report"].iloc[:-1].to_numpy()).tolist()
    return firsts, gaps


def main() -> None:
    print(machine_line())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        study = tmp / "study.yaml"
        study.write_text(yaml.safe_dump(STUDY, sort_keys=False))
        wall, at = run_sweep(tmp, study)
        baseline = run_baseline(study)
        run_dir = tmp / "results" / STUDY["name"]
        trials = pd.read_parquet(run_dir / "trials.parquet")
        timeline = trial_timeline(run_dir)
    n = len(trials)
    epochs_s = float(trials["train_seconds"].sum())
    outside = float(timeline["time_total_s"].sum()) - epochs_s
    firsts, gaps = slot_gaps(timeline, at["connected"])
    startup, teardown = at["connected"] - at["start"], at["exit"] - at["done"]
    print(f"{n} trials × {EPOCHS} epochs of the default study, {CPUS} at a time; statuses "
          f"{trials['status'].value_counts().to_dict()}")
    print(f"  sweep wall time {wall:7.1f} s    baseline (same trials, no Ray, {CPUS} processes) {baseline:7.1f} s")
    print(f"  Σ epochs' time {epochs_s:.1f} s ({epochs_s / n:.2f} s a trial); where the sweep's extra time went:")
    print(f"    start-up: process start → Ray connected              {startup:6.1f} s")
    print("    first trial of each worker starts after              "
          + ", ".join(f"{f:.1f}" for f in sorted(firsts)) + " s (worker start, imports)")
    print(f"    each trial outside its epochs (set-up, records, final evaluations) "
          f"{outside / n:.2f} s → {outside / CPUS:6.1f} s of wall time")
    if gaps:
        print(f"    slot empty between two trials of a worker: median {statistics.median(gaps):.2f} s, "
              f"max {max(gaps):.2f} s → {sum(gaps) / CPUS:6.1f} s of wall time")
    print(f"    teardown: Tune done → process exit                    {teardown:6.1f} s")
    print(f"  worker processes: {timeline['pid'].nunique()} for {n} trials (reuse_actors)")
    closing("sweep_overhead", wall / baseline)


if __name__ == "__main__":
    main()
