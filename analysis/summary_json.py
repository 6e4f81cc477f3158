"""summary.json: the report's findings for scripts, in strict JSON (NaN and infinities are null).

    {
      "study", "description", "metric", "checkpoint": "best", "val_label_noise", "status", "smoke_test",
      "smoke_reasons", "search": "grid" | "optuna",
      "analysis": {alpha, min_effect, adjust, vary_split},
      "reference_results": [{source, arm, metric, checkpoint, level, published, ours, n, difference,
                             ci_low, ci_high, ci_level, stage}],       # the study's published numbers
      "levels": {"<noise rate>": {
         "reference": arm | null,
         "tuning_seeds": [seed, ...],
         "selection_left_out": [{arm, setting, lr, reason}],       # non-empty: the selection is partial
         "selected": {arm: {kind, setting, lr, hyperparameters, score, seeds, diverged, left_out,
                            best: {metric: {mean, ci_low, ci_high, n}}, last: {...}, examples}},
         "headline": {arm: TEST + {arm_setting, arm_lr, reference_setting, reference_lr, choices,
                                   two_level_ci_low, two_level_ci_high, two_level_ci_level, two_level_note}},
         "lr_robustness": {arm: TEST + {lrs}},
         "secondary": {"spread" | "lr_auc" | "worst_lr": {arm: TEST}},
         "weight_norm_ratio": {arm: {stage, n, geometric_mean, ci_low, ci_high, ci_level}},
         "lr_sensitivity": {arm: {spread_best, area_best, spread_envelope, area_envelope (+ _low, _high)}},
         "tuning_budget": {arm: [{n, expected_best, low, high, spread_low, spread_high, diff, diff_low,
                                  diff_high, compute_hours}]},
         "optuna_best_so_far": {arm: [{order, setting, lr, score, stopped, best_so_far}]},
         "importance": {arm: {"ped_anova": {param: value}, "fanova": {...}, "note": str | null}},
         "pareto": {arm: [{setting, lr, clean, robust, seeds}]}
      }}
    }

TEST, one paired comparison with the reference (`analysis.verdicts`; differences are arm − reference,
as fractions):

    reference, stage ("confirm" | "cross-fit"), varied ("seeds only" | "seeds and data splits"),
    n (paired seeds), seeds (their ids), tuning_seeds (the seeds selection ran on), n_missing, left_out,
    mean_diff, hodges_lehmann, ci_low, ci_high, ci_level (the attainable level of the inverted
    sign-flip interval; null below the seeds any interval needs), p_value, p_method, p_adjusted,
    adjustment ("maxT" | "holm" | "none"), family_size, wins, ties, losses, min_attainable_p,
    seeds_floor, sd_upper, min_effect, power_at_min_effect, seeds_needed (at min_effect, power 0.8),
    equivalence_low, equivalence_high, verdict ("better" | "worse" | "equivalent" | "inconclusive" |
    "too few seeds" | "smoke test"; "higher"/"lower" in place of better/worse for the secondary tests).

`choices` (cross-fitted headline): per held-out seed, the configuration each arm had on the other seeds.
The noise rate key is spelled like the study file's value ("0", "0.2"); accuracies are fractions.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from analysis import published
from analysis.outcomes import EVAL_METRICS
from analysis.pipeline import Analysis, at_level
from analysis.select import LEVEL, hyperparameters_of
from analysis.tables import missing
from trials.arms.base import format_value

TEST_FIELDS = ["stage", "varied", "n", "seeds", "tuning_seeds", "n_missing", "mean_diff", "hodges_lehmann"]
TEST_FIELDS += ["ci_low", "ci_high", "ci_level", "p_value", "p_method", "p_adjusted", "adjustment", "family_size"]
TEST_FIELDS += ["wins", "ties", "losses", "min_attainable_p", "seeds_floor", "sd_upper", "power_at_min_effect"]
TEST_FIELDS += ["seeds_needed", "equivalence_low", "equivalence_high", "verdict"]
TWO_LEVEL = {"two_level_low": "two_level_ci_low", "two_level_high": "two_level_ci_high"}
TWO_LEVEL |= {"two_level_level": "two_level_ci_level", "two_level_note": "two_level_note"}


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
        "search": a.search,
        "analysis": {
            "alpha": a.settings.alpha,
            "min_effect": a.settings.min_effect,
            "adjust": a.settings.adjust,
            "vary_split": a.settings.vary_split,
        },
        "levels": {level_key(level): _level(a, level) for level in a.levels},
        "reference_results": _published(a),
    }


def _published(a: Analysis) -> list[dict[str, Any]]:
    declared = a.run.study_field("reference_results", default=[]) or []
    if not declared:
        return []
    table = published.compare(declared, a.values, a.outcomes, a.best, a.settings.alpha)
    return [{k: r[k] for k in published.COLUMNS} for _, r in table.iterrows()]


def _level(a: Analysis, level: float) -> dict[str, Any]:
    importance = at_level(a.importances, level)
    return {
        "reference": a.references.get(level),
        "tuning_seeds": a.tuning_seeds.get(level, []),
        "selection_left_out": [
            {"arm": r["method"], "setting": r["setting"], "lr": r["lr"], "reason": r["left_out"]}
            for _, r in at_level(a.left_out, level).iterrows()
        ],
        "selected": {r["method"]: _selected(r) for _, r in at_level(a.best, level).iterrows()},
        "headline": _headline(a, level),
        "lr_robustness": _lr_tests(a, level),
        "secondary": {
            test: {r["method"]: _test(a, r) for _, r in rows.iterrows()}
            for test, rows in at_level(a.secondary, level).groupby("test", sort=False)
        },
        "weight_norm_ratio": {
            r["method"]: {
                "stage": r["stage"],
                "n": r["n"],
                "geometric_mean": r["ratio"],
                "ci_low": r["ratio_low"],
                "ci_high": r["ratio_high"],
                "ci_level": r["ratio_level"],
            }
            for _, r in at_level(a.norm_ratios, level).iterrows()
        },
        "lr_sensitivity": {r["method"]: _sensitivity(r) for _, r in at_level(a.sensitivity, level).iterrows()},
        "tuning_budget": {
            arm: [{k: r[k] for k in BUDGET_FIELDS} for _, r in rows.iterrows()]
            for arm, rows in at_level(a.budget, level).groupby("method", sort=False)
        },
        "optuna_best_so_far": {
            arm: [{k: r[k] for k in ANYTIME_FIELDS} for _, r in rows.iterrows()]
            for arm, rows in at_level(a.anytime, level).groupby("method", sort=False)
        },
        "importance": {
            key[1]: _importance(importance[importance["method"] == key[1]], a.importance_notes.get(key))
            for key in at_level(a.tune, level).groupby(["label_noise", "method", "kind"]).groups
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


BUDGET_FIELDS = ["n", "expected_best", "low", "high", "spread_low", "spread_high", "diff", "diff_low", "diff_high"]
BUDGET_FIELDS += ["compute_hours"]
ANYTIME_FIELDS = ["order", "setting", "lr", "score", "stopped", "best_so_far"]


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


def _test(a: Analysis, row: pd.Series) -> dict[str, Any]:
    """The fields of one comparison (TEST in the docstring)."""
    entry = {"reference": row["reference"], **{k: row[k] for k in TEST_FIELDS if k in row}}
    entry["seeds_needed"] = None if missing(row["seeds_needed"]) else int(row["seeds_needed"])
    entry["min_effect"] = a.settings.min_effect
    entry["left_out"] = row["missing"] or None
    return entry


def _headline(a: Analysis, level: float) -> dict[str, Any]:
    best = at_level(a.best, level).set_index("method")
    out = {}
    for _, r in at_level(a.headline, level).iterrows():
        entry = _test(a, r) | {name: r[column] for column, name in TWO_LEVEL.items()}
        entry["two_level_note"] = r["two_level_note"] or None
        for side, arm in (("arm", r["method"]), ("reference", r["reference"])):
            entry[f"{side}_setting"] = best.loc[arm, "setting"] if arm in best.index else None
            entry[f"{side}_lr"] = best.loc[arm, "lr"] if arm in best.index else None
        entry["choices"] = _choices(a, r)
        out[r["method"]] = entry
    return out


def _choices(a: Analysis, row: pd.Series) -> list[dict[str, Any]]:
    """Per seed of the comparison, the configuration of each side (it may vary when cross-fitted)."""
    values = a.values
    values = values[(values[LEVEL] == row[LEVEL]) & (values["test"] == "headline") & (values["stage"] == row["stage"])]
    sides = {side: values[values["method"] == arm].set_index("seed") for side, arm in
             (("arm", row["method"]), ("reference", row["reference"]))}
    out = []
    for seed in sorted(set(sides["arm"].index) | set(sides["reference"].index)):
        entry: dict[str, Any] = {"seed": int(seed)}
        for side, frame in sides.items():
            entry[f"{side}_setting"] = frame.loc[seed, "setting"] if seed in frame.index else None
            entry[f"{side}_lr"] = frame.loc[seed, "lr"] if seed in frame.index else None
        out.append(entry)
    return out


def _lr_tests(a: Analysis, level: float) -> dict[str, Any]:
    lrs = sorted(at_level(a.tune, level)["lr"].unique().tolist())
    return {r["method"]: _test(a, r) | {"lrs": lrs} for _, r in at_level(a.lr_robustness, level).iterrows()}


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
