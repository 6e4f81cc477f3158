"""After an Optuna tuning stage: the best configurations per arm, written as a grid study file.

The grid study runs the chosen λ / λ_awd values and learning rates at full length on every
seed with no early stopping — the comparison the tuning stage only screens for.
"""

from __future__ import annotations

import yaml

from orchestrator import results
from orchestrator.spec import Study
from orchestrator.storage import RunDir


def best_configurations(run: RunDir, study: Study) -> dict[str, list[tuple[float, float, float]]]:
    """arm → [(mean best val robust acc over seeds, value, lr)], best first, top_k per arm."""
    _, trials, _ = results.build_frames(results.Scanner(run))
    out = {}
    for arm in study.methods:
        # configurations trained to the end first; those ASHA stopped only if an arm has none
        rows = trials[(trials["method"] == arm.name) & (trials["status"] == "ok")]
        if rows.empty:
            rows = trials[(trials["method"] == arm.name) & (trials["status"] == "stopped")]
        col = "lam" if arm.kind == "fixed" else "lambda_awd"
        scored = rows.groupby([col, "lr"], as_index=False)["best_val_robust_acc"].mean()
        scored = scored.sort_values("best_val_robust_acc", ascending=False).head(study.search.top_k)
        out[arm.name] = [(float(r.best_val_robust_acc), float(getattr(r, col)), float(r.lr))
                         for r in scored.itertuples()]
    return out


def write_best_grid(run: RunDir, study: Study) -> str:
    best = best_configurations(run, study)
    d = study.to_dict()
    d["name"] = f"{study.name}-best"
    d["description"] = (f"Best configurations of the Optuna stage {study.name} "
                        f"(top {study.search.top_k} per arm by mean val robust accuracy), at full length.")
    d["search"] = {"kind": "grid"}
    d["methods"] = {}
    lrs: set[float] = set()
    for arm in study.methods:
        picks = best.get(arm.name, [])
        if picks:
            d["methods"][arm.name] = {"kind": arm.kind, arm.param: sorted({v for _, v, _ in picks})}
            lrs |= {lr for _, _, lr in picks}
    d["lr"] = sorted(lrs) or list(study.lr)
    run.write_atomic(yaml.safe_dump(d, sort_keys=False).encode(), "best_grid.yaml")
    return run.uri("best_grid.yaml")
