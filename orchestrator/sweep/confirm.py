"""The confirmation stage: each arm's configuration selected on the tuning seeds (validation only), trained
again on fresh seeds (`confirm.seeds`), on which the headline verdict is then made. The same seeds never
both choose a configuration and judge it.

The selection is the study's one rule (`trials.selection.best_tuned`, the rule the report uses): among
the configurations whose every tuning seed finished, the best mean validation robust accuracy.
"""

from __future__ import annotations

from typing import Any

from orchestrator.run import results
from orchestrator.run.storage import RunDir
from orchestrator.study.plan import Entry, confirmation_entries, seeds_per_configuration
from orchestrator.study.schema import Study
from trials import selection
from trials.config import TrialConfig


def tuning_seeds(study: Study) -> list[int]:
    """The seeds every configuration of the tuning stage is due."""
    if study.search.kind == "grid":
        return list(study.seeds)
    return list(study.seeds[: seeds_per_configuration(study)])


def selected(run: RunDir, study: Study) -> tuple[dict[tuple[str, float], tuple[dict[str, Any], float]], list[str]]:
    """Each (arm, label noise)'s selected configuration as (hyperparameters, lr), from the tuning trials'
    records; and a note for each arm that has none eligible yet."""
    states = results.trial_states(run)
    rows = [results.trial_row(state) | {"trial_id": tid} for tid, state in states.items()]
    rows = [r for r in rows if (r.get("stage") or "tune") == "tune"]
    levels = study.data.label_noise if study.search.kind == "grid" else study.data.label_noise[:1]
    chosen, notes = {}, []
    for arm in study.arms:
        for noise in levels:
            best = selection.best_tuned([r for r in rows if r["method"] == arm and r["label_noise"] == noise],
                                        seeds=tuning_seeds(study))
            if best is None:
                notes.append(f"{arm} (label noise {noise:g}) has no configuration whose every tuning seed finished: "
                             "not confirmed")
                continue
            cfg = TrialConfig.from_dict(states[best["trial_id"]]["config"])
            chosen[(arm, noise)] = (dict(cfg.params), cfg.lr)
    return chosen, notes


def pending(run: RunDir, study: Study, finished: set[str]) -> tuple[list[Entry], list[str]]:
    """The confirmation trials not finished yet (none without `confirm`), and the selection's notes."""
    if study.confirm is None:
        return [], []
    chosen, notes = selected(run, study)
    return confirmation_entries(study, chosen, skip=finished), notes
