"""What the experiment trackers show of a trial (Ray-free: the Tune loggers are in `tune_trackers`).

A Ray trial trains one member trial (the grid) or one per seed (an Optuna configuration). Every
epoch it reports each member's metrics as flat keys — `val_robust_acc`, or `s1/val_robust_acc`
for the member of seed 1 when there are several. When it ends, the trackers get its flat
hyperparameters and the accuracies the selection rule gives (`trials.selection`), read from the
members' records; with several members, each accuracy is the mean over the seeds.
"""

from __future__ import annotations

import math
from statistics import fmean
from typing import Any

from orchestrator import records, results
from orchestrator.storage import RunDir
from trials import selection
from trials.arms.base import format_value
from trials.config import TrialConfig
from trials.schema import EPOCH_METRICS

# the per-epoch metrics of a row (its configuration columns are the hyperparameters, logged once)
METRICS = tuple(k for k, dtype in EPOCH_METRICS.items() if dtype == "float64")
# what a finished trial is summed up by: best-validation-selected and last accuracies
SUMMARY = ("best_epoch", "best_val_robust_acc", "best_test_clean_acc", "best_test_robust_acc",
           "last_test_clean_acc", "last_test_robust_acc", "gap_robust")
FINAL = ("clean_acc", "pgd_acc", "autoattack_acc")


def member_metrics(rows: list[tuple[TrialConfig, dict]]) -> dict[str, float]:
    """The latest row of each member as flat metrics, prefixed `s<seed>/` when there are several."""
    prefix = len(rows) > 1
    return {(f"s{cfg.seed}/{k}" if prefix else k): float(row[k]) for cfg, row in rows for k in METRICS}


def configuration(cfg: TrialConfig) -> str:
    """The trial id without its seed: what the seeds of one setting share (`wd-0.0005-lr0.1`)."""
    lr = f"-lr{format_value(cfg.lr)}"
    return cfg.trial_id.replace(f"{lr}-s{cfg.seed}", lr, 1)


def run_name(members: list[TrialConfig]) -> str:
    if len(members) == 1:
        return members[0].trial_id
    return f"{configuration(members[0])}-s{','.join(str(m.seed) for m in members)}"


def hyperparameters(members: list[TrialConfig]) -> dict[str, Any]:
    """Flat hyperparameters: arm, kind, setting, each of the arm's hyperparameters, lr, seed(s), noise."""
    cfg = members[0]
    seeds = [m.seed for m in members]
    return {"arm": cfg.method, "kind": cfg.kind, "setting": cfg.setting, **cfg.params, "lr": cfg.lr,
            "seed": seeds[0] if len(seeds) == 1 else ",".join(map(str, seeds)), "label_noise": cfg.label_noise}


def final_metrics(run: RunDir, members: list[TrialConfig]) -> dict[str, float]:
    """Selection-rule summary and final evaluation (unpruned best/last weights) of the members that ended,
    averaged over them; keys without a finite value are left out."""
    per_member = [_summary(_record(run, m.trial_id)) for m in members]
    keys = {k for m in per_member for k in m}
    means = {k: fmean(vals) for k in sorted(keys)
             if (vals := [m[k] for m in per_member if selection.evaluated(m.get(k))])}
    return {k: float(v) for k, v in means.items() if math.isfinite(v)}


def _record(run: RunDir, trial_id: str) -> dict:
    """The trial's record as read (the result tables' check is the export's business, not the trackers')."""
    try:
        return results.trial_record(run, trial_id)
    except records.DamagedRecord:
        return {"status": "damaged"}


def _summary(state: dict) -> dict[str, float]:
    if state["status"] not in results.FINISHED:
        return {}
    summary = selection.summarize(state["rows"])
    out = {k: summary[k] for k in SUMMARY if summary[k] is not None}
    for row in state["evaluations"]:
        if row["sparsity"] == 0.0:
            out |= {f"{row['checkpoint']}_{k}": row[k] for k in FINAL}
    return out

