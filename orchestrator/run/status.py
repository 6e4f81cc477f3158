"""`decaylab status RUN_DIR`: trials by status and the best so far per arm, without Ray or torch."""

from __future__ import annotations

from orchestrator.run import results
from orchestrator.run.manifest import read_manifest
from orchestrator.run.storage import RunDir
from trials import selection


def status_text(run: RunDir) -> str:
    states, damaged = results.scan(run)
    manifest = read_manifest(run) or {}
    planned = manifest.get("trials_planned")
    planned = planned if isinstance(planned, int) and not isinstance(planned, bool) else None
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state["status"]] = counts.get(state["status"], 0) + 1
    study = manifest.get("study", "?")
    lines = [f"run {run.location} (study {study if isinstance(study, str) else '?'}, "
             f"{manifest.get('search', 'grid')} search)"]
    parts = [f"{counts.get(s, 0)} {s}" for s in ("ok", "diverged", "failed", "running")]
    if counts.get("stopped"):
        parts.insert(2, f"{counts['stopped']} stopped early (ASHA)")
    if planned is not None:
        parts.append(f"{max(planned - len(states) - len(damaged), 0)} not started")
    if damaged:
        parts.append(f"{len(damaged)} damaged")
    lines.append(f"trials: {len(states)}{f' of {planned}' if planned is not None else ''} — " + ", ".join(parts))
    if manifest and manifest.get("finished") is None:
        lines.append("the last sweep did not finish: `decaylab resume` continues it")
    lines += best_lines(states)
    for tid, state in sorted(states.items()):
        if state["status"] == "failed":
            lines.append(f"failed {tid}: {state['error']}")
    lines += [f"damaged {why}" for _, why in sorted(damaged.items())]
    if damaged:
        lines.append(f"  {len(damaged)} damaged trial record(s) are left out of the results: `decaylab resume` "
                     f"sets them aside under {run.uri('damaged')}/ and runs those trials again")
    diverged = [f"{tid} (epoch {len(s['rows'])})" for tid, s in sorted(states.items()) if s["status"] == "diverged"]
    if diverged:
        lines.append("diverged: " + ", ".join(diverged))
    return "\n".join(lines)


def best_lines(states: dict[str, dict]) -> list[str]:
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
    out = []
    for method, (val, row, state) in sorted(best.items()):
        running = " (running)" if state["status"] == "running" else ""
        out.append(f"best {method}: val robust {val:.3f} (test {row['test_robust_acc']:.3f}) at {row['setting']}, "
                   f"lr={row['lr']:g}, seed {row['seed']}, epoch {row['epoch']}{running}")
    return out
