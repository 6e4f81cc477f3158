"""A hand-built run whose right answers are known by construction (tests/test_analysis_*.py).

Two arms — `wd` (fixed, λ ∈ {1e-4, 1e-3}) and `awd` (adaptive, λ_awd ∈ {0.01, 0.02}) — at
lr ∈ {0.01, 0.1, 1.0}, seeds {0, 1}, 3 epochs. Each ok trial's validation robust accuracy is
[v − 0.05, v, v] (a tie: epoch 2 must be selected) and its test robust accuracy is
[t + 0.05, t, t − gap]: selecting on test would pick epoch 1, selecting on validation picks
epoch 2. `TRIALS` lists (v, t) per trial; expected values below are worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import schema
from analysis.synthetic import Results, manifest, write_results

STUDY = "handmade"
EPOCHS = 3
GAP = {"wd": 0.04, "awd": 0.01}
WEIGHT_NORM = {"wd": 20.0, "awd": 10.0}  # + seed
DIVERGED = None

# (method, hp, lr, seed) -> (best val robust, test robust at the best epoch) or DIVERGED.
TRIALS: dict[tuple[str, float, float, int], tuple[float, float] | None] = {
    ("wd", 1e-4, 0.01, 0): (0.41, 0.51),
    ("wd", 1e-4, 0.01, 1): (0.39, 0.49),
    ("wd", 1e-4, 0.1, 0): (0.31, 0.31),
    ("wd", 1e-4, 0.1, 1): (0.29, 0.29),
    ("wd", 1e-4, 1.0, 0): DIVERGED,
    ("wd", 1e-4, 1.0, 1): DIVERGED,
    ("wd", 1e-3, 0.01, 0): (0.45, 0.43),
    ("wd", 1e-3, 0.01, 1): (0.43, 0.41),
    ("wd", 1e-3, 0.1, 0): (0.37, 0.35),
    ("wd", 1e-3, 0.1, 1): (0.35, 0.33),
    ("wd", 1e-3, 1.0, 0): DIVERGED,
    ("wd", 1e-3, 1.0, 1): (0.19, 0.19),
    ("awd", 0.01, 0.01, 0): (0.47, 0.45),
    ("awd", 0.01, 0.01, 1): (0.45, 0.43),
    ("awd", 0.01, 0.1, 0): (0.46, 0.35),
    ("awd", 0.01, 0.1, 1): (0.44, 0.35),
    ("awd", 0.01, 1.0, 0): (0.41, 0.39),
    ("awd", 0.01, 1.0, 1): (0.39, 0.37),
    ("awd", 0.02, 0.01, 0): (0.51, 0.40),
    ("awd", 0.02, 0.01, 1): (0.49, 0.50),
    ("awd", 0.02, 0.1, 0): (0.43, 0.41),
    ("awd", 0.02, 0.1, 1): (0.41, 0.39),
    ("awd", 0.02, 1.0, 0): (0.36, 0.37),
    ("awd", 0.02, 1.0, 1): (0.34, 0.35),
}

# Worked out by hand from TRIALS.
BEST = {"wd": (1e-3, 0.01), "awd": (0.02, 0.01)}  # arm -> (hp, lr), best mean val
BEST_PER_LR = {"wd": {0.01: 1e-3, 0.1: 1e-3, 1.0: 1e-3}, "awd": {0.01: 0.02, 0.1: 0.01, 1.0: 0.01}}
PGD_BEST = {"wd": (0.42, np.std([0.43, 0.41], ddof=1)), "awd": (0.45, np.std([0.40, 0.50], ddof=1))}
REL_IMPROVEMENT = (0.45 - 0.42) / 0.42
# Best single setting across lrs: wd λ=1e-3 → [0.42, 0.34, (0 + 0.19) / 2]; awd 0.02 → [0.45, 0.40, 0.36].
SPREAD_BEST = {"wd": 0.42 - 0.095, "awd": 0.45 - 0.36}
AREA_BEST = {"wd": ((0.42 + 0.34) / 2 + (0.34 + 0.095) / 2) / 2, "awd": ((0.45 + 0.40) / 2 + (0.40 + 0.36) / 2) / 2}
# Envelope: awd → [0.45 (0.02), 0.35 (0.01), 0.38 (0.01)]; wd's is its single setting.
SPREAD_ENVELOPE = {"wd": 0.42 - 0.095, "awd": 0.45 - 0.35}
AREA_ENVELOPE = {"wd": AREA_BEST["wd"], "awd": ((0.45 + 0.35) / 2 + (0.35 + 0.38) / 2) / 2}
# Paired (lr, seed), awd − wd at each arm's best setting per lr (a diverged trial counts 0).
PAIRED_DIFFS = [0.40 - 0.43, 0.50 - 0.41, 0.35 - 0.35, 0.35 - 0.33, 0.39 - 0.0, 0.37 - 0.19]
WINS_TIES_LOSSES = (4, 1, 1)
DIVERGED_IDS = ["wd-0.0001-1-0", "wd-0.0001-1-1", "wd-0.001-1-0"]


def trial_id(method: str, hp: float, lr: float, seed: int) -> str:
    return f"{method}-{hp:g}-{lr:g}-{seed}"


def _config(method: str, hp: float, lr: float, seed: int) -> dict:
    kind = "fixed" if method == "wd" else "adaptive"
    return {
        "study": STUDY,
        "trial_id": trial_id(method, hp, lr, seed),
        "method": method,
        "kind": kind,
        "lam": hp if kind == "fixed" else np.nan,
        "lambda_awd": hp if kind == "adaptive" else np.nan,
        "lr": lr,
        "seed": seed,
        "label_noise": 0.0,
    }


def _ok_epochs(config: dict, val: float, test: float) -> list[dict]:
    gap = GAP[config["method"]]
    vals, tests = [val - 0.05, val, val], [test + 0.05, test, test - gap]
    return [
        {
            **config,
            "epoch": e + 1,
            "lr_now": config["lr"] * [1.0, 0.5, 0.0][e],
            "val_robust_acc": vals[e],
            "val_clean_acc": vals[e] + 0.3,
            "test_robust_acc": tests[e],
            "test_clean_acc": tests[e] + 0.3,
            "weight_norm": WEIGHT_NORM[config["method"]] + config["seed"],
            "grad_norm": 1.0 / (e + 1),
            "lambda_mean": config["lam"] if config["kind"] == "fixed" else 1e-3 * (e + 1),
            "lambda_min": config["lam"] if config["kind"] == "fixed" else 5e-4 * (e + 1),
            "lambda_max": config["lam"] if config["kind"] == "fixed" else 2e-3 * (e + 1),
            "status": "ok",
        }
        for e in range(EPOCHS)
    ]


def _diverged_epochs(config: dict) -> list[dict]:
    """Epoch 1 looks excellent on test (it must never be picked); epoch 2 has a NaN loss."""
    first = {**config, "epoch": 1, "lr_now": config["lr"], "val_robust_acc": 0.9, "test_robust_acc": 0.99}
    second = {**config, "epoch": 2, "lr_now": config["lr"], "train_loss": np.nan}
    return [{**row, "status": "diverged", "test_clean_acc": 0.99, "weight_norm": 1e3} for row in (first, second)]


def build(extra_epochs: list[dict] | None = None, extra_trials: list[dict] | None = None) -> Results:
    """The frames of the hand-built run (plus optional extra rows, e.g. a running trial)."""
    epochs, trials = [], []
    for (method, hp, lr, seed), values in TRIALS.items():
        config = _config(method, hp, lr, seed)
        rows = _diverged_epochs(config) if values is DIVERGED else _ok_epochs(config, *values)
        epochs += rows
        trials.append(_trial_row(config, rows))
    epochs += extra_epochs or []
    trials += extra_trials or []
    return Results(
        schema.conform(pd.DataFrame(epochs), schema.EPOCH_COLUMNS),
        schema.conform(pd.DataFrame(trials), schema.TRIAL_COLUMNS),
        None,
    )


def _trial_row(config: dict, rows: list[dict]) -> dict:
    status = rows[0]["status"]
    return {
        **config,
        "status": status,
        "error": "",
        "epochs": EPOCHS,
        "epochs_done": len(rows),
        "weight_norm_last": rows[-1]["weight_norm"] if status == "ok" else np.nan,
    }


def running_trial() -> tuple[list[dict], list[dict]]:
    """An awd trial still running at epoch 1 with a tempting val accuracy: never selected."""
    config = _config("awd", 0.05, 0.01, 0)
    epoch = {**config, "epoch": 1, "lr_now": 0.01, "val_robust_acc": 0.99, "test_robust_acc": 0.99}
    return [{**epoch, "status": "running"}], []


def failed_trial() -> tuple[list[dict], list[dict]]:
    config = _config("awd", 0.05, 0.1, 0)
    row = {**config, "status": "failed", "error": "RuntimeError: CUDA error: out of memory", "epochs": EPOCHS}
    return [], [{**row, "epochs_done": 0}]


def write_run(path, *, planned: int | None = None, with_manifest: bool = True, partial: bool = False):
    """Write the hand-built run (partial: plus a running and a failed trial) to `path`."""
    extra_epochs, extra_trials = [], []
    if partial:
        for epochs, trials in (running_trial(), failed_trial()):
            extra_epochs += epochs
            extra_trials += trials
    results = build(extra_epochs, extra_trials)
    data = manifest(results, trials_planned=planned) if with_manifest else None
    write_results(path, results, data)
    return path


def bad_evaluations() -> pd.DataFrame:
    """Six evaluation rows; rows 1, 2, 3 and 5 violate an ordering (row 5 twice)."""
    base = {**_config("awd", 0.02, 0.01, 0), "epoch": 2, "examples": 100}
    rows = [
        {
            "checkpoint": "best",
            "sparsity": 0.0,
            "clean_acc": 0.8,
            "fgsm_acc": 0.6,
            "pgd_acc": 0.5,
            "autoattack_acc": 0.45,
        },
        {
            "checkpoint": "last",
            "sparsity": 0.0,
            "clean_acc": 0.8,
            "fgsm_acc": 0.6,
            "pgd_acc": 0.5,
            "autoattack_acc": 0.55,
        },
        {
            "checkpoint": "best",
            "sparsity": 0.5,
            "clean_acc": 0.8,
            "fgsm_acc": 0.4,
            "pgd_acc": 0.5,
            "autoattack_acc": 0.45,
        },
        {
            "checkpoint": "best",
            "sparsity": 0.8,
            "clean_acc": 0.5,
            "fgsm_acc": 0.6,
            "pgd_acc": 0.5,
            "autoattack_acc": 0.45,
        },
        {
            "checkpoint": "last",
            "sparsity": 0.5,
            "clean_acc": 0.8,
            "fgsm_acc": 0.6,
            "pgd_acc": 0.5,
            "autoattack_acc": np.nan,
        },
        {
            "checkpoint": "last",
            "sparsity": 0.8,
            "clean_acc": 0.4,
            "fgsm_acc": 0.3,
            "pgd_acc": 0.45,
            "autoattack_acc": np.nan,
        },
    ]
    frame = pd.DataFrame([{**base, **row} for row in rows])
    return schema.conform(frame, schema.EVAL_COLUMNS)
