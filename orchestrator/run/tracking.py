"""What the experiment trackers show of an entry (the loggers themselves are `orchestrator.ray.trackers`).

An entry trains one member trial (the grid) or one per seed (an Optuna configuration). Every epoch
it reports each member's metrics as flat keys — `val_robust_acc`, or `s1/val_robust_acc` for the
member of seed 1 when there are several. When it ends, the accuracies the selection rule gives
(`trials.selection`) and the final evaluation, read from the members' records; with several
members, each is the mean over the seeds. Its hyperparameters are the entry's flat parameters
(`orchestrator.study.plan.Entry`).
"""

from __future__ import annotations

import math
from statistics import fmean

from orchestrator.run import records, results
from orchestrator.run.storage import RunDir
from trials import selection
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

