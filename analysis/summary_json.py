"""summary.json: the report's findings for scripts, in strict JSON (NaN and infinities are null).

    {
      "study", "description", "metric", "checkpoint": "best", "val_label_noise", "status", "smoke_test",
      "smoke_reasons",
      "levels": {"<noise rate>": {
         "reference": arm | null,
         "selected": {arm: {kind, setting, lr, hyperparameters, score, seeds, diverged, left_out,
                            best: {metric: {mean, ci_low, ci_high, n}}, last: {...}, examples}},
         "headline": {arm: {reference, n, mean_diff, ci_low, ci_high, ci_method, p_value, wins, ties, losses,
                            min_attainable_p, seeds_needed, detectable_effect, sd_diff, verdict, left_out,
                            arm_setting, arm_lr, reference_setting, reference_lr}},
         "lr_robustness": {arm: {same test fields, lrs}},
         "lr_sensitivity": {arm: {spread_best, area_best, spread_envelope, area_envelope (+ _low, _high)}},
         "tuning_budget": {arm: [{n, expected_best, low, high, compute_hours}]},
         "importance": {arm: {"ped_anova": {param: value}, "fanova": {...}, "note": str | null}},
         "pareto": {arm: [{setting, lr, clean, robust, seeds}]}
      }}
    }

The noise rate key is spelled like the study file's value ("0", "0.2"); accuracies are fractions.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from analysis import wording
from analysis.outcomes import EVAL_METRICS
from analysis.pipeline import Analysis, at_level
from analysis.select import hyperparameters_of
from analysis.tables import missing
from trials.arms.base import format_value

TEST_FIELDS = ["n", "mean_diff", "sd_diff", "ci_low", "ci_high", "ci_method", "p_value", "wins", "ties", "losses"]
TEST_FIELDS += ["min_attainable_p", "seeds_needed", "detectable_effect"]


def level_key(level: float) -> str:
    return format_value(float(level))


def build(a: Analysis) -> dict[str, Any]:
    return {
        "study": a.run.study,
        "description": a.run.study_field("description", default=""),
        "metric": a.metric,
        "checkpoint": "best",
        "val_label_noise": a.run.study_field("data", "val_label_noise"),
        "status": {"line": a.progress.line(), "partial": a.progress.partial, "counts": a.progress.counts},
        "smoke_test": a.smoke_test,
        "smoke_reasons": a.smoke_reasons,
        "levels": {level_key(level): _level(a, level) for level in a.levels},
    }


def _level(a: Analysis, level: float) -> dict[str, Any]:
    importance = at_level(a.importances, level)
    return {
        "reference": a.references.get(level),
        "selected": {r["method"]: _selected(r) for _, r in at_level(a.best, level).iterrows()},
        "headline": _tests(a, at_level(a.headline, level), level),
        "lr_robustness": _tests(a, at_level(a.lr_robustness, level), level, with_lrs=True),
        "lr_sensitivity": {r["method"]: _sensitivity(r) for _, r in at_level(a.sensitivity, level).iterrows()},
        "tuning_budget": {
            arm: [{k: r[k] for k in ("n", "expected_best", "low", "high", "compute_hours")} for _, r in rows.iterrows()]
            for arm, rows in at_level(a.budget, level).groupby("method", sort=False)
        },
        "importance": {
            key[1]: _importance(importance[importance["method"] == key[1]], a.importance_notes.get(key))
            for key in at_level(a.outcomes, level).groupby(["label_noise", "method", "kind"]).groups
        },
        "pareto": {
            arm: [
                {
                    "setting": r["setting"],
                    "lr": r["lr"],
                    "clean": r["clean"],
                    "robust": r["robust"],
                    "seeds": r["n_seeds"],
                }
                for _, r in rows[rows["on_front"]].iterrows()
            ]
            for arm, rows in at_level(a.pareto, level).groupby("method", sort=False)
        },
    }


def _selected(row: pd.Series) -> dict[str, Any]:
    def numbers(checkpoint: str) -> dict[str, Any]:
        out = {}
        for metric in EVAL_METRICS:
            column = f"{checkpoint}_{metric}"
            mean, half = row[f"{column}_mean"], row[f"{column}_ci"]
            out[metric] = {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": row[f"{column}_n"]}
        return out

    return {
        "kind": row["kind"],
        "setting": row["setting"],
        "lr": row["lr"],
        "hyperparameters": {name: row[name] for name in hyperparameters_of(row["kind"])},
        "score": row["score"],
        "seeds": row["n_counted"],
        "diverged": row["n_diverged"],
        "left_out": {s: row[f"n_{s}"] for s in ("failed", "running", "stopped", "no_eval") if row[f"n_{s}"]},
        "best": numbers("best"),
        "last": numbers("last"),
        "examples": row["examples_mean"],
    }


def _tests(a: Analysis, rows: pd.DataFrame, level: float, with_lrs: bool = False) -> dict[str, Any]:
    best = at_level(a.best, level).set_index("method")
    lrs = sorted(at_level(a.outcomes, level)["lr"].unique().tolist())
    out = {}
    for _, r in rows.iterrows():
        entry = {"reference": r["reference"], **{k: r[k] for k in TEST_FIELDS}}
        entry["seeds_needed"] = None if missing(r["seeds_needed"]) else int(r["seeds_needed"])
        entry["verdict"] = wording.short_verdict(r, a.smoke_test)
        entry["left_out"] = r["missing"] or None
        if with_lrs:
            entry["lrs"] = lrs
        else:
            for side, arm in (("arm", r["method"]), ("reference", r["reference"])):
                entry[f"{side}_setting"] = best.loc[arm, "setting"] if arm in best.index else None
                entry[f"{side}_lr"] = best.loc[arm, "lr"] if arm in best.index else None
        out[r["method"]] = entry
    return out


def _sensitivity(row: pd.Series) -> dict[str, Any]:
    names = [f"{m}_{c}" for m in ("spread", "area") for c in ("best", "envelope")]
    return {"setting": row["setting"]} | {f"{n}{s}": row[f"{n}{s}"] for n in names for s in ("", "_low", "_high")}


def _importance(rows: pd.DataFrame, note: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {name: {} for name in ("ped_anova", "fanova")}
    for _, r in rows.iterrows():
        out[r["evaluator"]][r["param"]] = r["importance"]
    return out | {"note": note}


def plain(value: Any) -> Any:
    """`value` as plain JSON data: numpy scalars unwrapped, NaN / inf / <NA> as None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    if missing(value):
        return None
    return value


def dumps(a: Analysis) -> str:
    return json.dumps(plain(build(a)), indent=1, ensure_ascii=False, allow_nan=False) + "\n"
