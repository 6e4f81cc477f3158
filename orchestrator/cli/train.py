"""`decaylab train`: one trial in this process (no Ray), a line per epoch.

The --run-dir is a run directory of a one-trial study (study.yaml, manifest.json, the
trial's record and the three result files), so `decaylab status`, `report`, `evaluate` and
`export` work on it as on a sweep's.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from orchestrator.cli import args as a
from orchestrator.errors import UserError


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "train", train, "one trial in this process (no Ray), for debugging", epilog)
    a.study(sp)
    a.sets(sp, "arm=<arm> lambda=|lambda_awd=<value> seed=<n> label_noise=<r> and study keys")
    sp.add_argument("--run-dir", metavar="RUN_DIR", help="run directory to write (default "
                    "results/train/<trial id>); `status`, `report`, `evaluate` and `export` read it")
    a.alias(sp, "--out", "run_dir")
    sp.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                    help="auto: CUDA when this machine has it (default)")


def train(args) -> int:
    from orchestrator.study.catalog import study_file

    return train_one(study_file(args.study), args.sets, args.run_dir, args.device)


def fmt(v: float, spec: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def epoch_line(row: dict, epochs: int) -> str:
    lam = f"λ̄ {row['lambda_mean']:.2e}" if row["kind"] == "adaptive" else f"λ {row['lambda_mean']:.1e}"
    return (f"epoch {row['epoch']:>3}/{epochs} · loss {fmt(row['train_loss'])} · train rob "
            f"{fmt(row['train_robust_acc'])} · val clean {fmt(row['val_clean_acc'])} rob "
            f"{fmt(row['val_robust_acc'])} · test clean {fmt(row['test_clean_acc'])} rob "
            f"{fmt(row['test_robust_acc'])} · {lam} · ‖w‖ {fmt(row['weight_norm'], '.2f')} · "
            f"lr {row['lr_now']:.2e} · {row['epoch_seconds']:.2f}s · {row['status']}")


def train_one(study_path: str, sets: list[str], run_dir: str | None, device: str) -> int:
    from orchestrator.run import lock
    from orchestrator.run.directory import check_writable
    from orchestrator.run.sources import resolve_schedules
    from orchestrator.run.storage import RunDir
    from orchestrator.study.checks import require_cuda
    from orchestrator.study.load import single_trial

    study, cfg = single_trial(study_path, sets, resolve=resolve_schedules)
    if device == "gpu":
        require_cuda("--device gpu", "use --device cpu (or auto)")
    run = RunDir(str(Path(run_dir or Path("results") / "train" / cfg.trial_id).resolve()))
    check_writable(run)
    with lock.hold(run, "train"):  # a sweep, or another train, writing the same directory is refused
        return _train_locked(run, study, cfg, study_path, device)


def _train_locked(run, study, cfg, study_path: str, device: str) -> int:
    from orchestrator.run import manifest, records, results, trial
    from orchestrator.run.directory import prepare
    from trials.datasets import DataError

    prepare(run, study)  # refuses a directory holding another study's trials
    man = manifest.manifest(run, study, 1, None)
    manifest.write_manifest(run, man)
    print(f"trial {cfg.trial_id}: {cfg.model.arch} on {cfg.data.dataset}, {cfg.train.epochs} epochs → {run.location}",
          file=sys.stderr)

    def print_epoch(trials: list) -> None:
        if trials[0].trainer.rows:
            print(epoch_line(trials[0].trainer.rows[-1], cfg.train.epochs), flush=True)

    try:
        (done,) = trial.train(run, [cfg], device={"auto": None, "cpu": "cpu", "gpu": "cuda"}[device],
                              after_epoch=print_epoch)
    except DataError as e:
        raise UserError(study_path, str(e)) from None
    if done.warning:
        print(f"warning: {done.warning}", file=sys.stderr)
    results.consolidate(run)
    manifest.write_manifest(run, {**man, "finished": manifest.now()})
    final = records.read_result(run, cfg.trial_id) or {"evaluations": [], "status": done.trainer.status,
                                                        "epoch": done.trainer.epoch}
    for r in final["evaluations"]:
        print(f"final ({r['checkpoint']}, epoch {r['epoch']}, {r['examples']} test examples, fp32): clean "
              f"{fmt(r['clean_acc'])} · FGSM {fmt(r['fgsm_acc'])} · PGD {fmt(r['pgd_acc'])} · "
              f"AutoAttack {fmt(r['autoattack_acc'])}")
    print(f"{final['status']}: {final['epoch']} epochs → {run.location} (`decaylab report {run.location}`)",
          file=sys.stderr)
    return 0 if final["status"] == "ok" else 1
