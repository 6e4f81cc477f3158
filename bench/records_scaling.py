"""decaylab's records grow linearly: checkpoints of constant size, export and consolidation flat per trial.

**Checkpoints.** One small real trial (small_cnn on 100 digits, 20 epochs) writes its rows and
checkpoints through `orchestrator.run.records`, as a sweep's trials do; figure: the checkpoint's bytes at
the last running epoch ÷ at epoch 1. A checkpoint holds the model, optimiser, arm state, RNG states and the
best epoch's weights, nothing that grows with the epochs (rows live in their own files, written once).

**Export and consolidation.** Run directories of 36, 200 and 1,000 trials are filled with that trial's
record, re-keyed for every trial of a grid; each trial is exported to its parts (`results.export_trial`,
what a trial's worker does when it ends), then the parts are consolidated into the result files
(`results.consolidate`, at the sweep's end). Both are timed on the wall clock, each size several times in
fresh directories, the sizes' rounds interleaved over the whole measurement, and the median per trial is
compared; figure: per trial at 1,000 ÷ at 36.

Why: a study of 1,000 trials must cost per trial what one of 36 does, on disk and at its end.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.common import closing, machine_line, sized
from orchestrator.run import records, results
from orchestrator.run.storage import RunDir
from orchestrator.study.load import study_from_dict
from orchestrator.study.plan import expand_grid
from trials.train import run_trial

EPOCHS = sized(20, 3)
SIZES = sized((36, 200, 1000), (8, 16, 40))  # multiples of the grid's 4 settings
# each in a fresh directory; medians compared: the smallest size's work is short enough for one slow fsync to move
ROUNDS = dict(zip(SIZES, sized((7, 5, 3), (1, 1, 1)), strict=True))
STUDY = {
    "name": "records",
    "data": {"dataset": "digits", "subset": 100},
    "model": {"arch": "small_cnn"},
    "train": {"epochs": EPOCHS, "batch_size": 50},
    "attack": {"train": {"kind": "pgd", "eps": 0.25, "steps": 2, "step_size": 0.15},
               "eval": {"kind": "pgd", "steps": 2}},
    "eval": {"val_examples": 20, "test_examples": 20, "train_examples": 20, "final_examples": 20},
    "methods": {"wd": {"kind": "fixed", "lambda": [0.0, 5e-4]},
                "awd": {"kind": "adaptive", "lambda_awd": [0.01, 0.02]}},
    "lr": [0.1],
}


def checkpoint_sizes(run: RunDir, tmp: Path) -> tuple[dict[int, int], str]:
    """{epoch: checkpoint bytes} of one trial written through the records, and its trial id."""
    (cfg, *_) = expand_grid(study_from_dict({**STUDY, "seeds": [0]}, "bench"))
    sizes: dict[int, int] = {}

    def report(row: dict, state: dict) -> None:
        records.write_epoch_row(run, cfg.trial_id, row)
        records.write_checkpoint(run, cfg.trial_id, state)
        sizes[row["epoch"]] = (tmp / "trials" / cfg.trial_id / f"checkpoint-{row['epoch']:04d}.pt").stat().st_size

    final = run_trial(cfg, report, device="cpu")
    records.write_result(run, final)
    return sizes, cfg.trial_id


def fill(run: RunDir, template: dict, n: int) -> list[str]:
    """Give each of the n trials of the grid the template's record, under its own id and configuration."""
    ids = []
    for cfg in expand_grid(study_from_dict({**STUDY, "seeds": list(range(n // 4))}, "bench")):
        keys = cfg.key_columns()
        record = {**template, "trial_id": cfg.trial_id, "config": cfg.to_dict(),
                  "rows": [{**row, **keys} for row in template["rows"]],
                  "evaluations": [{**row, **keys} for row in template["evaluations"]]}
        run.write_atomic(json.dumps(record).encode(), records.TRIALS, cfg.trial_id, records.RESULT)
        ids.append(cfg.trial_id)
    return ids


def export_costs(tmp: Path, template: dict, n: int, round_: int = 0) -> tuple[float, float]:
    """(seconds per trial of export_trial, seconds of consolidate) in a fresh run directory of n trials."""
    run = RunDir(str(tmp / f"run-{n}-{round_}"))
    ids = fill(run, template, n)
    os.sync()  # the set-up's writes reach the disk now, not in the first fsync of the timed export
    start = time.perf_counter()
    for trial_id in ids:
        results.export_trial(run, trial_id)
    export = (time.perf_counter() - start) / n
    start = time.perf_counter()
    counts = results.consolidate(run)
    if counts != {"ok": n}:
        raise SystemExit(f"consolidation of {n} trials gave {counts}")
    return export, time.perf_counter() - start


def interleaved_rounds() -> list[tuple[int, int]]:
    """(round, size) in the order run: each size's rounds spread evenly over the whole measurement, so that
    a drift of the machine's speed (a disk's fsyncs can slow for minutes) weighs on every size alike rather
    than on the size measured last."""
    span = max(ROUNDS.values()) - 1
    slots = {n: [round(k * span / max(ROUNDS[n] - 1, 1)) for k in range(ROUNDS[n])] for n in SIZES}
    return [(i, n) for i in range(span + 1) for n in SIZES for _ in range(slots[n].count(i))]


def main() -> None:
    torch.set_num_threads(1)
    print(machine_line())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run = RunDir(str(tmp))
        sizes, trial_id = checkpoint_sizes(run, tmp)
        template = records.read_result(run, trial_id)
        print(f"checkpoint bytes by epoch (one trial, small_cnn, {EPOCHS} epochs; kept: the 2 newest, then the last):")
        shown = sorted({e for e in (1, 2, 5, 10, EPOCHS - 1, EPOCHS) if 1 <= e <= EPOCHS})
        print("  " + "  ".join(f"epoch {e}: {sizes[e]:,}" for e in shown))
        growth = sizes[EPOCHS - 1] / sizes[1]
        print(f"  last running epoch ÷ epoch 1: {growth:.4f}; the final one (with the final evaluations) "
              f"{sizes[EPOCHS] - sizes[EPOCHS - 1]:+,} bytes")
        print(f"export and consolidation, trials of {EPOCHS} epoch rows each:")
        export_costs(tmp, template, 4)  # first calls (pandas' and pyarrow's lazy set-up) untimed
        per_trial, runs_of = {}, {n: [] for n in SIZES}
        for i, n in interleaved_rounds():
            runs_of[n].append(export_costs(tmp, template, n, i))
        for n in SIZES:
            runs = runs_of[n]
            totals = [export + consolidation / n for export, consolidation in runs]
            per_trial[n] = statistics.median_low(totals)
            export, consolidation = runs[totals.index(per_trial[n])]
            print(f"  {n:5d} trials: export {export * 1000:6.1f} ms a trial, consolidation {consolidation:6.2f} s "
                  f"({consolidation / n * 1000:5.1f} ms a trial) → {per_trial[n] * 1000:6.1f} ms a trial "
                  f"(median of {len(runs)}; rounds {min(totals) * 1000:.1f}–{max(totals) * 1000:.1f})", flush=True)
    export_growth = per_trial[SIZES[-1]] / per_trial[SIZES[0]]
    print(f"per-trial export + consolidation, {SIZES[-1]} vs {SIZES[0]} trials: {export_growth:.2f}×")
    closing("checkpoint_growth", growth, ".4f")
    closing("export_growth", export_growth, ".2f")


if __name__ == "__main__":
    main()
