"""`decaylab sweep STUDY` and `decaylab resume RUN_DIR`."""

from __future__ import annotations

import sys

from orchestrator.cli import args as a


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "sweep", sweep, "run a study (grid or Optuna); finished trials are kept", epilog)
    a.study(sp)
    sp.add_argument("--storage", default="results", metavar="STORAGE", help="where run directories live: path or URI "
                    "(s3://, gs://); the run directory is <storage>/<study name> (default: results)")
    a.sets(sp, "override study keys, e.g. train.epochs=5 lr=[0.01,0.05]")
    a.large_grid(sp)
    a.report(sp)
    a.cluster(sp)
    a.break_lock(sp)

    sp = a.command(sub, "resume", resume, "finish an interrupted sweep (finished trials are not re-run)", epilog)
    a.run_dir(sp, "the run directory of the interrupted sweep")
    a.trust(sp)
    a.report(sp)
    a.cluster(sp)
    a.break_lock(sp)


def sweep(args) -> int:
    from orchestrator.run.directory import run_dir_for
    from orchestrator.run.sources import resolve_schedules
    from orchestrator.study.catalog import study_file
    from orchestrator.study.load import load_study
    from orchestrator.sweep.driver import run_study

    a.check_report(args)
    a.check_cluster(args)
    path = study_file(args.study)
    study = load_study(path, args.sets, allow_large_grid=args.allow_large_grid, resolve=resolve_schedules)
    run = run_dir_for(args.storage, study)
    status = run_study(study, run, executor=a.executor(args), device=args.device, source=str(path),
                       command=args.command, break_lock=args.break_lock)
    return maybe_report(args, run.location, status)


def resume(args) -> int:
    from orchestrator.sweep.driver import run_study

    a.check_report(args)
    a.check_cluster(args)
    run, study = a.continued(args)
    status = run_study(study, run, executor=a.executor(args), device=args.device, command=args.command,
                       break_lock=args.break_lock)
    return maybe_report(args, run.location, status)


def maybe_report(args, run_dir: str, status: int) -> int:
    from orchestrator.cli.report import write

    if args.report and status not in (130, 143):  # a stopped sweep reports when it has been resumed
        path = write(run_dir, args.report_dir, args.force)
        print(f"report: {path}", file=sys.stderr)
    return status
