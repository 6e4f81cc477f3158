"""`decaylab evaluate RUN_DIR`: AutoAttack and pruning on the kept checkpoints of a finished sweep.

Each finished trial's latest checkpoint holds its last weights and its best weights (by val
robust accuracy). Every trial is one Ray task; its rows land in
`RUN_DIR/evaluations/<trial_id>.json` the moment it finishes, tagged with a hash of the
evaluation settings, so a rerun skips what is done (idempotent, resumable) and the export
merges them into `evaluations.parquet` and the `autoattack_*` columns of `trials.parquet`.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import yaml

from orchestrator import results
from orchestrator.checkpoints import load_first_good
from orchestrator.errors import RunError, UserError
from orchestrator.spec import apply_overrides, study_from_dict
from orchestrator.storage import RunDir
from trials.config import TrialConfig, config_hash


def eval_settings(run: RunDir, sets: list[str]):
    """The run's study with evaluation overrides (only `eval.*` keys may change)."""
    bad = [s for s in sets if not s.split("=", 1)[0].strip().startswith("eval.")]
    if bad:
        raise UserError(f"--set {bad[0]}", "evaluate only changes evaluation settings",
                        "use keys under eval., e.g. eval.autoattack.enabled=true eval.pruning.enabled=true")
    raw = yaml.safe_load(run.read_text("study.yaml"))
    return study_from_dict(apply_overrides(raw, sets), f"{run.uri('study.yaml')} with --set")


def evaluate_one(run_location: str, parts: list[str], eval_section: dict, threads: int, device: str) -> dict:
    """Runs in a Ray worker: rebuild the trial's data and model, evaluate its best and last weights."""
    import torch

    from trials.config import EvalConfig, from_plain
    from trials.evaluation import evaluate_weights
    from trials.train import build_trainer

    torch.set_num_threads(threads)
    run = RunDir(run_location)
    loaded = load_first_good(run, [tuple(parts)])
    if loaded is None:
        raise RuntimeError(f"checkpoint {'/'.join(parts)} cannot be read")
    state = loaded[0]
    cfg = dataclasses.replace(TrialConfig.from_dict(state["config"]), eval=from_plain(EvalConfig, eval_section))
    tr = build_trainer(cfg, device)
    rows = evaluate_weights(cfg, tr.model, state["model"], tr.data, "last", state["epoch"], tr.device, tr.autocast)
    if state.get("best_model") is not None:
        rows += evaluate_weights(cfg, tr.model, state["best_model"], tr.data, "best", state["best_epoch"],
                                 tr.device, tr.autocast)
    return {"trial_id": cfg.trial_id, "settings": config_hash(eval_section), "rows": rows}


def evaluate_run(location: str, sets: list[str], *, address: str | None, device: str,
                 num_cpus: int | None = None) -> int:
    from orchestrator.sweep import check_writable, decide_device, open_run, resolve_device

    run, _ = open_run(location)
    study = eval_settings(run, sets)
    section = dataclasses.asdict(study.eval)
    settings = config_hash(section)
    decide_device(device, address)
    check_writable(run)
    scanner = results.Scanner(run)
    candidates = scanner.candidates()
    todo = []
    for tid, found in sorted(candidates.items()):
        summary = scanner.summary(*found[0][2])
        if summary["status"] != "ok":
            continue
        done = _existing(run, tid)
        if done is not None and done.get("settings") == settings:
            continue
        todo.append((tid, list(found[0][2])))
    finished = sum(1 for c in candidates.values() if scanner.summary(*c[0][2])["status"] == "ok")
    if not todo:
        results.export(scanner)
        print(f"nothing to evaluate: {finished} finished trials already evaluated with these settings",
              file=sys.stderr)
        return 0
    from orchestrator import tune_backend as tb

    resources = tb.connect(address, num_cpus=num_cpus)
    use = resolve_device(device, resources, study)
    tb.check_gpu(resources, use)
    threads = study.resources.torch_threads or max(1, int(study.resources.cpu))
    print(f"evaluating {len(todo)} of {finished} finished trials (AutoAttack: "
          f"{'on' if study.eval.autoattack.enabled else 'off'}, pruning: "
          f"{'on' if study.eval.pruning.enabled else 'off'}) → {run.location}", file=sys.stderr)
    failures = 0

    def on_done(index: int, record: dict | None, error: str | None) -> None:
        nonlocal failures
        tid = todo[index][0]
        if error is not None:
            failures += 1
            print(f"  {tid}: failed: {error}", file=sys.stderr)
            return
        run.write_atomic(json.dumps(record, default=str).encode(), "evaluations", f"{tid}.json")
        results.export(scanner)
        aa = {r["checkpoint"]: r["autoattack_acc"] for r in record["rows"] if r["sparsity"] == 0.0}
        print(f"  {tid}: done (AutoAttack best {aa.get('best', float('nan')):.3f}, "
              f"last {aa.get('last', float('nan')):.3f})", file=sys.stderr)

    tb.run_tasks(evaluate_one, [(run.location, parts, section, threads, use) for _, parts in todo],
                 {"num_cpus": study.resources.cpu, "num_gpus": study.resources.gpu if use == "cuda" else 0},
                 on_done)
    results.export(scanner)
    if failures:
        raise RunError(run.location, f"{failures} evaluation(s) failed", "rerun `decaylab evaluate` to retry them")
    return 0


def _existing(run: RunDir, trial_id: str) -> dict | None:
    try:
        return json.loads(run.read_text("evaluations", f"{trial_id}.json"))
    except (OSError, ValueError):
        return None
