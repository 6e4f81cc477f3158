"""One row per trial: its configuration, status, selection summary and final evaluation.

The selection summary (best epoch, `score`, per-epoch test accuracies at the best and last
epochs) is the one `trials.selection` produced for trials.parquet; a trial that has epoch rows
but no trials.parquet row yet (still running) is summarised with the same functions here.

The final evaluation (`evaluations.parquet`, unpruned, checkpoints "best" and "last") gives the
numbers the tables and tests compare: `value` is the headline metric at the best checkpoint
(PGD accuracy, or clean accuracy for a study whose evaluation attack is none), and `correct` its
packed per-example correctness where the evaluation stored it. Every trial keeps its `stage`
("tune", or "confirm" for a confirmation trial; a run made before stages is all "tune").

Diverged trials are counted the same way everywhere: every accuracy of a diverged trial is 0.0
(whoever picked its setting got nothing from it). Failed, stopped and running trials have no
accuracies (NaN): they are absent from means and tests, and flagged where they would be.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import Run
from trials import schema, selection

EVAL_METRICS = ("clean_acc", "fgsm_acc", "pgd_acc", "autoattack_acc")
# The packed per-example correctness stored beside each accuracy (trials/schema.py), where there is one.
CORRECTNESS = {"clean_acc": "correct_clean", "pgd_acc": "correct_pgd", "autoattack_acc": "correct_autoattack"}
CHECKPOINTS = ("best", "last", "ema")  # ema: the averaged weights' best epoch (train.ema), NaN without it
FINAL_COLUMNS = [f"{c}_{m}" for c in CHECKPOINTS for m in EVAL_METRICS]
PER_EPOCH_ACCURACIES = [
    "best_val_robust_acc",
    "best_test_clean_acc",
    "best_test_robust_acc",
    "last_test_clean_acc",
    "last_test_robust_acc",
    "gap_robust",
]
ACCURACIES = [*PER_EPOCH_ACCURACIES, *FINAL_COLUMNS, "value", "value_last", "value_clean", "final_gap"]


def headline_metric(run: Run) -> str:
    """`pgd_acc`, or `clean_acc` for natural-training studies (evaluation attack none, or no PGD row)."""
    if run.study_field("attack", "eval", "kind") == "none":
        return "clean_acc"
    evals = run.evaluations
    if evals is not None and len(evals) and evals["pgd_acc"].isna().all() and evals["clean_acc"].notna().any():
        return "clean_acc"
    return "pgd_acc"


def trial_outcomes(run: Run, metric: str) -> pd.DataFrame:
    """Every trial with its summary, final evaluation, `value`, `counted` and `setting_rank`."""
    base = _with_running(run.trials, run.epochs)
    last = _last_epoch(run.epochs)
    out = base.merge(last, on="trial_id", how="left").merge(
        final_evaluations(run.evaluations), on="trial_id", how="left"
    )
    for checkpoint in CHECKPOINTS:  # trials.parquet keeps AutoAttack too, for runs evaluated before the split
        column = f"{checkpoint}_autoattack_acc"
        out[column] = out[column].fillna(out[f"autoattack_{checkpoint}"])
    out["value"] = out[f"best_{metric}"]
    out["correct"] = out[f"best_{CORRECTNESS[metric]}"]  # <NA> where not stored
    out["value_last"] = out[f"last_{metric}"]
    out["value_clean"] = out["best_clean_acc"]
    out["final_gap"] = out[f"best_{metric}"] - out[f"last_{metric}"]
    out = _count_statuses(out)
    out["setting_rank"] = setting_ranks(out)
    keys = ["label_noise", "method", "setting_rank", "lr", "seed", "trial_id"]
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def _with_running(trials: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """trials.parquet, plus the trials seen only in epochs.parquet (running), summarised alike."""
    extra = epochs[~epochs["trial_id"].isin(trials["trial_id"])]
    if extra.empty:
        return trials.drop_duplicates("trial_id", keep="last")
    rows = []
    for _, group in extra.sort_values(["trial_id", "epoch"]).groupby("trial_id", sort=True):
        records = group.to_dict("records")
        summary = selection.summarize(records)
        status = str(records[-1]["status"])
        rows.append(
            {k: records[0][k] for k in schema.CONFIG_COLUMNS}
            | summary
            | {"status": status, "error": "", "epochs_done": len(records), "epochs": int(group["epoch"].max())}
            | {"score": selection.score(status, summary["best_val_robust_acc"])}
            | {"train_seconds": float(group["epoch_seconds"].sum())}
        )
    running = schema.conform(pd.DataFrame(rows), schema.TRIAL_COLUMNS)
    return pd.concat([trials, running], ignore_index=True).drop_duplicates("trial_id", keep="first")


def _last_epoch(epochs: pd.DataFrame) -> pd.DataFrame:
    """Each trial's last logged epoch and its memorisation of flipped labels."""
    last = epochs.sort_values(["trial_id", "epoch"], kind="stable").drop_duplicates("trial_id", keep="last")
    return last[["trial_id", "epoch", "noisy_fit_acc"]].rename(
        columns={"epoch": "last_epoch", "noisy_fit_acc": "last_noisy_fit_acc"}
    )


def final_evaluations(evaluations: pd.DataFrame | None) -> pd.DataFrame:
    """One row per trial: `<checkpoint>_<metric>` of the unpruned final evaluation, its `examples`, and the
    best checkpoint's packed correctness `best_correct_<clean|pgd|autoattack>` (<NA> where not stored)."""
    correct = [f"best_{c}" for c in CORRECTNESS.values()]
    columns = ["trial_id", *FINAL_COLUMNS, "examples", *correct]
    if evaluations is None or evaluations.empty:
        text = ["trial_id", *correct]
        return pd.DataFrame({c: pd.Series(dtype="string" if c in text else "float64") for c in columns})
    rows = evaluations[(evaluations["sparsity"] == 0) & evaluations["checkpoint"].isin(CHECKPOINTS)]
    rows = rows.drop_duplicates(["trial_id", "checkpoint"], keep="last")  # a re-evaluation replaces
    wide = rows.pivot(index="trial_id", columns="checkpoint", values=[*EVAL_METRICS, "examples"])
    out = pd.DataFrame(index=wide.index)
    for checkpoint in CHECKPOINTS:
        for metric in EVAL_METRICS:
            key = (metric, checkpoint)
            out[f"{checkpoint}_{metric}"] = wide[key].astype("float64") if key in wide else np.nan
    out["examples"] = wide[("examples", "best")].astype("float64") if ("examples", "best") in wide else np.nan
    best = rows[rows["checkpoint"] == "best"].set_index("trial_id")
    for column in CORRECTNESS.values():
        out[f"best_{column}"] = best[column].reindex(out.index).astype("string")
    return out.reset_index()[columns]


def _count_statuses(out: pd.DataFrame) -> pd.DataFrame:
    """Diverged trials score 0 on every accuracy; failed, stopped and running ones are absent."""
    diverged = out["status"].eq("diverged").to_numpy()
    finished_ok = out["status"].eq("ok").to_numpy()
    for column in ACCURACIES:
        values = out[column].to_numpy(float)
        out[column] = np.where(diverged, 0.0, np.where(finished_ok, values, np.nan))
    # Not accuracies: a diverged trial has no checkpoint, so no best epoch or final weight norm to average.
    out["best_epoch"] = out["best_epoch"].astype("float64").where(finished_ok)
    out["weight_norm_last"] = out["weight_norm_last"].where(finished_ok)
    out["examples"] = out["examples"].where(finished_ok)
    out["correct"] = out["correct"].where(finished_ok)  # a diverged trial's is all wrong, see analysis.testset
    # A trial takes part in the comparisons when it has a number: diverged (0) or evaluated.
    out["counted"] = diverged | (finished_ok & out["value"].notna().to_numpy())
    out["no_eval"] = finished_ok & out["value"].isna().to_numpy()
    return out


def setting_ranks(frame: pd.DataFrame) -> pd.Series:
    """Each row's setting's position within its arm, ordered by the hyperparameter values."""
    hyper = list(schema.HYPERPARAMETER_COLUMNS)
    settings = frame[["method", "setting", *hyper]].drop_duplicates(["method", "setting"])
    settings = settings.sort_values(["method", *hyper, "setting"], na_position="last", kind="stable")
    settings["setting_rank"] = settings.groupby("method", sort=False).cumcount()
    ranks = settings.set_index(["method", "setting"])["setting_rank"]
    index = pd.MultiIndex.from_frame(frame[["method", "setting"]])
    return pd.Series(ranks.reindex(index).to_numpy(), index=frame.index, dtype="int64")
