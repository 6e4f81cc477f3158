"""`decaylab evaluate RUN_DIR`: AutoAttack and pruning on the kept checkpoints of a finished sweep.

Each finished trial keeps its final checkpoint, which holds its last weights and its best
weights (by val robust accuracy). Every trial is one Ray task; its rows land in
`trials/<trial_id>/evaluation.json` the moment it finishes, tagged with a hash of the
evaluation settings, so a rerun skips what is done (idempotent, resumable), and the trial's
result parts are rebuilt so `evaluations.parquet` and the `autoattack_*` columns of
`trials.parquet` hold them.
"""

from __future__ import annotations

import sys

from orchestrator import records, results
from orchestrator.errors import RunError, UserError
from orchestrator.spec import apply_overrides, study_from_dict
from orchestrator.storage import RunDir
from trials.config import EvalConfig, TrialConfig, config_hash


def eval_settings(run: RunDir, sets: list[str]):
    """The run's study with evaluation overrides (only `eval.*` keys may change)."""
    bad = [s for s in sets if not s.split("=", 1)[0].strip().startswith("eval.")]
    if bad:
        raise UserError(f"--set {bad[0]}", "evaluate only changes evaluation settings",
                        "use keys under eval., e.g. eval.autoattack.enabled=true eval.pruning.enabled=true")
    from orchestrator.sweep import recorded_study

    raw = recorded_study(run).to_dict()
    return study_from_dict(apply_overrides(raw, sets), f"{run.uri('study.yaml')} with --set")


def whole_test_split(cfg: TrialConfig, test_size: int) -> TrialConfig:
    """`cfg` with the final evaluation (AutoAttack included) on every one of the `test_size` test examples."""
    ev = cfg.eval
    whole = ev.model_copy(update={"final_examples": test_size,
                                  "autoattack": ev.autoattack.model_copy(update={"examples": test_size})})
    return cfg.model_copy(update={"eval": whole})


def evaluate_one(run_location: str, trial_id: str, eval_section: dict, threads: int, device: str,
                 full_test: bool = False) -> dict:
    """Runs in a Ray worker: rebuild the trial's data and model, evaluate its best and last weights."""
    import torch

    from trials.evaluation import evaluate_weights
    from trials.train import build_trainer

    torch.set_num_threads(threads)
    run = RunDir(run_location)

    def loaded(state: dict | None):
        """The checkpoint with a model its weights load into (a damaged one falls back to the one before)."""
        if state is None:
            return None
        cfg = TrialConfig.from_dict(state["config"]).model_copy(
            update={"eval": EvalConfig.model_validate(eval_section)})
        tr = build_trainer(cfg, device)
        for key in ("model", "best_model"):
            if state.get(key) is not None or key == "model":
                tr.model.load_state_dict(state[key])
        return state, cfg, tr

    found, warning = records.load_checkpoint(run, trial_id, loaded)
    if found is None:
        raise RuntimeError(f"no usable checkpoint of {trial_id} in {records.TRIALS}/{trial_id}/ ({warning or 'none'})")
    state, cfg, tr = found
    if full_test:
        cfg = whole_test_split(cfg, len(tr.data.test))
    weights = [("last", state["epoch"], state["model"])]
    if state.get("best_model") is not None:
        weights.append(("best", state["best_epoch"], state["best_model"]))
    rows = evaluate_weights(cfg, tr.model, weights, tr.data, tr.device)
    return {"trial_id": trial_id, "settings": settings_hash(eval_section, full_test), "rows": rows}


def settings_hash(eval_section: dict, full_test: bool) -> str:
    return config_hash({**eval_section, "full_test": True} if full_test else eval_section)


def evaluate_run(location: str, sets: list[str], *, address: str | None, device: str,
                 num_cpus: int | None = None, full_test: bool = False) -> int:
    from orchestrator.sweep import check_writable, decide_device, open_run, resolve_device

    run, _ = open_run(location)
    study = eval_settings(run, sets)
    section = study.eval.model_dump(mode="json")
    settings = settings_hash(section, full_test)
    decide_device(device, address)
    check_writable(run)
    finished = [tid for tid, s in results.trial_states(run).items() if s["status"] == "ok"]
    todo = [tid for tid in finished if (records.read_evaluation(run, tid) or {}).get("settings") != settings]
    if not todo:
        results.consolidate(run)
        print(f"nothing to evaluate: {len(finished)} finished trials already evaluated with these settings",
              file=sys.stderr)
        return 0
    from orchestrator import tune_backend as tb

    resources = tb.connect(address, num_cpus=num_cpus)
    use = resolve_device(device, resources, study)
    tb.check_gpu(resources, use)
    threads = study.resources.torch_threads or max(1, int(study.resources.cpu))
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
            print(f"  {tid}: failed: {error}", file=sys.stderr)
            return
        records.write_evaluation(run, tid, record)
        results.export_trial(run, tid)
        aa = {r["checkpoint"]: r["autoattack_acc"] for r in record["rows"] if r["sparsity"] == 0.0}
        print(f"  {tid}: done (AutoAttack best {aa.get('best', float('nan')):.3f}, "
              f"last {aa.get('last', float('nan')):.3f})", file=sys.stderr)

    tb.run_tasks(evaluate_one, [(run.location, tid, section, threads, use, full_test) for tid in todo],
                 {"num_cpus": study.resources.cpu, "num_gpus": study.resources.gpu if use == "cuda" else 0},
                 on_done)
    tb.disconnect()
    results.consolidate(run)
    if failures:
        raise RunError(run.location, f"{failures} evaluation(s) failed", "rerun `decaylab evaluate` to retry them")
    return 0
