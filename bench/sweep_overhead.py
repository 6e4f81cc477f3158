"""What Ray Tune and decaylab's orchestration add to a sweep, against the same trials run without them.

In one run, on a slice of the default study (studies/digits.yaml: its arms, settings and first lr,
two seeds, its own number of epochs; one CPU per trial, two at a time on this 2-CPU machine):

- **sweep**: `decaylab sweep` in a subprocess, from process start to exit;
- **baseline**: the same trials back to back with `trials.train.run_trial`, no Ray and no records,
  in as many processes as the sweep runs trials at once (each takes every other trial), from
  process start to the last exit. The two processes contend for the machine as the sweep's two
  trials do, so the comparison charges the orchestration with nothing the hardware does.

Each runs twice, in the order sweep, baseline, baseline, sweep, so that a drift of the machine's
speed during the run (20% within minutes has been seen here) that is linear in time weighs on both
alike. The ratio is the sweeps' mean wall time ÷ the baselines'. The sweep's time (means of the two)
is split into start-up (process start → Ray connected), the trials' phase and teardown; the trials'
phase offers one slot per CPU, used by the trials' epochs, by their work outside the epochs inside
the trainable (set-up, row and checkpoint files, final evaluations, result parts: Ray's
`time_total_s` less the epochs), or left empty (each worker's start and imports before its first
trial, scheduling between trials, the last trial's tail).
The baseline's own figures are printed beside: its processes' start-up (imports), its epochs' time
(against which the sweep's epochs show how much slower the trials train beside Ray on a machine whose
every core trains; the CPU time Ray's processes and the driver take is 1–2% of it, and the rest of the
difference is not explained by the hand-off of results, the worker process or the niceness: BENCHMARKS.md)
and its work outside the epochs.

The two sides' wall times are then split, slot by slot, into a **steady** part, the span from a slot's
first trial's start to its last trial's end (each trial's own work and the gaps between trials: what
grows with the number of trials), and a **one-off** part, the rest (before the first trial: process,
Ray's and the workers' start, imports; after the last: teardown, waiting for the other slot). A sweep's
trial starts and ends are read to the millisecond from its records (decaylab's result record, written at
a trial's end, less Ray's time_total_s). The slice's whole ratio is mostly the one-off part (about 5–10 s
against 8 trials of 15–25 s); the default study, the sweep `make sweep` runs, has 24 trials a slot. So the
closing figure with the target is that study's ratio **projected** from the two measured parts: (one-off
+ steady ratio × 24 baseline trials) ÷ (the baseline's one-off + 24 baseline trials), a slot's time. The
projection assumes a trial's cost does not change with the number of trials, which
`bench.orchestration_scaling` measures (flat from 36 to 1,000 trials).

    .venv/bin/python -m bench.sweep_overhead
    closing: sweep_overhead_default (the projection; target ≤ 1.15), sweep_overhead (the 8 trials' measured
    ratio), sweep_steady (the steady parts' ratio)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import fmean

import pandas as pd
import yaml

from bench.common import closing, machine_line
from orchestrator.spec import expand_grid, study_from_dict

CPUS = 2
REPO = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((REPO / "studies" / "digits.yaml").read_text())
STUDY = {**DEFAULT, "name": "bench-sweep", "seeds": [0, 1], "lr": DEFAULT["lr"][:1],
         "resources": {"cpu": 1, "gpu": 0}}
ENV = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "PYTHONUNBUFFERED": "1"}
ORDER = ("sweep", "baseline", "baseline", "sweep")
# one baseline process: every `step`-th trial of the study from `first`, back to back, one thread. It prints
# when its imports were done, its first trial started and its last ended (unix times), and the seconds of
# its trials' epochs and of its trials whole
BASELINE = """
import json, sys, time, torch
from orchestrator.spec import expand_grid, load_study
from trials.train import run_trial
imported = time.time()
torch.set_num_threads(1)
study = load_study(sys.argv[1], [])
epochs = trials = 0.0
first = time.time()
for cfg in expand_grid(study)[int(sys.argv[2])::int(sys.argv[3])]:
    start = time.perf_counter()
    epochs += run_trial(cfg, lambda row, state: None, device="cpu")["train_seconds"]
    trials += time.perf_counter() - start
print(json.dumps({"imported": imported, "first": first, "last": time.time(), "epochs": epochs, "trials": trials}))
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


def run_baseline(study: Path) -> tuple[float, dict[str, float], list[tuple[float, float]]]:
    """Wall seconds of the trials back to back in CPUS processes, from their start to the last exit; summed
    over the processes: their seconds from start to imports done, their trials' epochs' seconds and their
    trials' whole seconds; and per process (a slot), (its trials' span: first start → last end, the rest of
    the wall time: before its first trial and after its last)."""
    start, wall_start = time.perf_counter(), time.time()
    procs = [subprocess.Popen([sys.executable, "-c", BASELINE, str(study), str(i), str(CPUS)], env=ENV, cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for i in range(CPUS)]
    sums, got = {"imports": 0.0, "epochs": 0.0, "trials": 0.0}, []
    for p in procs:
        out, _ = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise SystemExit("a baseline process failed")
        got.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - start
    for g in got:
        sums["imports"] += g["imported"] - wall_start
        sums["epochs"] += g["epochs"]
        sums["trials"] += g["trials"]
    spans = [g["last"] - g["first"] for g in got]
    return wall, sums, [(span, wall - span) for span in spans]


def ray_results(run_dir: Path) -> pd.DataFrame:
    """Per trial, from Ray's result.json: its worker's pid and Ray's time_total_s (the trainable's time from
    its start to its last report); to the millisecond, when it ended (decaylab's result record, written by
    the trainable just before its last report) and began (that end less time_total_s)."""
    rows = []
    for path in run_dir.glob("sweep-*/*/result.json"):
        lines = path.read_text().strip().splitlines()
        last = json.loads(lines[-1])
        ended = (run_dir / "trials" / path.parent.name / "result.json").stat().st_mtime
        rows.append({"pid": last["pid"], "time_total_s": last["time_total_s"],
                     "began": ended - last["time_total_s"], "ended": ended})
    return pd.DataFrame(rows)


def sweep_slots(sweep: dict) -> list[tuple[float, float]]:
    """Per worker process (a slot): (its trials' span: first trainable's start → last one's end, the rest of
    the sweep's wall time: before its first trial and after its last)."""
    by_worker = sweep["ray"].groupby("pid")
    spans = (by_worker["ended"].max() - by_worker["began"].min()).tolist()
    return [(span, sweep["wall"] - span) for span in spans]


def main() -> None:
    print(machine_line())
    sweeps, baselines, walls = [], [], []  # walls: in the order run
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        study = tmp / "study.yaml"
        study.write_text(yaml.safe_dump(STUDY, sort_keys=False))
        for i, kind in enumerate(ORDER):
            if kind == "baseline":
                baselines.append(run_baseline(study))
                walls.append(baselines[-1][0])
                continue
            wall, at = run_sweep(tmp / f"sweep{i}", study)
            walls.append(wall)
            run_dir = tmp / f"sweep{i}" / "results" / STUDY["name"]
            sweeps.append({"wall": wall, "at": at, "trials": pd.read_parquet(run_dir / "trials.parquet"),
                           "ray": ray_results(run_dir)})
    n = len(sweeps[0]["trials"])
    wall, baseline = fmean([s["wall"] for s in sweeps]), fmean([b[0] for b in baselines])
    base = {k: fmean([b[1][k] for b in baselines]) for k in baselines[0][1]}
    epochs_s = fmean([float(s["trials"]["train_seconds"].sum()) for s in sweeps])
    in_trainables = fmean([float(s["ray"]["time_total_s"].sum()) for s in sweeps])
    startup = fmean([s["at"]["connected"] - s["at"]["start"] for s in sweeps])
    teardown = fmean([s["at"]["exit"] - s["at"]["done"] for s in sweeps])
    phase = fmean([s["at"]["done"] - s["at"]["connected"] for s in sweeps])
    # the trials' phase offers CPUS slots; what the trainables did not use of them stayed empty
    empty = CPUS * phase - in_trainables
    firsts = [sorted(s["ray"].groupby("pid")["began"].min() - s["at"]["connected"]) for s in sweeps]
    statuses = [s["trials"]["status"].value_counts().to_dict() for s in sweeps]
    print(f"{n} trials × {STUDY['train']['epochs']} epochs of the default study, {CPUS} at a time; run in the order "
          f"{', '.join(ORDER)} (a drift of the machine's speed that is linear in time cancels); statuses {statuses}")
    print("  wall times in that order: " + ", ".join(f"{w:.1f} s" for w in walls))
    print(f"  sweep wall time {wall:7.1f} s    baseline (same trials, no Ray, {CPUS} processes) {baseline:7.1f} s"
          "    (means of two)")
    print(f"  Σ epochs' time {epochs_s:.1f} s ({epochs_s / n:.2f} s a trial); where the sweep's time went (means):")
    print(f"    start-up: process start → Ray connected                {startup:6.1f} s")
    print(f"    trials' phase: Ray connected → Tune done               {phase:6.1f} s = {CPUS} slots × {phase:.1f} s, "
          "of which")
    print(f"      epochs (training and per-epoch evaluation)          {epochs_s / CPUS:6.1f} s")
    print(f"      in the trainable, outside the epochs (set-up, row and checkpoint files, final evaluations, "
          f"parts): {(in_trainables - epochs_s) / n:.2f} s a trial → {(in_trainables - epochs_s) / CPUS:6.1f} s")
    print(f"      slots empty (worker start and imports, scheduling between trials, the last trial's tail) "
          f"{empty / n:.2f} s a trial → {empty / CPUS:6.1f} s")
    print("        each worker's first trial started "
          + "; ".join(", ".join(f"{f:.1f}" for f in fs) for fs in firsts) + " s after Ray connected")
    print(f"    teardown: Tune done → process exit                      {teardown:6.1f} s")
    print(f"  worker processes: {', '.join(str(s['ray']['pid'].nunique()) for s in sweeps)} for {n} trials "
          "(reuse_actors)")
    print("  the baseline's processes, for comparison (means):")
    print(f"    start → imports done                                   {base['imports'] / CPUS:6.1f} s each")
    print(f"    Σ epochs' time {base['epochs']:.1f} s ({base['epochs'] / n:.2f} s a trial): the sweep's epochs took "
          f"{epochs_s / base['epochs'] - 1:+.1%} longer beside Ray")
    outside = (base["trials"] - base["epochs"]) / n
    print(f"    in a trial, outside the epochs (set-up, final evaluations) {outside:.2f} s a trial")
    verdicts(n, [sweep_slots(s) for s in sweeps], [b[2] for b in baselines], wall / baseline)


def verdicts(n: int, sweep_slots: list[list[tuple[float, float]]], baseline_slots: list[list[tuple[float, float]]],
             ratio: float) -> None:
    """The wall time of each side, slot by slot, is a steady part (its trials' span: each trial's own work and
    the gaps between trials, which grow with the sweep) and a one-off part (before the first trial: process,
    Ray and worker start, imports; after the last: teardown, waiting for the other slot). Printed and closed:
    the default study's ratio projected from the two parts, the measured ratio, the steady ratio."""
    def mean_slot(runs):  # (span, one-off) of the average slot over the runs
        slots = [slot for run in runs for slot in run]
        return fmean([s for s, _ in slots]), fmean([o for _, o in slots])

    (span_s, once_s), (span_b, once_b) = mean_slot(sweep_slots), mean_slot(baseline_slots)
    per_trial = CPUS * span_b / n  # a slot's seconds per trial in the baseline
    steady, fixed = span_s / span_b, once_s - once_b
    trials = len(expand_grid(study_from_dict(DEFAULT, "studies/digits.yaml")))
    span_default = per_trial * trials / CPUS  # a slot's span of the default study's trials, by hand
    default = (once_b + fixed + steady * span_default) / (once_b + span_default)
    print("  steady and one-off parts, a slot's wall time (means over slots and runs):")
    print(f"    its trials' span (first start → last end, the gaps between trials included): sweep {span_s:.1f} s, "
          f"baseline {span_b:.1f} s → ratio {steady:.3f}  (what grows with the number of trials)")
    print(f"    before its first trial and after its last: sweep {once_s:.1f} s, baseline {once_b:.1f} s → the sweep "
          f"adds {fixed:.1f} s once = {fixed / per_trial:.2f} trials of {per_trial:.1f} s")
    print(f"  the default study's {trials} trials ({trials // CPUS} a slot), projected from these parts: "
          f"{default:.3f}; these {n} trials, measured: {ratio:.3f}")
    closing("sweep_overhead_default", default)
    closing("sweep_overhead", ratio)
    closing("sweep_steady", steady)


if __name__ == "__main__":
    main()
