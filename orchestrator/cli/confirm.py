"""`decaylab confirm RUN_DIR`: add (or extend) a confirmation stage to an existing run."""

from __future__ import annotations

import sys

from orchestrator.cli import args as a
from orchestrator.cli.sweep import maybe_report


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "confirm", confirm, "train each arm's selected configuration on fresh seeds (the "
                   "confirmation stage) in an existing run directory; resumes like a sweep", epilog)
    a.run_dir(sp, "the run directory whose tuning stage has finished")
    sp.add_argument("--seeds", type=a.count, metavar="N", help="confirmation seeds: the N seeds after the largest "
                    "tuning seed (default: the study's confirm.seeds, else 10); more than before extends it")
    sp.add_argument("--vary-split", action="store_true", help="each confirmation seed draws its own train/validation "
                    "split and test subset (only when the run has no confirmation yet)")
    a.trust(sp)
    a.report(sp)
    a.cluster(sp)
    a.break_lock(sp)


def confirm(args) -> int:
    from orchestrator.errors import UserError
    from orchestrator.study.load import study_from_dict
    from orchestrator.study.plan import confirmation_seeds
    from orchestrator.sweep.driver import run_study

    a.check_report(args)
    a.check_cluster(args)
    run, study = a.continued(args)
    old = study.confirm
    if old is not None and args.vary_split and not old.vary_split:
        raise UserError("--vary-split", "this run's confirmation already uses the study's split",
                        "a confirmation's splits cannot change once it has trials: confirm into a new run directory")
    seeds = args.seeds if args.seeds is not None else (old.seeds if old is not None else 10)
    vary = args.vary_split or bool(old and old.vary_split)
    raw = {**study.to_dict(), "confirm": {"seeds": seeds, "vary_split": vary}}
    study = study_from_dict(raw, run.uri("study.yaml"))
    print(f"confirm: seeds {list(confirmation_seeds(study))} for each arm's selected configuration → {run.location}",
          file=sys.stderr)
    status = run_study(study, run, executor=a.executor(args), device=args.device, command=args.command,
                       break_lock=args.break_lock)
    return maybe_report(args, run.location, status)
