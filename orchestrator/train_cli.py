"""`decaylab train`: one trial in this process (no Ray), a line per epoch, rows to parquet."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

from analysis.schema import EPOCH_COLUMNS, EVAL_COLUMNS, conform
from orchestrator.checkpoints import write_checkpoint_dir
from orchestrator.errors import UserError
from orchestrator.spec import single_trial
from orchestrator.storage import write_atomic_local
from trials.data import DataError


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
    from trials.train import run_trial

    cfg = single_trial(study_path, sets)
    out_dir = Path(out or Path("results") / "train" / cfg.trial_id).resolve()
    rows: list[dict] = []
    print(f"trial {cfg.trial_id}: {cfg.model.arch} on {cfg.data.dataset}, {cfg.train.epochs} epochs → {out_dir}",
          file=sys.stderr)

    def report(row: dict, state: dict) -> None:
        rows.append(row)
        print(epoch_line(row, cfg.train.epochs), flush=True)
        write_atomic_local(out_dir / "epochs.parquet",
                           _parquet(conform(pd.DataFrame(rows), EPOCH_COLUMNS)))
        write_checkpoint_dir(state, out_dir / "last")

    try:
        final = run_trial(cfg, report, device={"auto": None, "cpu": "cpu", "gpu": "cuda"}[device])
    except DataError as e:
        raise UserError(study_path, str(e)) from None
    if final["evaluations"]:
        write_atomic_local(out_dir / "evaluations.parquet",
                           _parquet(conform(pd.DataFrame(final["evaluations"]), EVAL_COLUMNS)))
        for r in final["evaluations"]:
            print(f"final ({r['checkpoint']}, epoch {r['epoch']}, {r['examples']} test examples): clean "
                  f"{fmt(r['clean_acc'])} · FGSM {fmt(r['fgsm_acc'])} · PGD {fmt(r['pgd_acc'])} · "
                  f"AutoAttack {fmt(r['autoattack_acc'])}")
    print(f"{final['status']}: {len(rows)} epoch rows → {out_dir / 'epochs.parquet'}", file=sys.stderr)
    return 0 if final["status"] == "ok" else 1


def _parquet(frame: pd.DataFrame) -> bytes:
    from orchestrator.results import parquet_bytes

    return parquet_bytes(frame)
