"""`compare_runs`: every arm against the reference over the strata of several runs (see `analysis.across`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.across import bootstrap
from analysis.across.bootstrap import Cell, percentile_interval
from analysis.across.strata import (
    CHECKPOINTS,
    METRICS,
    ONE_STUDY,
    CompareInputError,
    Stratum,
    Study,
    check_settings,
    choose_reference,
    correctness,
    headline_values,
    load_studies,
    resolve_readings,
    stratum_verdicts,
    unpack,
)
from analysis.select import LEVEL

MEANINGFUL = 0.75  # Bouthillier et al. (2021): P(A > B) above 0.75 is a difference worth acting on
VERDICTS = ("meaningfully better", "better", "equivalent", "inconclusive", "worse", "meaningfully worse")
PROFILE_POINTS = 201
AGGREGATE_COLUMNS = [
    "arm", "reference", "strata", "pairs", "p_improvement", "p_low", "p_high", "mean_diff", "mean_low",
    "mean_high", "iqm_diff", "iqm_low", "iqm_high", "equivalence_low", "equivalence_high", "verdict",
    "missing_strata",
]  # fmt: skip
STRATUM_COLUMNS = [
    "arm", "stratum", "stratum_id", "study", "level", "stage", "n", "n_arm", "n_reference", "p_improvement",
    "p_low", "p_high", "mean_diff", "boot_low", "boot_high", "verdict", "verdict_source", "ci_low", "ci_high",
    "ci_level", "p_value", "p_adjusted",
]  # fmt: skip


@dataclass
class Comparison:
    """What `decaylab compare` found; `analysis.across_report` writes it."""

    studies: list[Study]
    strata: list[Stratum]
    reference: str
    arms: list[str]  # every arm seen, in study order (the first study's first): the colour order
    compared: list[str]  # the arms compared with the reference (those with at least one stratum)
    alpha: float
    min_effect: float
    meaningful: float
    resamples: int
    seed: int
    resample_strata: bool
    two_level: bool
    aggregate: pd.DataFrame  # one row per compared arm (AGGREGATE_COLUMNS)
    per_stratum: pd.DataFrame  # one row per (compared arm, stratum it has) (STRATUM_COLUMNS)
    missing: pd.DataFrame  # arm, stratum, reason: where an arm has no comparison
    profiles: dict[str, Any]  # tau, level, and per arm fraction/low/high
    notes: list[str] = field(default_factory=list)

    @property
    def family_size(self) -> int:
        return max(len(self.compared), 1)

    @property
    def level(self) -> float:
        """The level of every interval: Bonferroni over the arms, 1 − α/m."""
        return 1 - self.alpha / self.family_size

    @property
    def equivalence_level(self) -> float:
        """The level of the equivalence interval: two one-sided tests at α/m, 1 − 2α/m."""
        return 1 - 2 * self.alpha / self.family_size


def compare_runs(
    run_dirs: Sequence[str | Path],
    *,
    reference: str | None = None,
    metric: str | None = None,
    checkpoint: str = "best",
    meaningful: float = MEANINGFUL,
    resample_strata: bool = False,
    allow_mixed: bool = False,
    two_level: bool = False,
    resamples: int = bootstrap.RESAMPLES,
    seed: int = bootstrap.SEED,
    locations: Sequence[str] | None = None,
) -> Comparison:
    """Analyse each run as its report does and compare every arm with the reference over the strata.

    `locations` names the runs in the output where they were read from elsewhere (default: `run_dirs`)."""
    if metric is not None and metric not in METRICS:
        raise CompareInputError("--metric", f"{metric!r} is not one of {', '.join(METRICS)}")
    if checkpoint not in CHECKPOINTS:
        raise CompareInputError("--checkpoint", f"{checkpoint!r} is not one of {', '.join(CHECKPOINTS)}")
    if not (isinstance(meaningful, (int, float)) and 0.5 < meaningful < 1):
        raise CompareInputError("--meaningful", f"must be a probability in (0.5, 1), got {meaningful!r}",
                                "the default 0.75 is Bouthillier et al.'s suggestion")
    studies, notes = load_studies(run_dirs, allow_mixed, locations)
    notes += resolve_readings(studies, metric, checkpoint, allow_mixed)
    min_effect, alpha, mixed = check_settings(studies, allow_mixed)
    notes += mixed
    ref = choose_reference(studies, reference)
    values = {s.index: headline_values(s) for s in studies}
    strata, skipped = _strata(studies, values, ref)
    notes += skipped
    if len(strata) < 2:
        count = f"{len(strata)} stratum" if len(strata) == 1 else f"{len(strata)} strata"
        raise CompareInputError("", f"{count} (run × label-noise level where the reference has values): a "
                                "comparison across strata needs two", ONE_STUDY)
    arms = list(dict.fromkeys(arm for s in studies for arm in s.analysis.arms))
    verdict_rows = {s.index: stratum_verdicts(s, values[s.index], ref) for s in studies}
    cells, missing = {}, []
    for arm in (a for a in arms if a != ref):
        found, lacking = _cells(strata, values, ref, arm, two_level)
        missing += lacking
        if found:
            cells[arm] = found
    if not cells:
        raise CompareInputError("", f"no arm other than the reference {ref!r} has values in any stratum",
                                "check the arms' names: arms are matched by name across the runs")
    comparison = Comparison(
        studies=studies, strata=strata, reference=ref, arms=arms, compared=list(cells), alpha=alpha,
        min_effect=min_effect, meaningful=float(meaningful), resamples=resamples, seed=seed,
        resample_strata=resample_strata, two_level=two_level, aggregate=pd.DataFrame(),
        per_stratum=pd.DataFrame(), missing=pd.DataFrame(missing, columns=["arm", "stratum", "reason"]),
        profiles={}, notes=notes,
    )  # fmt: skip
    rows, stratum_rows = [], []
    for i, (arm, found) in enumerate(cells.items()):
        point, reps = bootstrap.replicates([c for _, c, _ in found], resamples=resamples, seed=[seed, i],
                                           resample_strata=resample_strata, two_level=two_level)
        lacking = [label for a, label, _ in missing if a == arm]
        rows.append(_aggregate_row(comparison, arm, found, point, reps, lacking))
        stratum_rows += _stratum_rows(comparison, arm, found, point, reps, verdict_rows)
    comparison.aggregate = pd.DataFrame(rows, columns=AGGREGATE_COLUMNS)
    comparison.per_stratum = pd.DataFrame(stratum_rows, columns=STRATUM_COLUMNS)
    comparison.profiles = _profiles(comparison, values)
    return comparison


def verdict(p_low: float, p_high: float, eq_low: float, eq_high: float, *, meaningful: float,
            min_effect: float) -> str:
    """The aggregate verdict: P(improvement)'s interval against ½ and γ, else equivalence, else inconclusive."""
    if p_low > meaningful:
        return "meaningfully better"
    if p_low > 0.5:
        return "better"
    if p_high < 1 - meaningful:
        return "meaningfully worse"
    if p_high < 0.5:
        return "worse"
    if -min_effect < eq_low and eq_high < min_effect:  # False for NaN bounds
        return "equivalent"
    return "inconclusive"


def judge(point: bootstrap.Replicates, reps: bootstrap.Replicates, *, level: float, equivalence_level: float,
          meaningful: float, min_effect: float) -> dict[str, Any]:
    """One arm's aggregate numbers, their intervals and its verdict, from its bootstrap."""
    p_low, p_high = percentile_interval(reps.p, level)
    mean_low, mean_high = percentile_interval(reps.mean, level)
    iqm_low, iqm_high = percentile_interval(reps.iqm, level)
    eq_low, eq_high = percentile_interval(reps.mean, equivalence_level)
    return {
        "p_improvement": float(point.p[0]), "p_low": p_low, "p_high": p_high,
        "mean_diff": float(point.mean[0]), "mean_low": mean_low, "mean_high": mean_high,
        "iqm_diff": float(point.iqm[0]), "iqm_low": iqm_low, "iqm_high": iqm_high,
        "equivalence_low": eq_low, "equivalence_high": eq_high,
        "verdict": verdict(p_low, p_high, eq_low, eq_high, meaningful=meaningful, min_effect=min_effect),
    }  # fmt: skip


def summarise(cells: Sequence[Cell], *, alpha: float, family_size: int, min_effect: float,
              meaningful: float = MEANINGFUL, resamples: int = bootstrap.RESAMPLES, seed: Any = bootstrap.SEED,
              resample_strata: bool = False) -> dict[str, Any]:
    """`judge` of one arm's cells at the Bonferroni levels of a family, as `compare_runs` judges each arm."""
    point, reps = bootstrap.replicates(cells, resamples=resamples, seed=seed, resample_strata=resample_strata)
    return judge(point, reps, level=1 - alpha / family_size, equivalence_level=1 - 2 * alpha / family_size,
                 meaningful=meaningful, min_effect=min_effect)


# ---------------------------------------------------------------- strata and cells


def _strata(studies: Sequence[Study], values: dict[int, pd.DataFrame], reference: str):
    """The strata (study × level where the reference has values), and a note for each level left out."""
    strata, notes = [], []
    for s in studies:
        rows = values[s.index]
        for level in s.analysis.levels:
            if ((rows[LEVEL] == level) & (rows["method"] == reference)).any():
                strata.append(Stratum(len(strata), s, float(level)))
            else:
                notes.append(f"{s.label}, noise {100 * level:g}%: the reference {reference} has no headline "
                             "values there (no eligible configuration yet), so it is not a stratum")
    return strata, notes


def _cells(strata: Sequence[Stratum], values: dict[int, pd.DataFrame], reference: str, arm: str, two_level: bool):
    """[(stratum, cell, stage)] of one arm, and [(arm, stratum label, reason)] where it has none."""
    found, missing = [], []
    for stratum in strata:
        study = stratum.study
        rows = values[study.index]
        rows = rows[rows[LEVEL] == stratum.level]
        arm_rows = rows[rows["method"] == arm]
        reason = ""
        if arm not in study.analysis.arms:
            reason = "not an arm of this study"
        elif arm_rows.empty:
            reason = "no headline values at this level (no eligible configuration, or no trial finished)"
        if reason:
            missing.append((arm, stratum.label, reason))
            continue
        stage = str(arm_rows["stage"].iloc[0])
        ref_rows = rows[(rows["method"] == reference) & (rows["stage"] == stage)]
        if ref_rows.empty:
            missing.append((arm, stratum.label, f"the reference has no {stage} values to pair with"))
            continue
        a = arm_rows.drop_duplicates("seed").set_index("seed")  # a seed retrained twice counts once, the first
        r = ref_rows.drop_duplicates("seed").set_index("seed")
        seeds = np.array(sorted(set(a.index) | set(r.index)))
        arm_v = a["value"].reindex(seeds).to_numpy(float)
        ref_v = r["value"].reindex(seeds).to_numpy(float)
        if not (np.isfinite(arm_v).any() and np.isfinite(ref_v).any()):
            missing.append((arm, stratum.label, "no seed of the arm or of the reference has a number"))
            continue
        extra = _correct_arrays(stratum, a, r, seeds) if two_level else {}
        found.append((stratum, Cell(stratum.index, seeds, arm_v, ref_v, **extra), stage))
    return found, missing


def _correct_arrays(stratum: Stratum, a: pd.DataFrame, r: pd.DataFrame, seeds: np.ndarray) -> dict[str, np.ndarray]:
    """Seeds × examples correctness of both sides (a diverged seed: all wrong); refused when any is missing."""
    study = stratum.study
    stored = correctness(study)
    sides, counts = [], set()
    for frame in (a, r):
        rows = frame.reindex(seeds)
        kept = rows[rows["value"].notna() & rows["status"].ne("diverged")]
        info = stored.reindex(kept["trial_id"])
        if info["correct"].isna().any():
            raise CompareInputError(
                study.provenance["run_dir"], "--two-level needs the per-example correctness of every trial "
                f"compared, and {int(info['correct'].isna().sum())} trial(s) at noise {100 * stratum.level:g}% have "
                f"none stored for {study.metric} at the {study.checkpoint} checkpoint",
                "drop --two-level: without per-example correctness only the seeds can be resampled",
            )
        counts |= {int(e) for e in info["examples"]}
        sides.append((rows, info))
    if len(counts) > 1:
        raise CompareInputError(study.provenance["run_dir"], f"--two-level: the trials at noise "
                                f"{100 * stratum.level:g}% were evaluated on different numbers of test examples "
                                f"({sorted(counts)})", "drop --two-level")
    examples = counts.pop() if counts else 0
    out = {}
    for name, (rows, info) in zip(("arm_correct", "ref_correct"), sides, strict=True):
        matrix = np.zeros((len(seeds), examples), dtype=bool)
        for i, (_, row) in enumerate(rows.iterrows()):
            if pd.notna(row["value"]) and row["status"] != "diverged":
                matrix[i] = unpack(info.loc[row["trial_id"], "correct"], examples)
        out[name] = matrix
    return out


# ---------------------------------------------------------------- rows


def _aggregate_row(c: Comparison, arm: str, found, point, reps, lacking: list[str]) -> dict[str, Any]:
    numbers = judge(point, reps, level=c.level, equivalence_level=c.equivalence_level, meaningful=c.meaningful,
                    min_effect=c.min_effect)
    pairs = int(sum(cell.n_pairs for _, cell, _ in found))
    return {"arm": arm, "reference": c.reference, "strata": len(found), "pairs": pairs, **numbers,
            "missing_strata": lacking}


def _stratum_rows(c: Comparison, arm: str, found, point, reps, verdict_rows) -> list[dict[str, Any]]:
    rows = []
    for j, (stratum, cell, stage) in enumerate(found):
        table, source = verdict_rows[stratum.study.index]
        own = table[(table[LEVEL] == stratum.level) & (table["stage"] == stage) & (table["method"] == arm)]
        own = own.iloc[0] if len(own) else pd.Series(dtype=object)
        p_low, p_high = percentile_interval(reps.p_strata[:, j], c.level)
        low, high = percentile_interval(reps.mean_strata[:, j], c.level)
        rows.append({
            "arm": arm, "stratum": stratum.label, "stratum_id": stratum.index, "study": stratum.study.label,
            "level": stratum.level, "stage": stage, "n": cell.n_pairs,
            "n_arm": int(np.isfinite(cell.arm).sum()), "n_reference": int(np.isfinite(cell.ref).sum()),
            "p_improvement": float(point.p_strata[0, j]), "p_low": p_low, "p_high": p_high,
            "mean_diff": float(point.mean_strata[0, j]), "boot_low": low, "boot_high": high,
            "verdict": own.get("verdict", "no verdict"), "verdict_source": source if len(own) else "",
            **{k: float(own.get(k, math.nan)) for k in ("ci_low", "ci_high", "ci_level", "p_value", "p_adjusted")},
        })  # fmt: skip
    return rows


def profile_values(c: Comparison, values: dict[int, pd.DataFrame], arm: str) -> list[np.ndarray]:
    """Per stratum, the arm's own per-seed values (for the reference: its confirmation values where it has
    them, else the cross-fitted ones); strata where it has none are left out."""
    out = []
    for stratum in c.strata:
        rows = values[stratum.study.index]
        rows = rows[(rows[LEVEL] == stratum.level) & (rows["method"] == arm)]
        if rows.empty:
            continue
        if arm == c.reference and rows["stage"].nunique() > 1:
            rows = rows[rows["stage"] == "confirm"]
        v = rows.drop_duplicates("seed")["value"].to_numpy(float)
        if np.isfinite(v).any():
            out.append(v)
    return out


def _profiles(c: Comparison, values: dict[int, pd.DataFrame]) -> dict[str, Any]:
    arms = [a for a in c.arms if a == c.reference or a in c.compared]
    per_arm = {arm: profile_values(c, values, arm) for arm in arms}
    every = np.concatenate([v for vs in per_arm.values() for v in vs] or [np.zeros(1)])
    every = every[np.isfinite(every)]
    low = max(0.0, math.floor(100 * every.min()) / 100 - 0.01)
    high = min(1.0, math.ceil(100 * every.max()) / 100 + 0.01)
    taus = np.linspace(low, high, PROFILE_POINTS)
    level = 1 - c.alpha
    out: dict[str, Any] = {"tau": taus.tolist(), "level": level, "arms": {}}
    for i, (arm, strata_values) in enumerate(per_arm.items()):
        if not strata_values:
            continue
        point, reps = bootstrap.profile_replicates(strata_values, taus, resamples=c.resamples,
                                                   seed=[c.seed, 1000 + i], resample_strata=c.resample_strata)
        bands = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2], axis=0)
        out["arms"][arm] = {"strata": len(strata_values), "fraction": point.tolist(), "low": bands[0].tolist(),
                            "high": bands[1].tolist()}
    return out
