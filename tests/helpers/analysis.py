"""Hand-built runs whose right answers are known by construction (tests/analysis/).

`lr_trap`: two arms, `wd` (fixed, λ ∈ {1e-4, 1e-3}, the reference) and `awd` (adaptive,
λ_awd ∈ {0.01, 0.02}), at lr ∈ {0.01, 0.03, 0.1, 0.3}, seeds {0, 1, 2}, 6 epochs. Both arms are
best-tuned at lr 0.03, where awd is 0.5 points *worse* than wd on every seed; at lr 0.01 and 0.1
awd is 5 points better, and at lr 0.3 every wd trial diverges. A test that pooled the (lr, seed)
pairs would call awd better; best-tuned vs best-tuned it is worse on 3 of 3 seeds, which 3 seeds
cannot make significant.

Each ok trial's validation robust accuracy per epoch is [v − 0.1, v − 0.05, v, v, v − 0.02, v − 0.03]
(a tie at epochs 3 and 4: epoch 3 is the best) and its final evaluation (best checkpoint) gives
PGD accuracy t, clean t + 0.3, FGSM t + 0.05; the last checkpoint t − GAP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import verdicts
from bench.synthetic import Results, config_row, manifest, write_results
from trials import schema, selection

STUDY = "lr_trap"
EPOCHS = 6
LRS = (0.01, 0.03, 0.1, 0.3)
SEEDS = (0, 1, 2)
SETTINGS = {"wd": ("fixed", "lam", (1e-4, 1e-3)), "awd": ("adaptive", "lambda_awd", (0.01, 0.02))}
GAP = 0.02
EXAMPLES = 500
VAL_SHAPE = (-0.1, -0.05, 0.0, 0.0, -0.02, -0.03)
BEST = {"wd": ("λ=0.001", 0.03), "awd": ("λ_awd=0.02", 0.03)}
DIVERGED = None


def _values(method: str, value: float, lr: float, seed: int) -> tuple[float, float] | None:
    """(validation score, final PGD accuracy at the best checkpoint) of one trial, or DIVERGED."""
    if method == "wd" and lr == 0.3:
        return DIVERGED
    base = {0.01: 0.40, 0.03: 0.45, 0.1: 0.38, 0.3: 0.30}[lr] + 0.01 * seed
    best_setting = value in (1e-3, 0.02)
    val = base + (0.02 if best_setting else 0.0) + (0.01 if method == "awd" and lr == 0.03 else 0.0)
    test = base + (0.01 if best_setting else 0.0)
    if method == "awd":
        test += -0.005 if lr == 0.03 else 0.05
    return val, test


def trials() -> dict[tuple[str, float, float, int], tuple[float, float] | None]:
    """(method, value, lr, seed) -> (score, final PGD) or DIVERGED, for every trial of the run."""
    out = {}
    for method, (_, _, values) in SETTINGS.items():
        for value in values:
            for lr in LRS:
                for seed in SEEDS:
                    out[(method, value, lr, seed)] = _values(method, value, lr, seed)
    return out


def config(method: str, value: float, lr: float, seed: int, study: str = STUDY, stage: str = "tune") -> dict[str, Any]:
    kind, name, _ = SETTINGS[method]
    return config_row(study, method, kind, {name: value}, lr, seed, 0.0, stage)


def build(study: str = STUDY, extra: list[tuple[dict, str]] | None = None) -> Results:
    """The frames of the run; `extra` adds (config, status) trials that never finish (failed/running)."""
    epochs, trial_rows, evals = [], [], []
    for (method, value, lr, seed), values in trials().items():
        cfg = config(method, value, lr, seed, study)
        rows = _diverged_epochs(cfg) if values is DIVERGED else _ok_epochs(cfg, values[0])
        epochs += rows
        trial_rows.append(_trial_row(cfg, rows))
        if values is not DIVERGED:
            evals += _evaluations(cfg, values[1], rows)
    for cfg, status in extra or []:
        rows = [
            {**cfg, "epoch": 1, "lr_now": cfg["lr"], "val_robust_acc": 0.99, "test_robust_acc": 0.99, "status": status}
        ]
        epochs += rows
        if status == "failed":
            trial_rows.append(_trial_row(cfg, rows) | {"error": "RuntimeError: CUDA error: out of memory"})
    return Results(
        schema.conform(pd.DataFrame(epochs), schema.EPOCH_COLUMNS),
        schema.conform(pd.DataFrame(trial_rows), schema.TRIAL_COLUMNS),
        schema.conform(pd.DataFrame(evals), schema.EVAL_COLUMNS),
    )


def _ok_epochs(cfg: dict, val: float) -> list[dict]:
    return [
        {
            **cfg,
            "epoch": e + 1,
            "lr_now": cfg["lr"] * (1 - e / EPOCHS),
            "val_robust_acc": val + shift,
            "val_clean_acc": val + shift + 0.3,
            # per-epoch test accuracy peaks at epoch 1: selecting on test would pick the wrong epoch
            "test_robust_acc": val + 0.2 - 0.01 * e,
            "test_clean_acc": val + 0.5,
            "weight_norm": (20.0 if cfg["kind"] == "fixed" else 10.0) + cfg["seed"],
            "grad_norm": 1.0 / (e + 1),
            "lambda_mean": cfg["lam"] if cfg["kind"] == "fixed" else 1e-3 * (e + 1),
            "lambda_min": cfg["lam"] if cfg["kind"] == "fixed" else 5e-4 * (e + 1),
            "lambda_max": cfg["lam"] if cfg["kind"] == "fixed" else 2e-3 * (e + 1),
            "epoch_seconds": 2.0,
            "status": "ok",
        }
        for e, shift in enumerate(VAL_SHAPE)
    ]


def _diverged_epochs(cfg: dict) -> list[dict]:
    """Epoch 1 looks excellent (it must never be picked); epoch 2's loss is not finite."""
    first = {**cfg, "epoch": 1, "lr_now": cfg["lr"], "val_robust_acc": 0.9, "test_robust_acc": 0.99}
    second = {**cfg, "epoch": 2, "lr_now": cfg["lr"], "train_loss": np.nan, "val_robust_acc": np.nan}
    return [
        {**row, "status": "diverged", "test_clean_acc": 0.99, "weight_norm": 1e3, "epoch_seconds": 2.0}
        for row in (first, second)
    ]


def _trial_row(cfg: dict, rows: list[dict]) -> dict:
    """What the orchestrator writes: `trials.selection`'s summary of the rows."""
    status = rows[0]["status"]
    summary = selection.summarize(rows)
    return (
        cfg
        | summary
        | {
            "status": status,
            "error": "",
            "epochs": EPOCHS,
            "epochs_done": len(rows),
            "score": selection.score(status, summary["best_val_robust_acc"]),
            "train_seconds": 2.0 * len(rows),
        }
    )


def _evaluations(cfg: dict, test: float, rows: list[dict], correct: np.ndarray | None = None) -> list[dict]:
    """Best and last checkpoint rows; `correct` (per-example booleans) is stored packed for the best one."""
    best_epoch = selection.best_row(rows)["epoch"]
    examples = EXAMPLES if correct is None else len(correct)
    common = {**cfg, "sparsity": 0.0, "examples": examples, "autoattack_acc": np.nan}
    packed = {} if correct is None else {"correct_pgd": verdicts.pack_correct(correct)}
    return [
        common
        | packed
        | {
            "checkpoint": "best",
            "epoch": best_epoch,
            "pgd_acc": test,
            "clean_acc": test + 0.3,
            "fgsm_acc": test + 0.05,
        },
        common
        | {
            "checkpoint": "last",
            "epoch": EPOCHS,
            "pgd_acc": test - GAP,
            "clean_acc": test + 0.28,
            "fgsm_acc": test + 0.03,
        },
    ]


def write_run(path, *, planned: int | None = None, with_manifest: bool = True, partial: bool = False, **study):
    """Write the run to `path` (partial: plus one failed and one running awd trial)."""
    extra = []
    if partial:
        extra = [(config("awd", 0.05, 0.01, 0), "failed"), (config("awd", 0.05, 0.03, 0), "running")]
    results = build(extra=extra)
    data = manifest(results, trials_planned=planned, **study) if with_manifest else None
    if data is not None:
        data["resolved_study"]["methods"] = {
            "wd": {"kind": "fixed", "lambda": [1e-4, 1e-3]},
            "awd": {"kind": "adaptive", "lambda_awd": [0.01, 0.02]},
        }
    write_results(path, results, data)
    return path


def known_trial(
    method: str,
    value: float,
    lr: float,
    seed: int,
    val: float,
    test: float,
    *,
    stage: str = "tune",
    status: str = "ok",
    correct: np.ndarray | None = None,
) -> dict[str, Any]:
    """One trial of `write_known_run`: its configuration (an arm of SETTINGS), validation score, final PGD accuracy
    at the best checkpoint, status ("ok", "failed" or "running") and optional per-example correctness."""
    return {"cfg": config(method, value, lr, seed, stage=stage), "val": val, "test": test, "status": status,
            "correct": correct}


def write_known_run(path, trials: list[dict], *, tuning_seeds, epochs: int = EPOCHS, **study) -> Path:
    """A run directory of the `known_trial`s, whose numbers are known by construction. Each ok trial's
    validation robust accuracy is `val` at its best epoch (VAL_SHAPE), its final PGD accuracy `test`; a failed
    trial stops after one epoch, a running one has epoch rows only. `study` overrides the manifest's resolved
    study (e.g. confirm={...}); its `seeds` are `tuning_seeds`."""
    epoch_rows, trial_rows, evals = [], [], []
    for trial in trials:
        cfg = trial["cfg"]
        if trial["status"] == "ok":
            rows = _ok_epochs(cfg, trial["val"])[:epochs]
            evals += _evaluations(cfg, trial["test"], rows, trial["correct"])
        else:
            rows = [{**cfg, "epoch": 1, "lr_now": cfg["lr"], "val_robust_acc": trial["val"], "status": trial["status"]}]
        epoch_rows += rows
        if trial["status"] != "running":
            trial_rows.append(_trial_row(cfg, rows) | {"status": trial["status"], "epochs": epochs})
    results = Results(
        schema.conform(pd.DataFrame(epoch_rows), schema.EPOCH_COLUMNS),
        schema.conform(pd.DataFrame(trial_rows), schema.TRIAL_COLUMNS),
        schema.conform(pd.DataFrame(evals), schema.EVAL_COLUMNS),
    )
    data = manifest(results, seeds=sorted(tuning_seeds), **study)
    data["resolved_study"]["train"]["epochs"] = epochs
    data["resolved_study"]["methods"] = {
        method: {"kind": kind, ("lambda" if name == "lam" else name): list(values)}
        for method, (kind, name, values) in SETTINGS.items()
    }
    write_results(path, results, data)
    return Path(path)


def bad_evaluations() -> pd.DataFrame:
    """Six evaluation rows; rows 1, 2, 3 and 5 violate an ordering (row 5 twice)."""
    base = {**config("awd", 0.02, 0.01, 0), "epoch": 2, "examples": 100}
    rows = [
        ("best", 0.0, 0.8, 0.6, 0.5, 0.45),
        ("last", 0.0, 0.8, 0.6, 0.5, 0.55),
        ("best", 0.5, 0.8, 0.4, 0.5, 0.45),
        ("best", 0.8, 0.5, 0.6, 0.5, 0.45),
        ("last", 0.5, 0.8, 0.6, 0.5, np.nan),
        ("last", 0.8, 0.4, 0.3, 0.45, np.nan),
    ]
    names = ["checkpoint", "sparsity", "clean_acc", "fgsm_acc", "pgd_acc", "autoattack_acc"]
    frame = pd.DataFrame([{**base, **dict(zip(names, row, strict=True))} for row in rows])
    return schema.conform(frame, schema.EVAL_COLUMNS)
