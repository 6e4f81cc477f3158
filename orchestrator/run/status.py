"""`decaylab status RUN_DIR`: trials by status and the best so far per arm, without Ray or torch."""

from __future__ import annotations

import math
from typing import Any

from orchestrator.run import results
from orchestrator.run.manifest import read_manifest
from orchestrator.run.storage import RunDir
from trials import selection

STATUSES = ("ok", "diverged", "stopped", "failed", "running")


def status_summary(run: RunDir) -> dict[str, Any]:
    """What `status` shows, as plain data (strict JSON: a missing number is None, never NaN)."""
    states, damaged = results.scan(run)
    manifest = read_manifest(run) or {}
    planned = manifest.get("trials_planned")
    planned = planned if isinstance(planned, int) and not isinstance(planned, bool) else None
    counts = dict.fromkeys(STATUSES, 0)
    for state in states.values():
        counts[state["status"]] = counts.get(state["status"], 0) + 1
    study = manifest.get("study")
    ended = sum(counts.get(s, 0) for s in (*results.ENDED, "failed"))
    return {
        "run_dir": run.location,
        "study": study if isinstance(study, str) else None,
        "search": str(manifest.get("search", "grid")),
        "trials": len(states),
        "planned": planned,
        "counts": counts,
        "not_started": None if planned is None else max(planned - len(states) - len(damaged), 0),
        "damaged": len(damaged),
        "progress": None if not planned else min(ended / planned, 1.0),
        "finished": manifest.get("finished") is not None if manifest else None,
        "best": best_per_arm(states),
        "failed": [{"trial_id": tid, "error": str(s["error"])} for tid, s in sorted(states.items())
                   if s["status"] == "failed"],
        "diverged": [{"trial_id": tid, "epoch": len(s["rows"])} for tid, s in sorted(states.items())
                     if s["status"] == "diverged"],
        "damaged_records": [why for _, why in sorted(damaged.items())],
    }


def status_text(run: RunDir) -> str:
    s = status_summary(run)
    counts, planned = s["counts"], s["planned"]
    lines = [f"run {s['run_dir']} (study {s['study'] or '?'}, {s['search']} search)"]
    parts = [f"{counts.get(k, 0)} {k}" for k in ("ok", "diverged", "failed", "running")]
    if counts.get("stopped"):
        parts.insert(2, f"{counts['stopped']} stopped early (ASHA)")
    if planned is not None:
        parts.append(f"{s['not_started']} not started")
    if s["damaged"]:
        parts.append(f"{s['damaged']} damaged")
    lines.append(f"trials: {s['trials']}{f' of {planned}' if planned is not None else ''} — " + ", ".join(parts))
    if s["finished"] is False:
        lines.append("the last sweep did not finish: `decaylab resume` continues it")
    for b in s["best"]:
        running = " (running)" if b["running"] else ""
        lines.append(f"best {b['arm']}: val robust {number(b['val_robust_acc'])} (test "
                     f"{number(b['test_robust_acc'])}) at {b['setting']}, lr={b['lr']:g}, seed {b['seed']}, "
                     f"epoch {b['epoch']}{running}")
    lines += [f"failed {f['trial_id']}: {f['error']}" for f in s["failed"]]
    lines += [f"damaged {why}" for why in s["damaged_records"]]
    if s["damaged"]:
        lines.append(f"  {s['damaged']} damaged trial record(s) are left out of the results: `decaylab resume` "
                     f"sets them aside under {run.uri('damaged')}/ and runs those trials again")
    if s["diverged"]:
        lines.append("diverged: " + ", ".join(f"{d['trial_id']} (epoch {d['epoch']})" for d in s["diverged"]))
    return "\n".join(lines)


def number(x: float | None) -> str:
    return "nan" if x is None else f"{x:.3f}"


def finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def best_per_arm(states: dict[str, dict]) -> list[dict[str, Any]]:
    """Per arm, the best single trial so far by val robust accuracy (finished or still running)."""
    best: dict[str, tuple[float, dict, dict]] = {}
    for state in states.values():
        if state["status"] not in ("ok", "running") or not state["rows"]:
            continue
        row = selection.best_row(state["rows"])
        if row is None:
            continue
        method = row["method"]
        if method not in best or row["val_robust_acc"] > best[method][0]:
            best[method] = (row["val_robust_acc"], row, state)
    return [{"arm": method, "val_robust_acc": finite(val), "test_robust_acc": finite(row["test_robust_acc"]),
             "setting": row["setting"], "lr": row["lr"], "seed": row["seed"], "epoch": row["epoch"],
             "running": state["status"] == "running"}
            for method, (val, row, state) in sorted(best.items())]
