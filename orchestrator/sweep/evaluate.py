"""`decaylab evaluate RUN_DIR`: AutoAttack and pruning on the kept checkpoints of a finished sweep.

Each finished trial keeps its final checkpoint, which holds its last weights and its best
weights (by val robust accuracy). Every trial is one task of the executor (a Ray task; in this
process with `--executor local`); its rows land in
`trials/<trial_id>/evaluation.json` the moment it finishes, tagged with a hash of the
evaluation settings, so a rerun skips what is done (idempotent, resumable), and the trial's
result parts are rebuilt so `evaluations.parquet` and the `autoattack_*` columns of
`trials.parquet` hold them.
"""

from __future__ import annotations

import sys

from orchestrator.errors import RunError
from orchestrator.run import lock, records, results, trial
from orchestrator.run.directory import check_writable
from orchestrator.run.storage import RunDir
from orchestrator.study.plan import threads
from orchestrator.study.schema import Study
from orchestrator.sweep.driver import check_device, check_gpu, resolve_device
from orchestrator.sweep.executor import Executor
from orchestrator.terminal import visible
from trials.config import EvalConfig, TrialConfig, config_hash


def whole_test_split(cfg: TrialConfig, test_size: int) -> TrialConfig:
    """`cfg` with the final evaluation (AutoAttack included) on every one of the `test_size` test examples."""
    ev = cfg.eval
    whole = ev.model_copy(update={"final_examples": test_size,
                                  "autoattack": ev.autoattack.model_copy(update={"examples": test_size})})
    return cfg.model_copy(update={"eval": whole})


def evaluate_one(run_location: str, trial_id: str, eval_section: dict, threads: int, device: str,
                 full_test: bool = False) -> dict:
    """Runs where the executor puts it: rebuild the trial's data and model, evaluate its best and last weights."""
    import torch

    from trials.evaluation import evaluate_weights

    torch.set_num_threads(threads)
    state, cfg, model, data = trial.finished_weights(RunDir(run_location), trial_id, EvalConfig.model_validate(
        eval_section), device)
    if full_test:
        cfg = whole_test_split(cfg, len(data.test))
    weights = [("last", state["epoch"], state["model"])]
    if state.get("best_model") is not None:
        weights.append(("best", state["best_epoch"], state["best_model"]))
    if state.get("ema_best_model") is not None:
        weights.append(("ema", state["ema_best_epoch"], state["ema_best_model"]))
    rows = evaluate_weights(cfg, model, weights, data, model_device(model))
    return {"trial_id": trial_id, "settings": settings_hash(eval_section, full_test), "rows": rows}


def model_device(model):
    return next(model.parameters()).device


def settings_hash(eval_section: dict, full_test: bool) -> str:
    return config_hash({**eval_section, "full_test": True} if full_test else eval_section)


def evaluate_run(run: RunDir, study: Study, *, executor: Executor, device: str, full_test: bool = False,
                 break_lock: bool = False) -> int:
    """Evaluate every finished trial of `run` with `study`'s evaluation settings (the run's, with the
    invocation's `eval.*` overrides), holding the run directory's lock (`orchestrator.run.lock`)."""
    check_device(device, executor)
    check_writable(run)
    with lock.hold(run, "evaluate", break_lock):
        return evaluate_locked(run, study, executor, device, full_test)


def evaluate_locked(run: RunDir, study: Study, executor: Executor, device: str, full_test: bool) -> int:
    section = study.eval.model_dump(mode="json")
    settings = settings_hash(section, full_test)
    finished = [tid for tid, s in results.trial_states(run).items() if s["status"] == "ok"]
    todo = [tid for tid in finished if (records.read_evaluation(run, tid) or {}).get("settings") != settings]
    if not todo:
        results.consolidate(run)
        print(f"nothing to evaluate: {len(finished)} finished trials already evaluated with these settings",
              file=sys.stderr)
        return 0
    resources = executor.start()
    use = resolve_device(device, resources, study)
    check_gpu(resources, use)
    print(f"evaluating {len(todo)} of {len(finished)} finished trials (AutoAttack: "
          f"{'on' if study.eval.autoattack.enabled else 'off'}, pruning: "
          f"{'on' if study.eval.pruning.enabled else 'off'}, examples: "
          f"{'the whole test split' if full_test else 'as the study says'}) → {run.location}", file=sys.stderr)
    failures = 0

    def on_done(index: int, record: dict | None, error: str | None) -> None:
        nonlocal failures
        tid = todo[index]
        if error is not None:
            failures += 1
            print(f"  {tid}: failed: {visible(error)}", file=sys.stderr)
            return
        records.write_evaluation(run, tid, record)
        results.export_trial(run, tid)
        aa = {r["checkpoint"]: r["autoattack_acc"] for r in record["rows"] if r["sparsity"] == 0.0}
        print(f"  {tid}: done (AutoAttack best {aa.get('best', float('nan')):.3f}, "
              f"last {aa.get('last', float('nan')):.3f})", file=sys.stderr)

    executor.run_tasks(evaluate_one, [(run.location, tid, section, threads(study), use, full_test) for tid in todo],
                       {"num_cpus": study.resources.cpu, "num_gpus": study.resources.gpu if use == "cuda" else 0},
                       on_done)
    executor.stop()
    results.consolidate(run)
    if failures:
        raise RunError(run.location, f"{failures} evaluation(s) failed", "rerun `decaylab evaluate` to retry them")
    return 0
