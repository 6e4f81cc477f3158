"""Run directories as strata: each run's headline values exactly as its own report takes them, and the checks
that decide whether the runs may be compared at all.

A **stratum** is one run directory at one label-noise level where the reference arm has headline values.
Pruning sparsity is not a stratum: a pruned evaluation is another number of the same seeds' checkpoints, not
another replicate, and counting it again would count the same seeds twice.

The per-seed values are the report's: `analysis.pipeline.analyse(load_run(dir)).values` (the `headline`
test: the confirmation trials where the arm and the reference were confirmed, else the cross-fitted ones).
For another metric or checkpoint than the report's headline (its metric at the best checkpoint) the same
trials are kept — the selection, cross-fitting and confirmation are the report's — and each trial's number is
read at the asked metric and checkpoint from the report's own per-trial table (`Analysis.outcomes`,
`<checkpoint>_<metric>`, for best, last and ema alike; a diverged trial counting 0).

Every refusal is a `CompareInputError` with what is wrong, where, and what to do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import compare, outcomes, verdicts
from analysis.load import MANIFEST_FILE, TRIALS_FILE, Run, load_run
from analysis.pipeline import Analysis, analyse
from analysis.select import LEVEL

METRICS = ("pgd_acc", "autoattack_acc", "clean_acc")
CHECKPOINTS = ("best", "last", "ema")
STUDY_FILE = "study.yaml"
MAX_STUDY_BYTES = 1 << 20  # a resolved study is a few KiB (orchestrator.run.layout.MAX_STUDY)
ONE_STUDY = "use `decaylab report RUN_DIR` for one study"


class CompareInputError(ValueError):
    """The runs cannot be compared as asked: `where`, `reason`, and a `hint` on what to do."""

    def __init__(self, where: str, reason: str, hint: str | None = None) -> None:
        self.where, self.reason, self.hint = where, reason, hint
        super().__init__(f"{where}: {reason}" if where else reason)


@dataclass
class Study:
    """One run directory, analysed as its report analyses it."""

    index: int
    run_dir: Path
    analysis: Analysis
    label: str = ""  # the study name, made unique among the runs compared
    metric: str = ""  # the metric and checkpoint its values are read at
    checkpoint: str = "best"
    fallback: str = ""  # why the metric or checkpoint is not the one asked for ('' when it is)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def run(self) -> Run:
        return self.analysis.run

    @property
    def name(self) -> str:
        return self.run.study

    def threat_model(self) -> dict[str, Any]:
        return threat_model(self.run)


def threat_model(run: Run) -> dict[str, Any]:
    """The evaluation attack: kind and ε (an eval ε of null is the training ε), and its steps."""
    if not run.resolved_study:
        return {"attack": None, "eps": None, "steps": None}
    kind = run.study_field("attack", "eval", "kind", default="pgd")
    eps = run.study_field("attack", "eval", "eps")
    if eps is None:
        eps = run.study_field("attack", "train", "eps", default=0.25)
    steps = run.study_field("attack", "eval", "steps", default=10)
    return {"attack": kind, "eps": None if kind == "none" else eps, "steps": None if kind == "none" else steps}


@dataclass(frozen=True)
class Stratum:
    index: int
    study: Study
    level: float

    @property
    def label(self) -> str:
        return f"{self.study.label}, noise {100 * self.level:g}%"


# ---------------------------------------------------------------- loading


def load_studies(
    run_dirs: Sequence[str | Path], allow_mixed: bool = False, locations: Sequence[str] | None = None
) -> tuple[list[Study], list[str]]:
    """Each run directory analysed as its report analyses it, and notes on what was mixed. `locations` names
    the runs where they are not where they were read (a local copy of a run on an object store).

    Refused before any analysis: the same directory twice, a copy of another, a single study at a single
    level, and different threat models (unless `allow_mixed`).
    """
    seen: dict[Path, str] = {}
    for given in run_dirs:
        resolved = Path(given).resolve()
        if resolved in seen:
            raise CompareInputError(
                str(given), f"the same run directory as {seen[resolved]}", "give each run directory once"
            )
        seen[resolved] = str(given)
    runs = [load_run(d) for d in run_dirs]
    if len(runs) == 1 and runs[0].trials["label_noise"].nunique() <= 1:
        raise CompareInputError(str(run_dirs[0]), "one study at one label-noise level is one stratum", ONE_STUDY)
    _refuse_copies(runs)
    labels = _labels([run.study for run in runs])
    notes = check_threat_models({label: threat_model(run) for label, run in zip(labels, runs, strict=True)},
                                allow_mixed)
    studies = [Study(i, Path(d), analyse(run), label) for i, (d, run, label) in
               enumerate(zip(run_dirs, runs, labels, strict=True))]
    for s, location in zip(studies, locations or run_dirs, strict=True):
        s.provenance = provenance(s, str(location))
    return studies, notes


def _labels(names: list[str]) -> list[str]:
    """The study names, a repeated one numbered by its run's position."""
    return [name if names.count(name) == 1 else f"{name} (run {i + 1})" for i, name in enumerate(names)]


def _refuse_copies(runs: Sequence[Run]) -> None:
    """Two directories holding the same results (a copy) would count the same seeds twice."""
    seen: dict[str, Path] = {}
    for run in runs:
        digest = file_sha256(run.run_dir / TRIALS_FILE)
        if digest in seen:
            raise CompareInputError(
                str(run.run_dir), f"holds the same results as {seen[digest]} ({TRIALS_FILE} is identical)",
                "a copy of a run counts its seeds twice: give one of them",
            )
        seen[digest] = run.run_dir


def file_sha256(path: Path, cap: int | None = None) -> str | None:
    """The SHA-256 of a file (None when it is absent or larger than `cap`)."""
    if not path.is_file():
        return None
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            size += len(block)
            if cap is not None and size > cap:
                return None
            digest.update(block)
    return digest.hexdigest()


def provenance(study: Study, location: str) -> dict[str, Any]:
    """Where a run's numbers come from: its directory, git commit and hashes of what was run."""
    run = study.run
    resolved = run.resolved_study
    canonical = json.dumps(resolved, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return {
        "run_dir": location,
        "git_commit": (run.manifest or {}).get("git_commit"),
        "study_yaml_sha256": file_sha256(run.run_dir / STUDY_FILE, MAX_STUDY_BYTES),
        "resolved_study_sha256": hashlib.sha256(canonical.encode()).hexdigest() if resolved else None,
        "manifest": (run.run_dir / MANIFEST_FILE).is_file(),
        "started": (run.manifest or {}).get("started"),
        "finished": (run.manifest or {}).get("finished"),
    }


# ---------------------------------------------------------------- what may be compared


def choose_reference(studies: Sequence[Study], reference: str | None) -> str:
    """The reference arm: the one asked for (an arm of every study), else the studies' common reference."""
    if reference is not None:
        lacking = [s.label for s in studies if reference not in s.analysis.arms]
        if lacking:
            raise CompareInputError(
                "--reference", f"{reference!r} is not an arm of {', '.join(lacking)}",
                f"pass an arm every study has: {', '.join(shared_arms(studies)) or 'none is shared'}",
            )
        return reference
    own = {s.label: s.analysis.reference for s in studies}
    distinct = {r for r in own.values() if r}
    if len(distinct) == 1 and all(own.values()):
        return distinct.pop()
    described = ", ".join(f"{label}: {r or 'none'}" for label, r in own.items())
    raise CompareInputError(
        "", f"the studies do not share one reference arm ({described})",
        f"pass --reference ARM, an arm every study has: {', '.join(shared_arms(studies)) or 'none is shared'}",
    )


def shared_arms(studies: Sequence[Study]) -> list[str]:
    first = studies[0].analysis.arms
    return [arm for arm in first if all(arm in s.analysis.arms for s in studies[1:])]


def resolve_readings(
    studies: Sequence[Study], metric: str | None, checkpoint: str, allow_mixed: bool
) -> list[str]:
    """Set each study's metric and checkpoint; refuse mixtures unless `allow_mixed` (then say what was mixed)."""
    notes = []
    for s in studies:
        own = s.analysis.metric
        s.metric, s.checkpoint = metric or own, checkpoint
        missing = _unavailable(s)
        if missing and not allow_mixed:
            raise CompareInputError(
                s.label, f"has no {missing}",
                "choose a --metric/--checkpoint every run has, or pass --allow-mixed to read this run at its own "
                f"headline ({own} at the best checkpoint), said in the output",
            )
        if missing:
            s.metric, s.checkpoint = own, "best"
            s.fallback = f"no {missing}: read at its own headline, {own} at the best checkpoint"
            notes.append(f"{s.label}: {s.fallback}")
    readings = {(s.metric, s.checkpoint) for s in studies}
    if len(readings) > 1 and not notes:
        described = ", ".join(f"{s.label}: {s.metric} ({s.checkpoint})" for s in studies)
        if not allow_mixed:
            raise CompareInputError(
                "", f"the studies' headline metrics differ ({described})",
                "pass --metric to read every run at one metric, or --allow-mixed to compare them as they are",
            )
        notes.append(f"mixed metrics: {described}")
    return notes


def _unavailable(study: Study) -> str:
    """'' when the study has numbers at its metric and checkpoint, else what it lacks, in words."""
    rows = headline_values(study)
    ok = rows["status"].eq("ok").to_numpy()
    if not ok.any() or rows.loc[ok, "value"].notna().any():
        return ""
    return f"{study.metric} at the {study.checkpoint} checkpoint (no finished trial of its headline has one)"


def check_threat_models(models: dict[str, dict[str, Any]], allow_mixed: bool) -> list[str]:
    """The evaluation attack (kind and ε) of every run (by label) must be the same, unless `allow_mixed`."""
    keys = {(m["attack"], _round(m["eps"])) for m in models.values()}
    notes = []
    if len(keys) > 1:
        described = "; ".join(f"{label}: {threat_text(m)}" for label, m in models.items())
        if not allow_mixed:
            raise CompareInputError(
                "", f"the runs were evaluated under different threat models ({described})",
                "compare runs evaluated with the same attack and ε, or pass --allow-mixed (said in the output)",
            )
        notes.append(f"mixed threat models: {described}")
    steps = {m["steps"] for m in models.values()}
    if len(steps) > 1:
        notes.append("the evaluation attacks run different numbers of steps: " + "; ".join(
            f"{label}: {m['steps']}" for label, m in models.items()))
    return notes


def threat_text(model: dict[str, Any]) -> str:
    if model["attack"] is None:
        return "unknown (no manifest)"
    if model["attack"] == "none":
        return "none (natural evaluation)"
    eps = model["eps"]
    shown = f"{eps:.6g}" if isinstance(eps, (int, float)) and not isinstance(eps, bool) else str(eps)
    return f"{model['attack']}-{model['steps']}, ε = {shown}"


def _round(eps: object) -> object:
    return round(float(eps), 9) if isinstance(eps, (int, float)) else eps


def check_settings(studies: Sequence[Study], allow_mixed: bool) -> tuple[float, float, list[str]]:
    """(α, min_effect) shared by the studies' `analysis` sections; with `allow_mixed`, the strictest of each."""
    notes = []
    chosen = []
    for name, attr in (("min_effect", "min_effect"), ("alpha", "alpha")):
        values = {s.label: getattr(s.analysis.settings, attr) for s in studies}
        if len(set(values.values())) > 1:
            described = ", ".join(f"{label}: {v:g}" for label, v in values.items())
            if not allow_mixed:
                raise CompareInputError(
                    "", f"the studies declare different analysis.{name} ({described})",
                    f"set one analysis.{name} in the studies, or pass --allow-mixed to use the smallest",
                )
            notes.append(f"mixed analysis.{name} ({described}): the smallest, {min(values.values()):g}, is used")
        chosen.append(min(values.values()))
    return chosen[0], chosen[1], notes


# ---------------------------------------------------------------- the values


def reading(study: Study) -> pd.Series:
    """Per trial id, the study's number at its metric and checkpoint (`Analysis.outcomes`' `<checkpoint>_<metric>`:
    a diverged trial counts 0, one that is not ok is NaN)."""
    table = study.analysis.outcomes.drop_duplicates("trial_id").set_index("trial_id")
    return table[f"{study.checkpoint}_{study.metric}"].astype(float)


def headline_values(study: Study) -> pd.DataFrame:
    """The report's headline rows of one study (level, stage, method, seed, trial_id, status, …), `value` read at
    the study's metric and checkpoint (the report's own value when those are its headline's)."""
    a = study.analysis
    rows = a.values[a.values["test"] == "headline"].copy()
    if (study.metric, study.checkpoint) != (a.metric, "best"):
        rows["value"] = rows["trial_id"].map(reading(study)).astype(float)
    return rows


def correctness(study: Study) -> pd.DataFrame:
    """Per trial id, the packed per-example correctness of its metric at its checkpoint, and `examples`."""
    evals = study.run.evaluations
    column = outcomes.CORRECTNESS[study.metric]
    if evals is None or evals.empty:
        return pd.DataFrame(columns=["correct", "examples"])
    rows = evals[(evals["sparsity"] == 0) & (evals["checkpoint"] == study.checkpoint)]
    rows = rows.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    return pd.DataFrame({"correct": rows[column], "examples": rows["examples"]})


def stratum_verdicts(study: Study, values: pd.DataFrame, reference: str) -> tuple[pd.DataFrame, str]:
    """Each (level, stage, arm)'s own verdict row: the report's when the comparison is its headline, else the
    same test (`analysis.compare.verdict_rows`) on these values as one family of the study; and which it is."""
    a = study.analysis
    if reference == a.reference and (study.metric, study.checkpoint) == (a.metric, "best"):
        return a.headline, "report"
    rows = compare.verdict_rows(values, reference, a.settings, a.smoke_test, [LEVEL, "stage"])
    return rows, "computed"


def unpack(text: object, examples: int) -> np.ndarray:
    return verdicts.unpack_correct(str(text), int(examples))
