"""Synthetic result files that conform to the schema: run directories for the benchmarks and the analysis tests.

The curves are plausible rather than realistic: accuracy peaks at a middle lr and at the middle
setting of each arm, adaptive-style arms are a little better and flatter across lrs, small decay
overfits late (robust overfitting), λ̄ of AWD wanders around 1e-3, and memorisation of noisy
labels rises with epochs. Trials are summarised with `trials.selection` (as the orchestrator
does), and the final evaluation (best and last checkpoints, fixed examples) is written to
evaluations.parquet. Everything is seeded: the same arguments give the same frames.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trials import arms, schema, selection
from trials.arms.base import format_value

# (kind, settings): one dict of hyperparameters per setting, or for a one-hyperparameter arm its values
Arm = tuple[str, Sequence[dict[str, Any]] | Sequence[float]]


def grid(kind: str, **axes: Sequence[Any]) -> Arm:
    """An arm of `kind` whose settings are every combination of the `axes`."""
    names = list(axes)
    return kind, [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


DEFAULT_ARMS: Mapping[str, Arm] = {
    "wd": grid("fixed", lam=(0.0, 5e-4, 5e-3)),
    "awd": grid("adaptive", lambda_awd=(0.01, 0.02, 0.05)),
}
MANY_KINDS: Mapping[str, Arm] = {
    **DEFAULT_ARMS,
    "dwd": grid("decoupled", lam=(5e-5, 5e-4)),
    "ew": grid("windowed", lam=(5e-4,), start=(0.0,), stop=(0.25, 0.5)),
    "sad": grid("softad", theta=(0.5, 1.0), sigma=(1.0,)),
    "rs": grid("rescale", granularity=("layer", "model")),
    "rw": grid("reweight", tau=(0.5, 1.0)),
    "sch": grid("scheduled", schedule=("step", "cosine")),
}
FLAT_KINDS = ("adaptive", "rescale", "softad", "reweight")  # the arms drawn as less lr-sensitive
SPARSITIES = (0.0, 0.5, 0.8, 0.9)
EXAMPLES = 1000
# (method, setting label, lr, seed or None for every seed)
TrialSpec = tuple[str, str, float, int | None]


@dataclass(frozen=True)
class Results:
    epochs: pd.DataFrame
    trials: pd.DataFrame
    evaluations: pd.DataFrame | None


def trial_id(
    method: str, kind: str, setting: dict[str, Any], lr: float, seed: int, noise: float = 0.0, stage: str = "tune"
) -> str:
    """`<arm>-<hyperparameter values>-lr<lr>-s<seed>[-n<noise>][-confirm]`, as the orchestrator spells it."""
    setting = arms.complete(kind, setting)
    values = "-".join(format_value(setting[k]) for k in arms.grid_class(kind).shown(setting))
    noise_part = f"-n{format_value(noise)}" if noise else ""
    return f"{method}-{values}-lr{format_value(lr)}-s{seed}{noise_part}" + ("-confirm" if stage == "confirm" else "")


def config_row(
    study: str,
    method: str,
    kind: str,
    setting: dict[str, Any],
    lr: float,
    seed: int,
    noise: float,
    stage: str = "tune",
) -> dict:
    """The configuration columns of one trial (`stage` "tune", or "confirm" for a confirmation trial)."""
    hyper = {name: (pd.NA if dtype == "string" else np.nan) for name, dtype in schema.HYPERPARAMETER_COLUMNS.items()}
    setting = arms.complete(kind, setting)
    return {
        "study": study,
        "trial_id": trial_id(method, kind, setting, lr, seed, noise, stage),
        "method": method,
        "kind": kind,
        "setting": arms.label(kind, setting),
        **hyper,
        **setting,
        "lr": lr,
        "seed": seed,
        "stage": stage,
        "label_noise": noise,
    }


def make_results(
    *,
    arms: Mapping[str, Arm] = DEFAULT_ARMS,
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
    """Every arm × its settings × lr × seed × noise level, `epochs` epochs each.

    Trials matching `diverged` stop with a non-finite loss at epoch min(3, epochs); `failed`
    and `running` ones stop halfway. Every `ok` trial has a final evaluation of its best and last
    checkpoints; `evaluations` adds evaluations at several pruning sparsities, `autoattack` AutoAttack.
    """
    rng = np.random.default_rng(seed)
    config = _configs(arms, lrs, seeds, label_noise, study)
    config["status"] = _statuses(config, diverged, failed, running)
    stop = {"ok": epochs, "diverged": min(3, epochs), "failed": max(epochs // 2, 1), "running": max(epochs // 2, 1)}
    rows = _epoch_rows(config, epochs, stop, schedule, rng)
    trials = _trial_rows(config, rows, epochs)
    evals = _evaluation_rows(trials, evaluations, autoattack, rng)
    for checkpoint in ("best", "last"):
        unpruned = evals[(evals["sparsity"] == 0) & (evals["checkpoint"] == checkpoint)]
        trials[f"autoattack_{checkpoint}"] = trials["trial_id"].map(unpruned.set_index("trial_id")["autoattack_acc"])
    running_ids = trials.loc[trials["status"] == "running", "trial_id"]
    return Results(
        schema.conform(rows, schema.EPOCH_COLUMNS),
        schema.conform(trials[~trials["trial_id"].isin(running_ids)], schema.TRIAL_COLUMNS),
        schema.conform(evals, schema.EVAL_COLUMNS),
    )


def _configs(arm_grid: Mapping[str, Arm], lrs, seeds, label_noise, study: str) -> pd.DataFrame:
    rows = []
    for (method, (kind, grid_values)), noise in itertools.product(arm_grid.items(), label_noise):
        settings = _settings(kind, grid_values)
        for index, setting in enumerate(settings):
            quality = {"_quality": _quality(index, len(settings))}
            rows += [config_row(study, method, kind, setting, lr, s, noise) | quality for lr in lrs for s in seeds]
    return pd.DataFrame(rows)


def _settings(kind: str, values: Sequence) -> list[dict[str, Any]]:
    """Settings as dicts; plain numbers are values of the arm's first hyperparameter."""
    first = arms.hyperparameters(kind)[0]
    return [arms.complete(kind, value if isinstance(value, dict) else {first: value}) for value in values]


def _quality(index: int, count: int) -> float:
    """0 at the middle setting of an arm's grid, negative towards its ends."""
    middle = (count - 1) / 2
    return -0.01 * ((index - middle) / max(middle, 1)) ** 2 * 4


def _statuses(config: pd.DataFrame, diverged, failed, running) -> np.ndarray:
    status = np.full(len(config), "ok", dtype=object)
    for name, specs in (("diverged", diverged), ("failed", failed), ("running", running)):
        for method, setting, lr, seed in specs:
            match = (config["method"] == method) & (config["setting"] == setting) & np.isclose(config["lr"], lr)
            if seed is not None:
                match &= config["seed"] == seed
            status[match.to_numpy()] = name
    return status


def _epoch_rows(config: pd.DataFrame, n_epochs: int, stop: dict, schedule: str, rng) -> pd.DataFrame:
    """All epoch rows at once: an (n_trials, n_epochs) grid, cut where each trial stopped."""
    n = len(config)
    e = np.arange(1, n_epochs + 1)[None, :].astype(float)
    kind = config["kind"].to_numpy()[:, None]
    flat = np.isin(kind, FLAT_KINDS)
    lr = config["lr"].to_numpy()[:, None]
    decay = config["lam"].fillna(config["lambda_awd"]).fillna(1e-3).to_numpy(float)[:, None]
    noise = config["label_noise"].to_numpy()[:, None]
    lr_penalty = np.where(flat, 0.03, 0.08) * np.log10(lr / 0.05) ** 2
    peak = np.where(flat, 0.50, 0.46) - lr_penalty + config["_quality"].to_numpy()[:, None] - 0.3 * noise
    peak = peak + rng.normal(0, 0.01, (n, 1))
    overfit = np.where(flat, 0.02, 0.08) / (1 + decay * 400)
    progress = e / n_epochs
    robust = peak * (1 - np.exp(-6 * progress)) - overfit * np.clip(progress - 0.5, 0, None)
    test_robust = np.clip(robust + rng.normal(0, 0.004, (n, n_epochs)), 0, 1)
    val_robust = np.clip(robust + rng.normal(0, 0.006, (n, n_epochs)), 0, 1)
    clean = np.clip(test_robust + 0.3 + rng.normal(0, 0.004, (n, n_epochs)), 0, 1)
    grad = (0.2 + 2 * np.exp(-4 * progress)) * (1 + 0.05 * rng.standard_normal((n, n_epochs)))
    weight = np.where(flat, 12, 30 / (1 + 200 * decay)) * (0.6 + 0.4 * progress) + rng.normal(0, 0.3, (n, 1))
    lr_factor = _schedule(progress, schedule)
    frame = {
        "epoch": np.broadcast_to(e, (n, n_epochs)).astype(int),
        "lr_now": lr * lr_factor,
        "train_loss": 2.2 * np.exp(-3 * progress) + 0.1,
        "train_clean_acc": np.clip(clean + 0.2 * progress, 0, 1),
        "train_robust_acc": np.clip(test_robust + 0.4 * progress, 0, 1),
        "val_clean_acc": np.clip(clean + rng.normal(0, 0.006, (n, n_epochs)), 0, 1),
        "val_robust_acc": val_robust,
        "test_clean_acc": clean,
        "test_robust_acc": test_robust,
        "weight_norm": weight,
        "grad_norm": grad,
        "prescale_norm": np.where(kind == "rescale", weight * 1.1, np.nan),
        "noisy_fit_acc": np.where(
            noise > 0, np.where(flat, 0.4, 0.9) * (1 - noise) / (1 + np.exp(-10 * (progress - 0.6))), np.nan
        ),
        "epoch_seconds": np.full((n, n_epochs), 0.8),
    } | _coefficients(kind, decay, grad, weight, lr_factor, progress, config)
    cells = pd.DataFrame({name: np.broadcast_to(values, (n, n_epochs)).ravel() for name, values in frame.items()})
    cells = pd.concat([config.loc[config.index.repeat(n_epochs)].reset_index(drop=True), cells], axis=1)
    cells = cells[cells["epoch"] <= cells["status"].map(stop)].reset_index(drop=True)
    _break_diverged(cells)
    return cells


def _coefficients(kind, decay, grad, weight, lr_factor, progress, config) -> dict[str, np.ndarray]:
    """lambda_mean/min/max: the arm's effective decay coefficient per step, per kind."""
    lam_bar = decay * grad / weight * 2.5
    start = config["start"].fillna(0).to_numpy()[:, None]
    stop = config["stop"].fillna(1).to_numpy()[:, None]
    windowed = np.where((progress > start) & (progress <= stop), decay, 0.0)
    mean = np.select(
        [kind == "fixed", kind == "adaptive", kind == "decoupled", kind == "windowed"],
        [np.broadcast_to(decay, lam_bar.shape), lam_bar, decay * lr_factor, windowed],
        0.0,
    )
    spread = np.where(kind == "adaptive", 1.5, 1.0)
    return {"lambda_mean": mean, "lambda_min": mean / spread, "lambda_max": mean * spread}


def _schedule(progress: np.ndarray, schedule: str) -> np.ndarray:
    if schedule == "piecewise":  # Rice et al.: ÷10 at 50% and at 75% of training
        return np.where(progress <= 0.5, 1.0, np.where(progress <= 0.75, 0.1, 0.01))
    return 0.5 * (1 + np.cos(np.pi * progress))


def _break_diverged(cells: pd.DataFrame) -> None:
    """The last row of a diverged trial: non-finite loss and chance accuracy, as a real one logs it."""
    last = cells["status"].eq("diverged") & ~cells["trial_id"].duplicated(keep="last")
    cells.loc[last, "train_loss"] = np.nan
    columns = ["train_clean_acc", "train_robust_acc", "val_clean_acc", "val_robust_acc"]
    cells.loc[last, [*columns, "test_clean_acc", "test_robust_acc"]] = np.nan


def _trial_rows(config: pd.DataFrame, rows: pd.DataFrame, epochs: int) -> pd.DataFrame:
    """What the orchestrator writes to trials.parquet: `trials.selection`'s summary per trial."""
    by_trial = {tid: group.to_dict("records") for tid, group in rows.groupby("trial_id", sort=False)}
    records = []
    for trial in config.to_dict("records"):
        trial_rows = by_trial.get(trial["trial_id"], [])
        summary = selection.summarize(trial_rows)
        records.append(
            trial
            | summary
            | {
                "epochs": epochs,
                "epochs_done": len(trial_rows),
                "score": selection.score(trial["status"], summary["best_val_robust_acc"]),
                "error": "RuntimeError: CUDA error: out of memory" if trial["status"] == "failed" else "",
                "label_noise_actual": trial["label_noise"],
                "train_seconds": 0.8 * len(trial_rows),
            }
        )
    return pd.DataFrame(records)


def _evaluation_rows(trials: pd.DataFrame, pruning: bool, autoattack: bool, rng) -> pd.DataFrame:
    """Best and last checkpoints of the `ok` trials (per sparsity with pruning); accuracy falls as weights go."""
    ok = trials[trials["status"] == "ok"]
    parts = []
    for checkpoint, sparsity in itertools.product(("best", "last"), SPARSITIES if pruning else (0.0,)):
        flat = np.isin(ok["kind"], FLAT_KINDS)
        robust = ok[f"{checkpoint}_test_robust_acc"] * (1 - sparsity**3 * np.where(flat, 0.5, 1))
        robust = np.clip(robust + rng.normal(0, 0.003, len(ok)), 0, 1)
        part = ok[list(schema.CONFIG_COLUMNS)].assign(
            checkpoint=checkpoint,
            epoch=ok["best_epoch"] if checkpoint == "best" else ok["epochs_done"],
            sparsity=sparsity,
            examples=EXAMPLES,
            clean_acc=np.clip(robust + 0.3, 0, 1),
            fgsm_acc=np.clip(robust + 0.05, 0, 1),
            pgd_acc=robust,
            autoattack_acc=np.clip(robust - 0.03 + rng.normal(0, 0.002, len(ok)), 0, 1) if autoattack else np.nan,
        )
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def manifest(
    results: Results,
    *,
    trials_planned: int | None = None,
    finished: bool = True,
    schedule: str = "cosine",
    arms_grid: Mapping[str, Arm] | None = None,
    **study: Any,
) -> dict:
    """A manifest.json for `results`, shaped like the orchestrator's; `study` overrides resolved_study keys."""
    trials = results.trials
    methods = {}
    for method, (kind, values) in (arms_grid or _arms_of(trials)).items():
        settings = _settings(kind, values)
        names = arms.hyperparameters(kind)
        section = {arms.grid_class(kind).study_key(n): sorted({s[n] for s in settings}) for n in names}
        methods[method] = {"kind": kind, **section}
    name = str(trials["study"].iloc[0]) if len(trials) else "synthetic"
    epochs = int(trials["epochs"].max()) if len(trials) else 0
    resolved = {
        "name": name,
        "description": "",
        "data": {
            "dataset": "synthetic",
            "val_label_noise": "same",
            "label_noise": sorted(trials["label_noise"].unique().tolist()),
        },
        "train": {"epochs": epochs, "schedule": schedule},
        "attack": {
            "train": {"kind": "pgd", "eps": 0.25, "steps": 5, "step_size": 0.1},
            "eval": {"kind": "pgd", "steps": 10},
        },
        "eval": {"final_examples": EXAMPLES},
        "methods": methods,
        "lr": sorted(trials["lr"].unique().tolist()),
        "seeds": sorted(int(s) for s in trials["seed"].unique()),
        "analysis": {"reference": None},
    } | study
    return {
        "study": name,
        "resolved_study": resolved,
        "trials_planned": len(trials) if trials_planned is None else trials_planned,
        "git_commit": None,
        "versions": {"pandas": pd.__version__},
        "hardware": {"device": "synthetic"},
        "started": "2025-01-01T00:00:00",
        "finished": "2025-01-01T01:00:00" if finished else None,
    }


def _arms_of(trials: pd.DataFrame) -> dict[str, Arm]:
    """Each arm's settings as seen in the rows, in order of first appearance."""
    out = {}
    for method, rows in trials.groupby("method", sort=False):
        kind = str(rows["kind"].iloc[0])
        names = arms.hyperparameters(kind)
        settings = rows[names].drop_duplicates().to_dict("records")
        out[str(method)] = (kind, settings)
    return out


def write_run_dir(
    path: str | Path,
    *,
    trials_planned: int | None = None,
    finished: bool = True,
    study_fields: dict | None = None,
    **kwargs: Any,
) -> Path:
    """Write epochs/trials/evaluations.parquet and manifest.json from `make_results(**kwargs)`."""
    path = Path(path)
    results = make_results(**kwargs)
    data = manifest(
        results,
        trials_planned=trials_planned,
        finished=finished,
        schedule=kwargs.get("schedule", "cosine"),
        arms_grid=kwargs.get("arms", DEFAULT_ARMS),
        **(study_fields or {}),
    )
    write_results(path, results, data)
    return path


def write_results(path: str | Path, results: Results, manifest_data: dict | None) -> None:
    """Write given frames (e.g. hand-built ones) as a run directory; no manifest when None."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    results.epochs.to_parquet(path / "epochs.parquet", index=False)
    results.trials.to_parquet(path / "trials.parquet", index=False)
    if results.evaluations is not None:
        results.evaluations.to_parquet(path / "evaluations.parquet", index=False)
    if manifest_data is not None:
        (path / "manifest.json").write_text(json.dumps(manifest_data, indent=2))
