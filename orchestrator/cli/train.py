"""`decaylab train`: one trial in this process (no Ray), a line per epoch.

The output directory is a run directory of a one-trial study (study.yaml, manifest.json, the
trial's record and the three result files), so `decaylab status`, `report`, `evaluate` and
`export` work on it as on a sweep's.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from orchestrator import records, results, safe_yaml
from orchestrator.errors import UserError
from orchestrator.spec import single_trial
from orchestrator.storage import RunDir
from trials.datasets import DataError


def fmt(v: float, spec: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def epoch_line(row: dict, epochs: int) -> str:
    lam = f"λ̄ {row['lambda_mean']:.2e}" if row["kind"] == "adaptive" else f"λ {row['lambda_mean']:.1e}"
    return (f"epoch {row['epoch']:>3}/{epochs} · loss {fmt(row['train_loss'])} · train rob "
            f"{fmt(row['train_robust_acc'])} · val clean {fmt(row['val_clean_acc'])} rob "
            f"{fmt(row['val_robust_acc'])} · test clean {fmt(row['test_clean_acc'])} rob "
            f"{fmt(row['test_robust_acc'])} · {lam} · ‖w‖ {fmt(row['weight_norm'], '.2f')} · "
            f"lr {row['lr_now']:.2e} · {row['epoch_seconds']:.2f}s · {row['status']}")


def train_one(study_path: str, sets: list[str], out: str | None, device: str) -> int:
    from orchestrator.sweep import manifest, now
    from trials.train import run_trial

    study, cfg = single_trial(study_path, sets)
    if device == "gpu":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device gpu", "this machine has no CUDA GPU", "use --device cpu (or auto)")
    run = RunDir(str(Path(out or Path("results") / "train" / cfg.trial_id).resolve()))
    run.makedirs()
    run.write_atomic(safe_yaml.dump(study.to_dict()).encode(), "study.yaml")
    man = manifest(run, study, 1, None)
    results.write_manifest(run, man)
    print(f"trial {cfg.trial_id}: {cfg.model.arch} on {cfg.data.dataset}, {cfg.train.epochs} epochs → {run.location}",
          file=sys.stderr)

    def report(row: dict, state: dict) -> None:
        print(epoch_line(row, cfg.train.epochs), flush=True)
        records.write_epoch_row(run, cfg.trial_id, row)
        records.write_checkpoint(run, cfg.trial_id, state)

    state, _ = records.load_checkpoint(run, cfg.trial_id)
    try:
        final = run_trial(cfg, report, state=state, device={"auto": None, "cpu": "cpu", "gpu": "cuda"}[device])
    except DataError as e:
        raise UserError(study_path, str(e)) from None
    records.write_result(run, final)
    results.export_trial(run, cfg.trial_id)
    results.consolidate(run)
    results.write_manifest(run, {**man, "finished": now()})
    for r in final["evaluations"]:
        print(f"final ({r['checkpoint']}, epoch {r['epoch']}, {r['examples']} test examples, fp32): clean "
              f"{fmt(r['clean_acc'])} · FGSM {fmt(r['fgsm_acc'])} · PGD {fmt(r['pgd_acc'])} · "
              f"AutoAttack {fmt(r['autoattack_acc'])}")
    print(f"{final['status']}: {final['epoch']} epochs → {run.location} (`decaylab report {run.location}`)",
          file=sys.stderr)
    return 0 if final["status"] == "ok" else 1
