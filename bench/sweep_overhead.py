"""What Ray Tune and decaylab's orchestration add to a sweep's wall time, against the same trials run bare.

A slice of the default study (studies/digits.yaml: its arms and settings, its first lr, two seeds: 8 trials,
one CPU each, two at a time on a 2-CPU local cluster) runs as **sweep**, `decaylab sweep --executor ray` in
a subprocess, from process start to exit, and as **baseline**, the same trials back to back through
`trials.train.run_trial` without Ray or records, in two processes (each takes every other trial) that
contend for the machine as the sweep's two trials do. Order: sweep, baseline, baseline, sweep, so that a
drift of the machine's speed linear in time weighs on both alike; wall clock, means. Figures:
`sweep_overhead`, sweep ÷ baseline; `sweep_steady`, the same for a slot's span from its first trial's start
to its last trial's end (the trials and the gaps between them: what grows with the sweep), leaving out the
one-off start and end (process, Ray and workers' start, imports; teardown). A sweep's trial starts and ends
are read to the millisecond from its records. The output also splits the sweep's time into start-up,
epochs, the trainable's work outside the epochs, empty slots and teardown.

Why: it describes, it does not gate. On a CPU the one-off costs weigh against trials of seconds; against
GPU trials of hours they vanish, and the steady ratio is what remains of them.
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

from bench.common import QUICK, REPO, closing, machine_line, sized, sweep_command

CPUS = 2
DEFAULT = yaml.safe_load((REPO / "studies" / "digits.yaml").read_text())
# no confirmation stage: the baseline runs the grid's trials (`expand_grid`), and a confirmation's trials exist
# only once a selection has been made, so the sweep must run those same trials and no others
STUDY = {**{k: v for k, v in DEFAULT.items() if k != "confirm"}, "name": "bench-sweep",
         "seeds": sized([0, 1], [0]), "lr": DEFAULT["lr"][:1], "resources": {"cpu": 1, "gpu": 0}}
if QUICK:
    STUDY |= {"train": {**DEFAULT["train"], "epochs": 2}, "data": {**DEFAULT["data"], "subset": 200}}
ENV = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "PYTHONUNBUFFERED": "1"}
ORDER = sized(("sweep", "baseline", "baseline", "sweep"), ("sweep", "baseline"))
# one baseline process: every `step`-th trial of the study from `first`, back to back, one thread. It prints
# when its imports were done, its first trial started and its last ended (unix times), and the seconds of
# its trials' epochs and of its trials whole
BASELINE = """
import json, sys, time, torch
from orchestrator.study.plan import expand_grid
from orchestrator.study.load import load_study
from trials.train import run_trial
imported = time.time()
torch.set_num_threads(1)
study = load_study(sys.argv[1], [])
epochs = trials = 0.0
count = 0
first = time.time()
for cfg in expand_grid(study)[int(sys.argv[2])::int(sys.argv[3])]:
    start = time.perf_counter()
    epochs += run_trial(cfg, lambda row, state: None, device="cpu")["train_seconds"]
    trials += time.perf_counter() - start
    count += 1
print(json.dumps({"imported": imported, "first": first, "last": time.time(), "epochs": epochs, "trials": trials,
                  "count": count}))
"""


def run_sweep(tmp: Path, study: Path) -> tuple[float, dict[str, float]]:
    """(wall seconds, {event: unix time}) of one `decaylab sweep`."""
    cmd = sweep_command(tmp / "ends.json", str(study), "--storage", str(tmp / "results"), "--executor", "ray",
                        "--device", "cpu", "--num-cpus", str(CPUS))
    # "… trials to run" is printed right after Ray is up, "done in …" once the trials have ended
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
    sums, got = {"imports": 0.0, "epochs": 0.0, "trials": 0.0, "count": 0}, []
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
        sums["count"] += g["count"]
    spans = [g["last"] - g["first"] for g in got]
    return wall, sums, [(span, wall - span) for span in spans]


def ray_results(run_dir: Path, ends: Path) -> pd.DataFrame:
    """Per trial: its worker's pid and Ray's time_total_s (the trainable's time from its start to its last
    report); to the millisecond, when it ended (decaylab's result record, written by the trainable just before
    its last report) and began (that end less time_total_s)."""
    rows = []
    for end in json.loads(ends.read_text()):
        ended = (run_dir / "trials" / end["key"] / "result.json").stat().st_mtime
        rows.append({"pid": end["pid"], "time_total_s": end["time_total_s"],
                     "began": ended - end["time_total_s"], "ended": ended})
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
                           "ray": ray_results(run_dir, tmp / f"sweep{i}" / "ends.json")})
    n = len(sweeps[0]["trials"])
    if any(b[1]["count"] != n for b in baselines):  # the ratio means something only over the same trials
        raise SystemExit(f"the baseline ran {[b[1]['count'] for b in baselines]} trials, the sweep {n}")
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
          "    (means)")
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
    estimated = estimated_seconds()
    off = max(wall / estimated, estimated / wall)
    print(f"  `decaylab validate --estimate` said {estimated:.1f} s for the sweep, which took {wall:.1f} s "
          f"(off by a factor {off:.2f})")
    closing("estimate_error", off)


def estimated_seconds() -> float:
    """What `decaylab validate --estimate` says the bench's sweep takes here (it times training once)."""
    from orchestrator.study.load import load_study
    from orchestrator.sweep.estimate import estimate

    with tempfile.TemporaryDirectory() as d:
        study = Path(d) / "study.yaml"
        study.write_text(yaml.safe_dump(STUDY, sort_keys=False))
        return float(estimate(load_study(study), cpus=CPUS).seconds)


def verdicts(n: int, sweep_slots: list[list[tuple[float, float]]], baseline_slots: list[list[tuple[float, float]]],
             ratio: float) -> None:
    """Each side's wall time, slot by slot, is a steady part (its trials' span) and a one-off part (before the
    first trial and after the last). Printed, and closed: the measured ratio and the steady parts' ratio."""
    def mean_slot(runs):  # (span, one-off) of the average slot over the runs
        slots = [slot for run in runs for slot in run]
        return fmean([s for s, _ in slots]), fmean([o for _, o in slots])

    (span_s, once_s), (span_b, once_b) = mean_slot(sweep_slots), mean_slot(baseline_slots)
    per_trial = CPUS * span_b / n  # a slot's seconds per trial in the baseline
    steady, fixed = span_s / span_b, once_s - once_b
    print("  steady and one-off parts, a slot's wall time (means over slots and runs):")
    print(f"    its trials' span (first start → last end, the gaps between trials included): sweep {span_s:.1f} s, "
          f"baseline {span_b:.1f} s → ratio {steady:.3f}  (what grows with the number of trials)")
    print(f"    before its first trial and after its last: sweep {once_s:.1f} s, baseline {once_b:.1f} s → the sweep "
          f"adds {fixed:.1f} s once = {fixed / per_trial:.2f} trials of {per_trial:.1f} s")
    closing("sweep_overhead", ratio)
    closing("sweep_steady", steady)


if __name__ == "__main__":
    main()
