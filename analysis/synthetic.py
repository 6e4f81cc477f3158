"""Synthetic result files that conform to the schema, for tests, demos and the benchmark.

The curves are plausible rather than realistic: accuracy peaks at a middle lr and a middle λ,
the adaptive arm is a little better and flatter across lrs, small λ overfits late (robust
overfitting), λ̄ of AWD wanders around 1e-3, and memorisation of noisy labels rises with
epochs. Everything is seeded, so the same arguments give the same frames.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import schema
from analysis.select import selected_epochs

DEFAULT_ARMS: Mapping[str, tuple[str, Sequence[float]]] = {
    "wd": ("fixed", (0.0, 5e-4, 5e-3)),
    "awd": ("adaptive", (0.01, 0.02, 0.05)),
}
SPARSITIES = (0.0, 0.5, 0.8, 0.9)
# (method, hyperparameter, lr, seed or None for every seed)
TrialSpec = tuple[str, float, float, int | None]


@dataclass(frozen=True)
class Results:
    epochs: pd.DataFrame
    trials: pd.DataFrame
    evaluations: pd.DataFrame | None


def make_results(
    *,
    arms: Mapping[str, tuple[str, Sequence[float]]] = DEFAULT_ARMS,
    lrs: Sequence[float] = (0.01, 0.05, 0.2),
    seeds: Sequence[int] = (0, 1),
    epochs: int = 30,
    label_noise: Sequence[float] = (0.0,),
    diverged: Sequence[TrialSpec] = (),
    failed: Sequence[TrialSpec] = (),
    running: Sequence[TrialSpec] = (),
    schedule: str = "cosine",
    evaluations: bool = False,
    autoattack: bool = False,
    study: str = "synthetic",
    seed: int = 0,
) -> Results:
    """Every arm × its grid × lr × seed × noise level, `epochs` epochs each.

    Trials matching `diverged` stop with a non-finite loss at epoch min(3, epochs); `failed`
    and `running` ones stop halfway. `evaluations` adds best/last checkpoint rows at several
    sparsities (with AutoAttack when `autoattack`, which also fills the trials' columns).
    """
    rng = np.random.default_rng(seed)
    config = _configs(arms, lrs, seeds, label_noise, study)
    config["status"] = _statuses(config, diverged, failed, running)
    stop = {
        "ok": epochs,
        "diverged": min(3, epochs),
        "failed": max(epochs // 2, 1),
        "running": max(epochs // 2, 1),
    }
    rows = _epoch_rows(config, epochs, stop, schedule, rng)
    trials = _trial_rows(config, rows, epochs, autoattack, rng)
    evals = _evaluation_rows(trials, autoattack, rng) if evaluations else None
    return Results(
        schema.conform(rows, schema.EPOCH_COLUMNS),
        schema.conform(trials, schema.TRIAL_COLUMNS),
        None if evals is None else schema.conform(evals, schema.EVAL_COLUMNS),
    )


def _configs(arms, lrs, seeds, label_noise, study: str) -> pd.DataFrame:
    rows = []
    for (method, (kind, grid)), lr, seed, noise in itertools.product(arms.items(), lrs, seeds, label_noise):
        rows += [
            {
                "method": method,
                "kind": kind,
                "lam": hp if kind == "fixed" else np.nan,
                "lambda_awd": hp if kind == "adaptive" else np.nan,
                "hp": hp,
                "lr": lr,
                "seed": seed,
                "label_noise": noise,
            }
            for hp in grid
        ]
    config = pd.DataFrame(rows).sort_values(["label_noise", "method", "hp", "lr", "seed"], kind="stable")
    config["study"] = study
    config["trial_id"] = [f"t{i:05d}" for i in range(len(config))]
    return config.reset_index(drop=True)


def _statuses(config: pd.DataFrame, diverged, failed, running) -> np.ndarray:
    status = np.full(len(config), "ok", dtype=object)
    for name, specs in (("diverged", diverged), ("failed", failed), ("running", running)):
        for method, hp, lr, seed in specs:
            match = (config["method"] == method) & np.isclose(config["hp"], hp) & np.isclose(config["lr"], lr)
            if seed is not None:
                match &= config["seed"] == seed
            status[match.to_numpy()] = name
    return status


def _epoch_rows(config: pd.DataFrame, n_epochs: int, stop: dict, schedule: str, rng) -> pd.DataFrame:
    """All epoch rows at once: an (n_trials, n_epochs) grid, cut where each trial stopped."""
    n = len(config)
    e = np.arange(1, n_epochs + 1)[None, :].astype(float)
    adaptive = (config["kind"] == "adaptive").to_numpy()[:, None]
    hp, lr = config["hp"].to_numpy()[:, None], config["lr"].to_numpy()[:, None]
    noise = config["label_noise"].to_numpy()[:, None]
    best_hp = np.where(adaptive, 0.02, 5e-4)
    lr_penalty = np.where(adaptive, 0.03, 0.08) * np.log10(lr / 0.05) ** 2
    hp_penalty = 0.01 * np.log10((hp + 1e-5) / best_hp) ** 2
    peak = np.where(adaptive, 0.50, 0.46) - lr_penalty - hp_penalty - 0.3 * noise
    peak = peak + rng.normal(0, 0.01, (n, 1))
    overfit = np.where(adaptive, 0.02, 0.08) / (1 + hp * np.where(adaptive, 10, 400))
    progress = e / n_epochs
    robust = peak * (1 - np.exp(-6 * progress)) - overfit * np.clip(progress - 0.5, 0, None)
    test_robust = np.clip(robust + rng.normal(0, 0.004, (n, n_epochs)), 0, 1)
    val_robust = np.clip(robust + rng.normal(0, 0.006, (n, n_epochs)), 0, 1)
    clean = np.clip(test_robust + 0.3 + rng.normal(0, 0.004, (n, n_epochs)), 0, 1)
    grad = (0.2 + 2 * np.exp(-4 * progress)) * (1 + 0.05 * rng.standard_normal((n, n_epochs)))
    weight = np.where(adaptive, 12, 30 / (1 + 200 * hp)) * (0.6 + 0.4 * progress) + rng.normal(0, 0.3, (n, 1))
    lam_bar = hp * grad / weight * 2.5
    frame = {
        "epoch": np.broadcast_to(e, (n, n_epochs)).astype(int),
        "lr_now": lr * _schedule(progress, schedule),
        "train_loss": 2.2 * np.exp(-3 * progress) + 0.1,
        "train_clean_acc": np.clip(clean + 0.2 * progress, 0, 1),
        "train_robust_acc": np.clip(test_robust + 0.4 * progress, 0, 1),
        "val_clean_acc": np.clip(clean + rng.normal(0, 0.006, (n, n_epochs)), 0, 1),
        "val_robust_acc": val_robust,
        "test_clean_acc": clean,
        "test_robust_acc": test_robust,
        "weight_norm": weight,
        "grad_norm": grad,
        "lambda_mean": np.where(adaptive, lam_bar, hp),
        "lambda_min": np.where(adaptive, 0.6 * lam_bar, hp),
        "lambda_max": np.where(adaptive, 1.5 * lam_bar, hp),
        "noisy_fit_acc": np.where(
            noise > 0, np.where(adaptive, 0.4, 0.9) * (1 - noise) / (1 + np.exp(-10 * (progress - 0.6))), np.nan
        ),
        "epoch_seconds": np.full((n, n_epochs), 0.8),
    }
    grid = pd.DataFrame({name: np.broadcast_to(values, (n, n_epochs)).ravel() for name, values in frame.items()})
    grid = pd.concat([config.loc[config.index.repeat(n_epochs)].reset_index(drop=True), grid], axis=1)
    grid = grid[grid["epoch"] <= grid["status"].map(stop)].reset_index(drop=True)
    _break_diverged(grid)
    return grid


def _schedule(progress: np.ndarray, schedule: str) -> np.ndarray:
    if schedule == "piecewise":  # Rice et al.: ÷10 at 50% and at 75% of training
        return np.where(progress <= 0.5, 1.0, np.where(progress <= 0.75, 0.1, 0.01))
    return 0.5 * (1 + np.cos(np.pi * progress))


def _break_diverged(grid: pd.DataFrame) -> None:
    """The last row of a diverged trial: non-finite loss and chance accuracy, as a real one logs it."""
    last = grid["status"].eq("diverged") & ~grid["trial_id"].duplicated(keep="last")
    grid.loc[last, "train_loss"] = np.nan
    for column in ["train_clean_acc", "train_robust_acc", "val_clean_acc", "val_robust_acc"]:
        grid.loc[last, column] = 0.1
    grid.loc[last, ["test_clean_acc", "test_robust_acc"]] = 0.1


def _trial_rows(config: pd.DataFrame, rows: pd.DataFrame, epochs: int, autoattack: bool, rng) -> pd.DataFrame:
    best = selected_epochs(rows)
    at_best = rows[["trial_id", "epoch", "test_clean_acc", "test_robust_acc"]].rename(
        columns={
            "epoch": "best_epoch",
            "test_clean_acc": "best_test_clean_acc",
            "test_robust_acc": "best_test_robust_acc",
        }
    )
    last = rows.drop_duplicates("trial_id", keep="last")[
        ["trial_id", "epoch", "test_clean_acc", "test_robust_acc", "weight_norm"]
    ].rename(
        columns={
            "epoch": "epochs_done",
            "test_clean_acc": "last_test_clean_acc",
            "test_robust_acc": "last_test_robust_acc",
            "weight_norm": "weight_norm_last",
        }
    )
    trials = config.merge(best.merge(at_best, on=["trial_id", "best_epoch"]), on="trial_id", how="left")
    trials = trials.merge(last, on="trial_id", how="left")
    trials["epochs"] = epochs
    trials["epochs_done"] = trials["epochs_done"].fillna(0).astype(int)
    trials["gap_robust"] = trials["best_test_robust_acc"] - trials["last_test_robust_acc"]
    trials["error"] = np.where(trials["status"] == "failed", "RuntimeError: CUDA error: out of memory", "")
    ok = trials["status"] == "ok"
    if autoattack:
        for checkpoint in ("best", "last"):
            aa = trials[f"{checkpoint}_test_robust_acc"] - 0.03 + rng.normal(0, 0.003, len(trials))
            trials[f"autoattack_{checkpoint}"] = aa.where(ok)
    trials["label_noise_actual"] = trials["label_noise"]
    trials["train_seconds"] = trials["epochs_done"] * 0.8
    return trials


def _evaluation_rows(trials: pd.DataFrame, autoattack: bool, rng) -> pd.DataFrame:
    """best/last checkpoints of `ok` trials at each sparsity; accuracy falls as weights are pruned."""
    ok = trials[trials["status"] == "ok"]
    parts = []
    for checkpoint, sparsity in itertools.product(("best", "last"), SPARSITIES):
        robust = ok[f"{checkpoint}_test_robust_acc"] * (1 - sparsity**3 * np.where(ok["kind"] == "adaptive", 0.5, 1))
        part = ok[list(schema.CONFIG_COLUMNS)].assign(
            checkpoint=checkpoint,
            epoch=ok["best_epoch"] if checkpoint == "best" else ok["epochs_done"],
            sparsity=sparsity,
            examples=1000,
            clean_acc=np.clip(robust + 0.3, 0, 1),
            fgsm_acc=robust + 0.05,
            pgd_acc=robust,
            autoattack_acc=robust - 0.03 + rng.normal(0, 0.002, len(ok)) if autoattack else np.nan,
        )
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def manifest(
    results: Results, *, trials_planned: int | None = None, finished: bool = True, schedule: str = "cosine"
) -> dict:
    """A manifest.json for `results`, shaped like the orchestrator's."""
    trials = results.trials
    arms = trials.drop_duplicates("method")[["method", "kind"]]
    methods = {}
    for method, kind in arms.itertuples(index=False):
        column = "lam" if kind == "fixed" else "lambda_awd"
        grid = sorted(trials.loc[trials["method"] == method, column].unique().tolist())
        methods[method] = {"kind": kind, "lambda" if kind == "fixed" else "lambda_awd": grid}
    study = str(trials["study"].iloc[0]) if len(trials) else "synthetic"
    return {
        "study": study,
        "resolved_study": {
            "name": study,
            "train": {"epochs": int(trials["epochs"].max()) if len(trials) else 0, "schedule": schedule},
            "attack": {"train": {"kind": "pgd", "eps": 0.25, "steps": 5, "step_size": 0.1}},
            "methods": methods,
            "lr": sorted(trials["lr"].unique().tolist()),
            "seeds": sorted(trials["seed"].unique().tolist()),
        },
        "trials_planned": len(trials) if trials_planned is None else trials_planned,
        "git_commit": None,
        "versions": {"pandas": pd.__version__},
        "hardware": {"device": "synthetic"},
        "started": "2025-01-01T00:00:00",
        "finished": "2025-01-01T01:00:00" if finished else None,
    }


def write_run_dir(path: str | Path, *, trials_planned: int | None = None, finished: bool = True, **kwargs) -> Path:
    """Write epochs/trials(/evaluations).parquet and manifest.json from `make_results(**kwargs)`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    results = make_results(**kwargs)
    schedule = kwargs.get("schedule", "cosine")
    write_results(path, results, manifest(results, trials_planned=trials_planned, finished=finished, schedule=schedule))
    return path


def write_results(path: Path, results: Results, manifest_data: dict | None) -> None:
    """Write given frames (e.g. hand-built ones) as a run directory; no manifest when None."""
    path.mkdir(parents=True, exist_ok=True)
    results.epochs.to_parquet(path / "epochs.parquet", index=False)
    results.trials.to_parquet(path / "trials.parquet", index=False)
    if results.evaluations is not None:
        results.evaluations.to_parquet(path / "evaluations.parquet", index=False)
    if manifest_data is not None:
        (path / "manifest.json").write_text(json.dumps(manifest_data, indent=2))
