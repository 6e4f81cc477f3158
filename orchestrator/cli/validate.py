"""`decaylab validate STUDY`: check a study file (and estimate its cost); start nothing."""

from __future__ import annotations

import os
import sys

from orchestrator.cli import args as a


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "validate", validate, "check a study file; start nothing", epilog)
    a.study(sp)
    a.sets(sp, "override study keys, as for `sweep`")
    a.large_grid(sp)
    sp.add_argument("--estimate", action="store_true", help="also print trials, epochs, forward passes and the "
                    "expected wall time (times a few training steps here: needs torch)")
    sp.add_argument("--mfu", type=float, help="--estimate of a GPU study on a machine without a GPU: the model "
                    "FLOP utilisation to assume (default 0.36); with a GPU here the time is measured")


def validate(args) -> int:
    from orchestrator.run.sources import resolve_schedules
    from orchestrator.study.catalog import study_file
    from orchestrator.study.checks import check_machine, credential_warnings, data_problem, tracker_destinations
    from orchestrator.study.load import load_study
    from orchestrator.study.plan import planned_count_text

    path = study_file(args.study)
    study = load_study(path, args.sets, check_data=False, allow_large_grid=args.allow_large_grid,
                       resolve=resolve_schedules)
    # a dataset not fetched yet is a warning here (the file is fine); `sweep` refuses it
    problem = data_problem(study, path)
    check_machine(study, path, data_root=problem is None)
    print(f"{args.study}: ok — study {study.name!r}, {planned_count_text(study)}")
    for line in tracker_destinations(study):
        print(f"tracker: {line}")
    for warning in credential_warnings(study, os.environ):
        print(f"warning: {warning}", file=sys.stderr)
    if problem is not None:
        print(f"warning: {problem.message}", file=sys.stderr)
    if args.estimate:
        from orchestrator.sweep.estimate import estimate

        print(estimate(study, mfu=args.mfu).text())
    return 0
