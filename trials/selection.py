"""The selection rule, in one place: which epoch of a trial is its best, and what a trial scores.

Used by the training loop (which weights to keep as "best"), by the orchestrator's export
(`trials.parquet`) and by the analysis, so that the three can never disagree. Torch-free.

* A trial's **best epoch** is the argmax of `val_robust_acc` over its evaluated epochs; the
  first epoch wins among ties, and epochs without a validation accuracy (NaN: not evaluated,
  or diverged) are skipped.
* A trial's **score** (what selection and the tuning objective average over seeds) is its best
  `val_robust_acc`; a diverged trial scores 0.0 (whoever picked that setting got nothing from
  it); failed, stopped or running trials have no score (NaN).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

FINISHED = ("ok", "diverged")  # ended on their own: a score that will not change
SUMMARY_KEYS = ("best_epoch", "best_val_robust_acc", "best_val_clean_acc", "best_test_clean_acc",
                "best_test_robust_acc", "last_test_clean_acc", "last_test_robust_acc", "gap_robust",
                "weight_norm_last")


def evaluated(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def improves(value: float, best: float | None) -> bool:
    """Whether an epoch with val robust accuracy `value` replaces the best so far (first of ties wins)."""
    return evaluated(value) and (best is None or value > best)


def best_row(rows: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The row of the best epoch (see the rule above), or None when no epoch was evaluated."""
    best = None
    for row in sorted((r for r in rows if evaluated(r.get("epoch"))), key=lambda r: r["epoch"]):
        if improves(row.get("val_robust_acc"), None if best is None else best["val_robust_acc"]):
            best = row
    return best


def summarize(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Best epoch, its metrics, the last epoch's metrics and the best-vs-last gap of one trial."""
    nan = math.nan
    out: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS, nan)
    out["best_epoch"] = None
    if not rows:
        return out
    last = max(rows, key=lambda r: r.get("epoch") if evaluated(r.get("epoch")) else -1)
    out["weight_norm_last"] = last.get("weight_norm", nan)
    best = best_row(rows)
    if best is None:
        return out
    out |= {"best_epoch": int(best["epoch"]), "best_val_robust_acc": best["val_robust_acc"],
            "best_val_clean_acc": best.get("val_clean_acc", nan),
            "best_test_clean_acc": best.get("test_clean_acc", nan),
            "best_test_robust_acc": best.get("test_robust_acc", nan),
            "last_test_clean_acc": last.get("test_clean_acc", nan),
            "last_test_robust_acc": last.get("test_robust_acc", nan)}
    out["gap_robust"] = out["best_test_robust_acc"] - out["last_test_robust_acc"]
    return out


def score(status: str, best_val_robust_acc: float) -> float:
    """What a trial contributes to its setting's selection score (see the rule above)."""
    if status == "diverged":
        return 0.0
    if status == "ok" and evaluated(best_val_robust_acc):
        return float(best_val_robust_acc)
    return math.nan


def objective(rows: Iterable[Mapping[str, Any]], status: str) -> float:
    """A running trial's tuning objective: its best val robust accuracy so far (NaN before the first
    evaluation; 0.0 once diverged), the same rule the analysis selects with."""
    if status == "diverged":
        return 0.0
    best = best_row(rows)
    return math.nan if best is None else float(best["val_robust_acc"])


def best_tuned(trials: Iterable[Mapping[str, Any]], seeds: Iterable[int] | None = None) -> Mapping[str, Any] | None:
    """An arm's best-tuned trial among `trials` (rows with setting, lr, seed, status and score, in study
    order, one label-noise level, the tuning stage), or None when no configuration is eligible.

    * **Eligible** configurations (a setting at one lr): those whose every due seed — `seeds`, by default
      every seed any of the rows has — has finished on its own (ok or diverged), one of them ok. A mean
      over fewer seeds is noisier, and the highest of noisy means wins too often.
    * The eligible **configuration** with the highest score — the mean of `score` over its seeds, in seed
      order, diverged seeds counting 0 — wins; ties go to the configuration listed first.
    * Of it, the `ok` **seed** with the highest score (the best validation robust accuracy); ties go to
      the smaller seed.
    """
    rows = list(trials)
    due = set(seeds) if seeds is not None else {t["seed"] for t in rows}
    configs: dict[tuple, list[Mapping[str, Any]]] = {}
    for t in rows:
        configs.setdefault((t["setting"], t["lr"]), []).append(t)

    def eligible(group: list[Mapping[str, Any]]) -> bool:
        ended = {r["seed"] for r in group if r["status"] in FINISHED}
        return due <= ended and any(r["status"] == "ok" for r in group)

    def config_score(group: list[Mapping[str, Any]]) -> float:
        scores = [r["score"] for r in sorted(group, key=lambda r: r["seed"]) if evaluated(r["score"])]
        return sum(scores) / len(scores) if scores else -math.inf

    candidates = [group for group in configs.values() if eligible(group)]
    if not candidates:
        return None
    best = max(candidates, key=config_score)  # max keeps the first of ties
    ok = sorted((r for r in best if r["status"] == "ok"), key=lambda r: r["seed"])
    return max(ok, key=lambda r: r["score"] if evaluated(r["score"]) else -math.inf)


def reference_arm(declared: str | None, arms_in_order: Iterable[tuple[str, str]]) -> str | None:
    """The arm every other is compared with: the study's `analysis.reference`, else its first arm of kind
    `fixed` (`arms_in_order`: (name, kind) in study order); None when there is neither."""
    if declared:
        return declared
    return next((name for name, kind in arms_in_order if kind == "fixed"), None)
