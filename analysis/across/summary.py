"""compare.json: the whole comparison as strict JSON (NaN and missing numbers as null); schema in `analysis.across`."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from analysis.across.compute import Comparison
from analysis.across.strata import threat_text
from analysis.summary_json import plain

SCHEMA = "decaylab.compare/1"
ADJUSTMENT = "bonferroni"


def build(c: Comparison, files: list[str] | None = None) -> dict[str, Any]:
    readings = {(s.metric, s.checkpoint) for s in c.studies}
    metric, checkpoint = next(iter(readings)) if len(readings) == 1 else ("mixed", "mixed")
    return {
        "schema": SCHEMA,
        "written_by": "decaylab compare",
        "reference": c.reference,
        "metric": metric,
        "checkpoint": checkpoint,
        "alpha": c.alpha,
        "min_effect": c.min_effect,
        "meaningful": c.meaningful,
        "adjustment": {
            "method": ADJUSTMENT,
            "family_size": c.family_size,
            "interval_level": c.level,
            "equivalence_level": c.equivalence_level,
        },
        "bootstrap": {
            "resamples": c.resamples,
            "seed": c.seed,
            "seeds_drawn": "n - 1 of n per stratum",
            "resample_strata": c.resample_strata,
            "two_level": c.two_level,
        },
        "runs": [_run(s) for s in c.studies],
        "strata": [
            {"id": st.index, "label": st.label, "study": st.study.label, "run_dir": st.study.provenance["run_dir"],
             "level": st.level}
            for st in c.strata
        ],
        "arms": [_row(r) for r in c.aggregate.to_dict("records")],
        "per_stratum": [_row(r) for r in c.per_stratum.to_dict("records")],
        "missing": c.missing.to_dict("records"),
        "profiles": c.profiles,
        "notes": list(c.notes),
        "files": sorted(files or []),
    }


def _run(s) -> dict[str, Any]:
    model = s.threat_model()
    return {
        "study": s.name,
        "label": s.label,
        **s.provenance,
        "levels": [float(level) for level in s.analysis.levels],
        "metric": s.metric,
        "checkpoint": s.checkpoint,
        "fallback": s.fallback or None,
        "threat_model": {**model, "text": threat_text(model)},
        "alpha": s.analysis.settings.alpha,
        "min_effect": s.analysis.settings.min_effect,
        "adjust": s.analysis.settings.adjust,
        "reference": s.analysis.reference,
        "arms": list(s.analysis.arms),
        "smoke_test": s.analysis.smoke_test,
    }


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if not isinstance(v, (list, str)) and pd.isna(v) else v) for k, v in row.items()}


def dumps(c: Comparison, files: list[str] | None = None) -> str:
    return json.dumps(plain(build(c, files)), indent=1, ensure_ascii=False, allow_nan=False) + "\n"
