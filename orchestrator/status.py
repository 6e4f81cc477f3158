"""`decaylab status RUN_DIR`: trials by status and the best so far per arm, without Ray."""

from __future__ import annotations

import math

import pandas as pd

from orchestrator import results
from orchestrator.storage import RunDir


def status_text(run: RunDir) -> str:
    _, trials, _ = results.build_frames(results.Scanner(run))
    manifest = results.read_manifest(run) or {}
    planned = manifest.get("trials_planned")
    counts = trials["status"].value_counts().to_dict()
    lines = [f"run {run.location} (study {manifest.get('study', '?')}, {manifest.get('search', 'grid')} search)"]
    parts = [f"{counts.get(s, 0)} {s}" for s in ("ok", "diverged", "failed", "running")]
    if counts.get("stopped"):
        parts.insert(2, f"{counts['stopped']} stopped early (ASHA)")
    if planned is not None:
        parts.append(f"{max(planned - len(trials), 0)} not started")
    lines.append(f"trials: {len(trials)}{f' of {planned}' if planned is not None else ''} — " + ", ".join(parts))
    if manifest.get("finished") is None and manifest:
        lines.append("the last sweep did not finish: `decaylab resume` continues it")
    lines += best_lines(trials)
    failed = trials[trials["status"] == "failed"]
    for row in failed.itertuples():
        lines.append(f"failed {row.trial_id}: {row.error}")
    diverged = trials[trials["status"] == "diverged"]
    if len(diverged):
        lines.append("diverged: " + ", ".join(f"{r.trial_id} (epoch {r.epochs_done})" for r in diverged.itertuples()))
    return "\n".join(lines)


def best_lines(trials: pd.DataFrame) -> list[str]:
    """Per arm, the best single trial so far by val robust accuracy (finished or not)."""
    out = []
    usable = trials[trials["status"].isin(["ok", "running"]) & trials["best_val_robust_acc"].notna()]
    for method, group in usable.groupby("method", sort=True):
        best = group.sort_values("best_val_robust_acc", ascending=False).iloc[0]
        value = f"λ={best.lam:g}" if best.kind == "fixed" else f"λ_awd={best.lambda_awd:g}"
        test = best.best_test_robust_acc
        out.append(f"best {method}: val robust {best.best_val_robust_acc:.3f} (test {test:.3f}) at {value}, "
                   f"lr={best.lr:g}, seed {best.seed}, epoch {best.best_epoch}"
                   if not (isinstance(test, float) and math.isnan(test)) else
                   f"best {method}: val robust {best.best_val_robust_acc:.3f} at {value}, lr={best.lr:g}")
    return out
