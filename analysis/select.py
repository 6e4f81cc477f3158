"""Checkpoint and hyperparameter selection — always on validation, never on test.

Rules (the report repeats them):

* A trial's **selected epoch** is the argmax of `val_robust_acc` over its epochs; the first
  epoch wins among ties and epochs whose validation accuracy is NaN are skipped.
* A **setting** is (arm, its hyperparameter λ or λ_awd, lr) within one label-noise level.
  Its **score** is the mean over seeds of the trials' best `val_robust_acc`, where a diverged
  seed counts as 0.0 (whoever picked that setting got nothing from it) and failed or still
  running seeds are left out.
* Only settings with at least one `ok` trial are eligible; the **best-tuned** setting of an arm
  (overall, or per lr) is the eligible one with the highest score, ties going to the smaller
  hyperparameter, then the smaller lr. Diverged trials never supply a checkpoint.
* The **reference** fixed arm of a level is the fixed arm whose best-tuned setting scores highest.

Test metrics are attached only after the selection: `selected_epochs` reads no test column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import schema

LEVEL = "label_noise"
ARM_KEYS = [LEVEL, "method", "kind"]
SETTING_KEYS = [*ARM_KEYS, "hp", "lr"]

# Per-trial metrics summarised over the seeds of a setting (mean and std over `ok` trials).
TRIAL_METRICS = [
    "best_val_robust_acc",
    "best_epoch",
    "best_test_clean_acc",
    "best_test_robust_acc",
    "last_test_clean_acc",
    "last_test_robust_acc",
    "gap_robust",
    "autoattack_best",
    "autoattack_last",
    "weight_norm_last",
    "last_noisy_fit_acc",
]


def with_hp(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with `hp`: the arm's own hyperparameter (λ for fixed arms, λ_awd for adaptive)."""
    hp = frame["lam"].where(frame["kind"] == "fixed", frame["lambda_awd"])
    return frame.assign(hp=hp.astype("float64"))


def selected_epochs(epochs: pd.DataFrame) -> pd.DataFrame:
    """Each trial's best epoch by `val_robust_acc` (first of ties, NaN skipped).

    Reads only `trial_id`, `epoch` and `val_robust_acc`. A trial without any evaluated epoch
    has no row. Columns: trial_id, best_epoch, best_val_robust_acc.
    """
    val = epochs.loc[epochs["val_robust_acc"].notna(), ["trial_id", "epoch", "val_robust_acc"]]
    val = val.sort_values(["trial_id", "epoch"], kind="stable")
    best = val.loc[val.groupby("trial_id", sort=False)["val_robust_acc"].idxmax()]
    renamed = best.rename(columns={"epoch": "best_epoch", "val_robust_acc": "best_val_robust_acc"})
    return renamed.reset_index(drop=True)


def trial_outcomes(epochs: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: its configuration, status, selected and last epochs' metrics.

    Adds `score` (best val robust accuracy; 0.0 if diverged; NaN if failed or running) and
    `sens_robust` / `sens_clean` (test accuracy at the selected epoch, 0.0 if diverged), the
    values that selection and the LR-sensitivity curves average.
    """
    base = _trial_base(epochs, trials)
    best = selected_epochs(epochs)
    at_best = epochs[["trial_id", "epoch", "test_clean_acc", "test_robust_acc"]].rename(
        columns={"epoch": "best_epoch", "test_clean_acc": "best_test_clean_acc"}
        | {"test_robust_acc": "best_test_robust_acc"}
    )
    best = best.merge(at_best, on=["trial_id", "best_epoch"], how="left")
    last_cols = ["trial_id", "epoch", "test_clean_acc", "test_robust_acc", "weight_norm", "noisy_fit_acc"]
    last = epochs.sort_values(["trial_id", "epoch"], kind="stable").drop_duplicates("trial_id", keep="last")
    last = last[last_cols].rename(
        columns={"epoch": "last_epoch", "test_clean_acc": "last_test_clean_acc"}
        | {"test_robust_acc": "last_test_robust_acc", "noisy_fit_acc": "last_noisy_fit_acc"}
    )
    out = base.merge(best, on="trial_id", how="left").merge(last, on="trial_id", how="left")
    out["weight_norm_last"] = out["weight_norm_last"].fillna(out.pop("weight_norm"))
    out["gap_robust"] = out["best_test_robust_acc"] - out["last_test_robust_acc"]
    ok, diverged = out["status"].eq("ok").to_numpy(), out["status"].eq("diverged").to_numpy()
    out["score"] = np.select([ok, diverged], [out["best_val_robust_acc"], 0.0], np.nan)
    out["sens_robust"] = np.select([ok, diverged], [out["best_test_robust_acc"], 0.0], np.nan)
    out["sens_clean"] = np.select([ok, diverged], [out["best_test_clean_acc"], 0.0], np.nan)
    return out.sort_values([*SETTING_KEYS, "seed", "trial_id"], kind="stable").reset_index(drop=True)


def _trial_base(epochs: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Configuration and status per trial: trials.parquet, plus trials seen only in epochs.

    A trial still running may have epoch rows before it has a row in trials.parquet.
    """
    keep = [*schema.CONFIG_COLUMNS, "status", "error", "epochs_done"]
    keep += ["autoattack_best", "autoattack_last", "weight_norm_last"]
    known = trials[keep]
    extra = epochs.loc[~epochs["trial_id"].isin(known["trial_id"])]
    extra = extra.sort_values(["trial_id", "epoch"], kind="stable").drop_duplicates("trial_id", keep="last")
    extra = extra[[*schema.CONFIG_COLUMNS, "status", "epoch"]].rename(columns={"epoch": "epochs_done"})
    base = pd.concat([known, extra], ignore_index=True) if len(extra) else known
    return with_hp(base.drop_duplicates("trial_id", keep="first"))


def setting_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """One row per setting: seed counts by status, score, and mean/std of each trial metric.

    Metric means and stds are over the setting's `ok` trials; `score`, `sens_robust` and
    `sens_clean` are over its ok and diverged trials (diverged = 0.0). `eligible` marks the
    settings selection may choose.
    """
    groups = outcomes.groupby(SETTING_KEYS, sort=True)
    counts = pd.crosstab([outcomes[k] for k in SETTING_KEYS], outcomes["status"].astype("object")).reindex(
        columns=list(schema.STATUSES), fill_value=0
    )
    counts.columns = [f"n_{status}" for status in counts.columns]
    ok = outcomes[outcomes["status"] == "ok"]
    stats = ok.groupby(SETTING_KEYS)[TRIAL_METRICS].agg(["mean", "std"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    table = groups[["score", "sens_robust", "sens_clean"]].mean().join(counts).join(stats)
    table = table.reset_index()
    table["eligible"] = (table["n_ok"] > 0) & table["score"].notna()
    table["label"] = [schema.setting_label(k, h, h) for k, h in zip(table["kind"], table["hp"], strict=True)]
    return table


def best_tuned(settings: pd.DataFrame, per_lr: bool = False) -> pd.DataFrame:
    """Each arm's best-tuned setting per level (and per lr when `per_lr`): rows of `settings`."""
    by = [*ARM_KEYS, "lr"] if per_lr else ARM_KEYS
    order = [*by, "score", "hp", "lr"] if not per_lr else [*by, "score", "hp"]
    ascending = [True] * len(by) + [False] + [True] * (len(order) - len(by) - 1)
    candidates = settings[settings["eligible"]].sort_values(order, ascending=ascending, kind="stable")
    return candidates.drop_duplicates(by, keep="first").reset_index(drop=True)


def reference_arms(best: pd.DataFrame) -> pd.Series:
    """Per level, the fixed arm whose best-tuned setting has the highest score (name on ties)."""
    fixed = best[best["kind"] == "fixed"].sort_values([LEVEL, "score", "method"], ascending=[True, False, True])
    return fixed.drop_duplicates(LEVEL).set_index(LEVEL)["method"]


def arm_order(frame: pd.DataFrame) -> list[str]:
    """Arms in display order: fixed arms first, then adaptive ones, each alphabetically."""
    arms = frame[["method", "kind"]].drop_duplicates()
    arms = arms.assign(rank=arms["kind"].map({"fixed": 0, "adaptive": 1})).sort_values(["rank", "method"])
    return arms["method"].astype(str).tolist()
