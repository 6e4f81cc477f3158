"""`decaylab validate STUDY`: check a study file (and estimate its cost); start nothing."""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.cli import args as a
from orchestrator.errors import UserError

if TYPE_CHECKING:  # `validate` without --estimate never imports torch
    from orchestrator.study.schema import Study
    from orchestrator.sweep.estimate import Estimate

JSON_FIELDS = """--json prints one JSON object: ok (true, or false with error: where, reason, hint; the exit status
is then 2); file; study (its name, the run directory's name); search (grid|optuna); trials (of the tuning stage);
confirmation_trials; epochs (per trial); warnings (as text); trackers (where results are sent); estimate (with
--estimate, else null: trials, epochs, forward_equivalents, training_fraction, seconds (null: not known here),
gpu_hours (null unless from the FLOP model), how)."""


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "validate", validate, "check a study file; start nothing", epilog, fields=JSON_FIELDS)
    a.study(sp)
    a.sets(sp, "override study keys, as for `sweep`")
    a.large_grid(sp)
    sp.add_argument("--estimate", action="store_true", help="also print trials, epochs, forward passes and the "
                    "expected wall time (times a few training steps here: needs torch)")
    sp.add_argument("--mfu", type=a.utilisation, metavar="FRACTION", help="with --estimate, for a GPU study on a "
                    "machine without a GPU: the model FLOP utilisation to assume, in (0, 1] (default 0.36); with a "
                    "GPU here the time is measured")
    sp.add_argument("--gpus-per-node", type=a.count, metavar="N", help="with --cpus-per-node: warn when the "
                    "study's resources would leave GPUs of such a node idle")
    sp.add_argument("--cpus-per-node", type=a.count, metavar="N", help="the CPUs of that node")
    sp.add_argument("--json", action="store_true", help="print the result as one JSON object (fields below)")


@dataclass
class Checked:
    """What `validate` found: the study, where results go, what to look at, and its estimate."""

    study: Study
    trackers: list[str]
    warnings: list[str] = field(default_factory=list)
    estimate: Estimate | None = None


def validate(args) -> int:
    check_options(args)
    if not args.json:
        check(args)
        return 0
    try:
        checked = check(args, estimate=args.estimate, quiet=True)
    except UserError as e:
        error = {"where": e.where, "reason": e.reason, "hint": e.hint}
        print(json.dumps({"ok": False, "file": args.study, "error": error}, indent=1))
        return e.exit_status
    print(json.dumps(document(args, checked), indent=1, allow_nan=False))
    return 0


def check_options(args) -> None:
    if args.mfu is not None and not args.estimate:
        raise UserError("--mfu", "only applies to --estimate", "add --estimate, or drop --mfu")
    shape = {"--gpus-per-node": args.gpus_per_node, "--cpus-per-node": args.cpus_per_node}
    missing = [flag for flag, value in shape.items() if value is None]
    if len(missing) == 1:
        given = next(flag for flag in shape if flag not in missing)
        raise UserError(given, f"describes a node together with {missing[0]}", f"give {missing[0]} N too")


def check(args, estimate: bool = True, quiet: bool = False) -> Checked:
    """Load and check the study; unless `quiet`, print what `validate` says as it is found."""
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
    if args.mfu is not None and study.resources.gpu == 0:
        raise UserError("--mfu", "the study trains on CPUs (resources.gpu: 0): its time is measured here, not "
                        "modelled from FLOPs", "drop --mfu")
    checked = Checked(study, tracker_destinations(study), credential_warnings(study, os.environ))
    if problem is not None:
        checked.warnings.append(problem.message)
    if args.gpus_per_node is not None:
        idle = idle_gpus(study, args.gpus_per_node, args.cpus_per_node)
        checked.warnings += [idle] if idle else []
    if not quiet:
        print(f"{args.study}: ok — study {study.name!r}, {planned_count_text(study)}")
        for line in checked.trackers:
            print(f"tracker: {line}")
        for warning in checked.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    if estimate and args.estimate:
        from orchestrator.sweep.estimate import estimate as estimate_of

        checked.estimate = estimate_of(study, mfu=args.mfu)
        if args.mfu is not None and checked.estimate.gpu_hours is None:
            checked.warnings.append(f"--mfu {args.mfu:g}: not used: this machine's GPU was timed instead")
            if not quiet:
                print(f"warning: {checked.warnings[-1]}", file=sys.stderr)
        if not quiet:
            print(checked.estimate.text())
    return checked


def document(args, checked: Checked) -> dict:
    from orchestrator.study.plan import confirmation_trials, planned_trials

    study, e = checked.study, checked.estimate
    confirm = confirmation_trials(study)
    estimate = None if e is None else {
        "trials": e.trials, "epochs": e.epochs, "forward_equivalents": e.forward.total * e.trials,
        "training_fraction": e.forward.train / e.forward.total, "seconds": e.seconds, "gpu_hours": e.gpu_hours,
        "how": e.how}
    return {"ok": True, "file": args.study, "study": study.name, "search": study.search.kind,
            "trials": planned_trials(study) - confirm, "confirmation_trials": confirm, "epochs": study.train.epochs,
            "warnings": checked.warnings, "trackers": checked.trackers, "estimate": estimate}


def idle_gpus(study: Study, gpus: int, cpus: int) -> str | None:
    """Why the study's `resources` would leave GPUs of a node of `gpus` GPUs and `cpus` CPUs idle (and how to
    fill them), or None. Ray packs fractional GPUs within one GPU: ⌊1/gpu⌋ trials share each."""
    r = study.resources
    node = f"a node of {gpus} GPU{'s' if gpus > 1 else ''} and {cpus} CPUs"
    if r.gpu == 0:
        return (f"resources.gpu: 0: the trials train on CPUs, and the GPUs of {node} would stay idle "
                "(give resources.gpu, e.g. 0.25 to pack four trials on each GPU)")
    by_cpu = math.floor(cpus / r.cpu + 1e-9)
    by_gpu = gpus * math.floor(1 / r.gpu + 1e-9) if r.gpu <= 1 else math.floor(gpus / r.gpu + 1e-9)
    fit = min(by_cpu, by_gpu)
    if fit == 0:
        return (f"resources: a trial asks for {r.cpu:g} CPUs and {r.gpu:g} GPUs, more than {node} has: no trial "
                "would start there")
    used = fit * r.gpu
    if used >= gpus - 1e-9:
        return None
    bound = (f"CPU-bound: {cpus} CPUs / {r.cpu:g} per trial" if by_cpu < by_gpu
             else f"GPU-bound: {r.gpu:g} GPU per trial")
    if by_cpu < by_gpu:
        fill = math.floor(cpus / by_gpu * 100) / 100
        fix = f"give resources.cpu ≤ {fill:g} per trial: {by_gpu} trials then fill the {gpus} GPUs"
    elif r.gpu < 1:
        fix = f"give resources.gpu 1/n of a GPU, e.g. {1 / max(1, math.floor(1 / r.gpu)):.3g}"
    else:
        whole = max(d for d in range(1, gpus + 1) if gpus % d == 0 and d <= r.gpu)
        fix = f"give resources.gpu a divisor of {gpus}, e.g. {whole}"
    return (f"resources: {fit} trial{'s' if fit > 1 else ''} fit on {node} ({bound}), using {used:g} of its "
            f"{gpus} GPUs: {1 - used / gpus:.0%} idle; {fix}")
