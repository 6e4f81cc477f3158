"""decaylab's orchestration cost per trial against plain Ray Tune's at 36 to 1,000 trials; a report of 1,000,000 rows.

**Sweeps.** For each size, `decaylab sweep --executor ray` runs a study of trivially cheap trials (small_cnn
on 10 digits, 2 epochs of natural training, evaluations on 10 examples) on a local 2-CPU cluster, half a CPU
per trial. Its peer is plain Ray Tune as it comes (its default loggers and experiment snapshots): a no-op
function trainable making the same `tune.report` calls with the same keys, the same resources,
`reuse_actors=True`, a grid of the same size. Each runs in its own process; decaylab and the peer alternate,
the order reversed every round, medians over rounds. Measured: the steady-state slot time per trial from
the trials' completion times between the 10% and the 90% completion (start-up and tail left out); decaylab's
overhead is that less the trial's own training time. Figures: `orchestration_vs_ray`, decaylab's overhead
÷ the peer's slot time, worst size; `orchestration_growth`, decaylab's overhead at 1,000 ÷ at 36 trials.

**Report.** `analysis.report.write_report` on 1,000,000 synthetic epoch rows (5,000 trials × 200 epochs,
`bench.synthetic`) in a fresh process, beside reading the same parquet files with pandas in another:
seconds and peak resident memory of each. Figure: `report_million_rows`, write_report's seconds.

Why: they describe, they do not gate; what matters is that nothing grows per trial with the study's size.
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

from bench.common import REPO, closing, machine_line, sized, sweep_command

SIZES = sized((36, 200, 1000), (12, 24))  # multiples of the study's 4 settings
# runs of each size, decaylab and the peer alternating (the order reversed every round), summarised by
# medians: the smallest size's window is a few seconds of completions, which one hiccup of the machine moves
ROUNDS = dict(zip(SIZES, sized((5, 2, 1), (1, 1)), strict=True))
EPOCHS = 2
CPUS = 2  # a local cluster of 2 CPUs
CPU_PER_TRIAL = 0.5  # four trials at a time: what is left to measure is bookkeeping, not computation
CONCURRENCY = int(CPUS / CPU_PER_TRIAL)
SETTINGS = 4  # 2 arms × 2 values; the sizes are reached with seeds
ENV = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_USAGE_STATS_ENABLED": "0",
       "RAY_AIR_NEW_OUTPUT": "0", "PYTHONUNBUFFERED": "1"}


def tiny_study(n: int) -> dict:
    """n trials that do next to nothing: natural training of small_cnn on 10 digits, evaluations on 10."""
    return {
        "name": f"scaling-{n}",
        "data": {"dataset": "digits", "subset": 10},
        "model": {"arch": "small_cnn"},
        "train": {"epochs": EPOCHS, "batch_size": 10},
        "attack": {"train": {"kind": "none"}, "eval": {"kind": "none"}},
        "eval": {"val_examples": 10, "test_examples": 10, "train_examples": 10, "final_examples": 10},
        "methods": {"wd": {"kind": "fixed", "lambda": [0.0, 5e-4]},
                    "awd": {"kind": "adaptive", "lambda_awd": [0.01, 0.02]}},
        "lr": [0.1],
        "seeds": list(range(n // SETTINGS)),
        "resources": {"cpu": CPU_PER_TRIAL, "gpu": 0},
    }


def steady_slot_seconds(done: list[float], concurrency: int) -> float:
    """Slot-seconds per trial between the 10% and the 90% completion."""
    t = sorted(done)
    i, j = int(0.1 * (len(t) - 1)), int(0.9 * (len(t) - 1))
    return (t[j] - t[i]) / (j - i) * concurrency


def run_decaylab(n: int, tmp: Path) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    study = tmp / f"scaling-{n}.yaml"
    study.write_text(yaml.safe_dump(tiny_study(n), sort_keys=False))
    cmd = sweep_command(tmp / f"ends-{n}.json", str(study), "--storage", str(tmp / "results"), "--executor", "ray",
                        "--device", "cpu", "--num-cpus", str(CPUS))
    start = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=REPO, timeout=3600)
    wall = time.time() - start
    run = tmp / "results" / f"scaling-{n}"
    if out.returncode != 0:
        raise SystemExit(f"decaylab sweep of {n} trials failed:\n{out.stderr[-3000:]}")
    parts = list((run / "parts" / "trials").glob("*.arrow"))
    trials = pd.read_parquet(run / "trials.parquet")
    pids = {end["pid"] for end in json.loads((tmp / f"ends-{n}.json").read_text())}
    consolidated = max(p.stat().st_mtime for p in run.glob("*.parquet"))
    done = [p.stat().st_mtime for p in parts]  # a trial's parts are written when it ends
    return {"n": len(trials), "wall": wall, "slot": steady_slot_seconds(done, CONCURRENCY),
            "compute": float(trials["train_seconds"].mean()), "pids": len(pids), "first": min(done) - start,
            "statuses": trials["status"].value_counts().to_dict(), "consolidation": consolidated - max(done)}


def run_peer(n: int, tmp: Path) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    out_file = tmp / f"peer-{n}.json"
    cmd = [sys.executable, "-m", "bench.orchestration_scaling", "--peer", str(n), str(tmp / "peer"), str(out_file)]
    start = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=REPO, timeout=3600)
    wall = time.time() - start
    if out.returncode != 0:
        raise SystemExit(f"the Ray Tune peer of {n} trials failed:\n{out.stderr[-3000:]}")
    result = json.loads(out_file.read_text())
    return {"n": len(result["done"]), "wall": wall, "slot": steady_slot_seconds(result["done"], CONCURRENCY),
            "compute": 0.0, "pids": len(set(result["pids"])), "first": min(result["done"]) - start}


def peer(n: int, storage: str, out_file: str) -> None:
    """Plain Ray Tune: a no-op function trainable reporting EPOCHS times what decaylab's trainable reports
    (the same keys: its per-epoch metrics and bookkeeping, constant values), n of them in a grid."""
    import ray
    from ray import tune

    from orchestrator.run.tracking import METRICS

    metrics = dict.fromkeys(METRICS, 0.5)  # captured by the trainable: its workers import nothing of decaylab

    def noop(config: dict) -> None:
        for epoch in range(1, EPOCHS + 1):
            tune.report({"objective": 0.5, "epoch": epoch, "epochs": EPOCHS, "evaluations": epoch, "arm": "wd",
                         "status": "ok" if epoch == EPOCHS else "running", "key": f"wd-lr0.1-s{config['i']}",
                         "node": "node", "warning": "", "timesteps_total": epoch, **metrics})

    class Completions(tune.Callback):
        def __init__(self) -> None:
            self.done: list[float] = []
            self.pids: list[int] = []

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.done.append(time.time())
            self.pids.append(trial.last_result.get("pid", 0))

    ray.init(address="local", num_cpus=CPUS, num_gpus=0, include_dashboard=False, log_to_driver=False)
    callback = Completions()
    tuner = tune.Tuner(
        tune.with_resources(noop, {"cpu": CPU_PER_TRIAL}),
        param_space={"i": tune.grid_search(list(range(n)))},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(name=f"peer-{n}", storage_path=os.path.abspath(storage), verbose=0,
                                  callbacks=[callback]),
    )
    tuner.fit()
    ray.shutdown()
    Path(out_file).write_text(json.dumps({"done": callback.done, "pids": callback.pids}))


# ------------------------------------------------------------------------------ the report


REPORT_ROWS = sized({"trials": 5000, "epochs": 200}, {"trials": 50, "epochs": 20})  # 1,000,000 epoch rows
# the peak resident memory of this process image (VmHWM; ru_maxrss would carry over the parent's across exec)
PEAK = ("import sys; print('PEAK', next(ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')), "
        "file=sys.stderr)")


def timed_child(code: str) -> tuple[float, float]:
    """(seconds, peak resident MiB) of `python -c code`, imports included in both."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code + "\n" + PEAK], capture_output=True, text=True, cwd=REPO,
                         timeout=3600)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"failed:\n{out.stderr[-3000:]}")
    peak_kib = next(int(ln.split()[1]) for ln in out.stderr.splitlines() if ln.startswith("PEAK "))
    return seconds, peak_kib / 1024


def report_million(tmp: Path) -> tuple[int, tuple[float, float], tuple[float, float]]:
    """(epoch rows, (seconds, MiB) of write_report, (seconds, MiB) of reading the parquet files)."""
    from bench.synthetic import grid, write_run_dir

    run = tmp / "million"
    seeds = REPORT_ROWS["trials"] // (2 * 5 * 5)  # 2 arms × 5 settings × 5 lr
    write_run_dir(run, arms={"wd": grid("fixed", lam=(0.0, 1e-4, 5e-4, 1e-3, 5e-3)),
                             "awd": grid("adaptive", lambda_awd=(0.005, 0.01, 0.02, 0.03, 0.05))},
                  lrs=(0.01, 0.02, 0.05, 0.1, 0.2), seeds=tuple(range(seeds)), epochs=REPORT_ROWS["epochs"],
                  evaluations=True, autoattack=True, schedule="piecewise")
    rows = len(pd.read_parquet(run / "epochs.parquet", columns=["epoch"]))
    read = timed_child("import pandas as pd\n" + "\n".join(
        f"pd.read_parquet({str(run / f'{t}.parquet')!r})" for t in ("epochs", "trials", "evaluations")))
    report = timed_child(f"from analysis.report import write_report\nwrite_report({str(run)!r}, "
                         f"{str(tmp / 'million-report')!r})")
    return rows, report, read


# ------------------------------------------------------------------------------ main


def main() -> None:
    print(machine_line())
    print(f"sweeps: trials of {EPOCHS} epochs on 10 digits, {CPUS} CPUs, {CONCURRENCY} trials at a time; slot time "
          "per trial in the steady state (10%–90% of completions)")
    ratios, overheads = {}, {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for n in SIZES:
            ours, theirs = [], []
            for r in range(ROUNDS[n]):
                pair = [(ours, run_decaylab), (theirs, run_peer)]
                for into, fn in pair if r % 2 == 0 else reversed(pair):
                    into.append(fn(n, tmp / f"round{r}"))
                o, t = ours[-1], theirs[-1]
                print(f"  {n:5d} trials  decaylab: {o['slot']:.3f} s a trial, of which training {o['compute']:.3f} s "
                      f"→ overhead {o['slot'] - o['compute']:.3f} s; first trial done {o['first']:.1f} s after the "
                      f"start, consolidation {o['consolidation']:.1f} s, wall {o['wall']:.0f} s, {o['pids']} worker "
                      f"processes, {o['statuses']}", flush=True)
                print(f"  {'':5s}         Ray Tune: {t['slot']:.3f} s a trial (no-op); first trial done "
                      f"{t['first']:.1f} s after the start, wall {t['wall']:.0f} s, {t['pids']} worker processes",
                      flush=True)
            overheads[n] = statistics.median(o["slot"] - o["compute"] for o in ours)
            peer_slot = statistics.median(t["slot"] for t in theirs)
            ratios[n] = overheads[n] / peer_slot
            print(f"  {n:5d} trials, median of {ROUNDS[n]}: decaylab's overhead {overheads[n]:.3f} s a trial, "
                  f"Ray Tune's {peer_slot:.3f} s → decaylab ÷ Ray Tune {ratios[n]:.2f}", flush=True)
        rows, report, read = report_million(tmp)
    growth = overheads[SIZES[-1]] / overheads[SIZES[0]]
    print(f"decaylab's overhead per trial, {SIZES[-1]} vs {SIZES[0]} trials: {growth:.2f}×")
    print(f"report on {rows:,} epoch rows: write_report {report[0]:.1f} s, peak {report[1]:.0f} MiB; "
          f"reading the parquet files {read[0]:.1f} s, peak {read[1]:.0f} MiB "
          f"(×{report[0] / read[0]:.1f} time, ×{report[1] / read[1]:.1f} memory)")
    closing("orchestration_vs_ray", max(ratios.values()), ".2f")
    closing("orchestration_growth", growth, ".2f")
    closing("report_million_rows", report[0], ".1f")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--peer"]:
        peer(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
