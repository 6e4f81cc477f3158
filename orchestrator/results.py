"""Run directory → tidy results: `epochs.parquet`, `trials.parquet`, `evaluations.parquet`, manifest.

The source of truth is the checkpoint directories Ray Tune persists under
`RUN_DIR/sweep-NNN/<trial_id>/checkpoint_*/rows.json`; a trial resumed in a later sweep
carries its earlier rows forward, so each trial's rows come from its single most advanced
checkpoint and no row is ever counted twice. Failed trials are recorded by the driver in
`RUN_DIR/errors/<trial_id>.json`. Everything here works without Ray.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field

import pandas as pd

from analysis.schema import EPOCH_COLUMNS, EVAL_COLUMNS, TRIAL_COLUMNS, conform
from orchestrator.checkpoints import read_summary
from orchestrator.storage import RunDir

EXPERIMENT = re.compile(r"sweep-(\d{3,})$")
CHECKPOINT = re.compile(r"checkpoint_(\d+)$")
FINISHED = ("ok", "diverged")  # ended on their own
ENDED = (*FINISHED, "stopped")  # stopped: cut short by the tuning stage's scheduler (ASHA)


def experiments(run: RunDir) -> list[str]:
    return sorted(n for n in run.listdir() if EXPERIMENT.match(n))


def next_experiment(run: RunDir) -> str:
    numbers = [int(EXPERIMENT.match(n).group(1)) for n in experiments(run)]
    return f"sweep-{max(numbers, default=-1) + 1:03d}"


def checkpoint_dirs(run: RunDir, experiment: str, trial_dir: str) -> list[str]:
    """Checkpoint directory names of one trial in one experiment, newest first."""
    names = [n for n in run.listdir(experiment, trial_dir) if CHECKPOINT.match(n)]
    return sorted(names, key=lambda n: int(CHECKPOINT.match(n).group(1)), reverse=True)


@dataclass
class Scanner:
    """Finds each trial's most advanced readable checkpoint; caches what it has read.

    A Ray trial's checkpoint directory holds one sub-directory per member trial (one for a
    grid trial; one per seed for an Optuna configuration), each with state.pt and rows.json.
    """

    run: RunDir
    _cache: dict[tuple[str, ...], dict | None] = field(default_factory=dict)

    def summary(self, *parts: str) -> dict | None:
        if parts not in self._cache:
            self._cache[parts] = read_summary(self.run, *parts)
        return self._cache[parts]

    def candidates(self, ray_trial_dir: str | None = None, member: str | None = None,
                   every_checkpoint: bool = False) -> dict[str, list[tuple[int, int, tuple[str, ...]]]]:
        """trial_id → [(epoch, experiment index, member checkpoint parts)], most advanced first.

        Without `every_checkpoint` only the newest readable checkpoint of each trial in each
        experiment is listed (it holds all earlier rows); with it, every readable one (fallbacks).
        """
        found: dict[str, list] = {}
        for e_index, exp in enumerate(experiments(self.run)):
            for tdir in [ray_trial_dir] if ray_trial_dir else self.run.listdir(exp):
                if not self.run.is_dir(exp, tdir):
                    continue
                seen: set[str] = set()
                for ck in checkpoint_dirs(self.run, exp, tdir):
                    for m in [member] if member else self.run.listdir(exp, tdir, ck):
                        if m in seen:
                            continue
                        s = self.summary(exp, tdir, ck, m)
                        if s is None:
                            continue  # unreadable (torn write): an older checkpoint stands in
                        found.setdefault(s["trial_id"], []).append((int(s["epoch"]), e_index, (exp, tdir, ck, m)))
                        if not every_checkpoint:
                            seen.add(m)
        for lst in found.values():
            lst.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return found

    def latest(self) -> dict[str, dict]:
        """trial_id → summary of its most advanced readable checkpoint."""
        return {tid: self.summary(*c[0][2]) for tid, c in self.candidates().items()}

    def __getstate__(self) -> dict:  # Ray pickles callbacks with the experiment state: keep it small
        return {"run": self.run, "_cache": {}}


def errors(run: RunDir) -> dict[str, dict]:
    out = {}
    for name in run.listdir("errors"):
        if name.endswith(".json"):
            try:
                rec = json.loads(run.read_text("errors", name))
                out[rec["trial_id"]] = rec
            except (OSError, ValueError, KeyError):
                continue
    return out


def extra_evaluations(run: RunDir) -> dict[str, list[dict]]:
    """Rows written by `decaylab evaluate` (they replace a trial's own final evaluations)."""
    out = {}
    for name in run.listdir("evaluations"):
        if name.endswith(".json"):
            try:
                rec = json.loads(run.read_text("evaluations", name))
                out[rec["trial_id"]] = rec["rows"]
            except (OSError, ValueError, KeyError):
                continue
    return out


def trial_status(summary: dict | None, error: dict | None, stopped: bool = False) -> str:
    if summary is not None and summary["status"] in FINISHED:
        return summary["status"]
    if stopped:
        return "stopped"
    return "failed" if error is not None else "running"


def stopped_trials(run: RunDir) -> set[str]:
    return {n.removesuffix(".json") for n in run.listdir("stopped") if n.endswith(".json")}


def record_stopped(run: RunDir, trial_id: str) -> None:
    run.write_atomic(b"{}", "stopped", f"{trial_id}.json")


def build_frames(scanner: Scanner) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(epochs, trials, evaluations) frames conforming to analysis.schema."""
    latest = scanner.latest()
    errs = errors(scanner.run)
    stopped = stopped_trials(scanner.run)
    extra = extra_evaluations(scanner.run)
    epoch_rows, trial_rows, eval_rows = [], [], []
    for tid in sorted(set(latest) | set(errs)):
        summary, error = latest.get(tid), errs.get(tid)
        status = trial_status(summary, error, tid in stopped)
        rows = [dict(r, status=status) for r in (summary["rows"] if summary else [])]
        epoch_rows += rows
        evals = extra.get(tid, summary["evaluations"] if summary else [])
        eval_rows += evals
        trial_rows.append(trial_row(summary, error, status, rows, evals))
    epochs = conform(pd.DataFrame(epoch_rows, columns=list(EPOCH_COLUMNS)), EPOCH_COLUMNS)
    trials = conform(pd.DataFrame(trial_rows, columns=list(TRIAL_COLUMNS)), TRIAL_COLUMNS)
    evaluations = conform(pd.DataFrame(eval_rows, columns=list(EVAL_COLUMNS)), EVAL_COLUMNS)
    return epochs, trials, evaluations


def trial_row(summary: dict | None, error: dict | None, status: str, rows: list[dict],
              evals: list[dict]) -> dict:
    config = (summary or error)["config"]
    base = rows[0] if rows else (error or {}).get("key_columns", {})
    out = {k: base.get(k) for k in ("study", "trial_id", "method", "kind", "lam", "lambda_awd", "lr", "seed",
                                    "label_noise")}
    out |= {"status": status, "error": (error or {}).get("error", "") if status == "failed" else "",
            "epochs": config["train"]["epochs"], "epochs_done": len(rows),
            "label_noise_actual": summary["label_noise_actual"] if summary else math.nan,
            "train_seconds": summary["train_seconds"] if summary else math.nan}
    evaluated = [r for r in rows if _finite(r["val_robust_acc"])]
    if evaluated:
        best = max(evaluated, key=lambda r: (r["val_robust_acc"], -r["epoch"]))
        last = rows[-1]
        out |= {"best_epoch": best["epoch"], "best_val_robust_acc": best["val_robust_acc"],
                "best_test_clean_acc": best["test_clean_acc"], "best_test_robust_acc": best["test_robust_acc"],
                "last_test_clean_acc": last["test_clean_acc"], "last_test_robust_acc": last["test_robust_acc"],
                "gap_robust": best["test_robust_acc"] - last["test_robust_acc"]}
    if rows:
        out["weight_norm_last"] = rows[-1]["weight_norm"]
    for r in evals:
        if r["sparsity"] == 0.0 and r["checkpoint"] in ("best", "last"):
            out[f"autoattack_{r['checkpoint']}"] = r["autoattack_acc"]
    return out


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def export(scanner: Scanner) -> dict[str, int]:
    """Rewrite the three parquet files atomically; return trial counts by status."""
    epochs, trials, evaluations = build_frames(scanner)
    run = scanner.run
    run.write_atomic(parquet_bytes(epochs), "epochs.parquet")
    run.write_atomic(parquet_bytes(evaluations), "evaluations.parquet")
    run.write_atomic(parquet_bytes(trials), "trials.parquet")  # last: readers key on it
    return trials["status"].value_counts().to_dict()


def read_manifest(run: RunDir) -> dict | None:
    try:
        return json.loads(run.read_text("manifest.json"))
    except (OSError, FileNotFoundError, ValueError):
        return None


def write_manifest(run: RunDir, manifest: dict) -> None:
    run.write_atomic(json.dumps(manifest, indent=2, default=str).encode(), "manifest.json")


def record_error(run: RunDir, trial_id: str, message: str, config: dict, key_columns: dict) -> None:
    rec = {"trial_id": trial_id, "error": message, "config": config, "key_columns": key_columns}
    run.write_atomic(json.dumps(rec, default=str).encode(), "errors", f"{trial_id}.json")


def clear_error(run: RunDir, trial_id: str) -> None:
    run.delete("errors", f"{trial_id}.json")
