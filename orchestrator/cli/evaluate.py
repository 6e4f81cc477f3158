"""`decaylab evaluate RUN_DIR`: AutoAttack and pruning on a finished sweep's kept checkpoints."""

from __future__ import annotations

from orchestrator.cli import args as a


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "evaluate", evaluate, "AutoAttack / pruning on the kept checkpoints of a finished sweep",
                   epilog)
    a.run_dir(sp)
    sp.add_argument("--trust-run-config", action="store_true", help="use the run directory's own dataset "
                    "download setting (after checking it)")
    a.sets(sp, "evaluation keys, e.g. eval.autoattack.enabled=true eval.pruning.enabled=true (and data.root)")
    sp.add_argument("--full-test", action="store_true", help="evaluate on the whole test set "
                    "(eval.final_examples and eval.autoattack.examples = the test split's size)")
    a.cluster(sp)
    a.break_lock(sp)


def evaluate(args) -> int:
    from orchestrator.sweep.evaluate import evaluate_run

    a.check_cluster(args)
    run, study = a.continued(args, allowed=("eval.", "data.root", "data.download"))
    return evaluate_run(run, study, executor=a.executor(args), device=args.device, full_test=args.full_test,
                        break_lock=args.break_lock)
