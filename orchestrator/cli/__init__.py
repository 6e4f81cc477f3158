"""The `decaylab` command line. User mistakes print one clear message (exit 2), never a traceback."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import sys
import threading

from orchestrator import signals
from orchestrator.errors import RunError, UserError

EPILOG = "Study files: see studies/digits.yaml and `decaylab options` for every key."


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(expand_sets(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"decaylab {args.command}: error: {e.message}", file=sys.stderr)
        return e.exit_status
    except OSError as e:  # a full disk, lost permissions or an unreachable cluster: one line, no traceback
        print(f"decaylab {args.command}: error: {_os_error(args, e).message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"decaylab {args.command}: interrupted; finished trials are saved — "
              "`decaylab resume RUN_DIR` continues", file=sys.stderr)
        return 130


def _os_error(args, e: OSError) -> RunError:
    if isinstance(e, ConnectionError):
        return RunError(getattr(args, "address", None) or "RAY_ADDRESS", f"cannot reach the Ray cluster ({e})",
                        "check --address / RAY_ADDRESS, or leave both unset for a local cluster")
    where = e.filename or getattr(args, "run_dir", None) or getattr(args, "storage", None) or ""
    return RunError(str(where), f"cannot write or read it: {e.strerror or e}",
                    "free space or fix permissions there; finished results are kept, and "
                    "`decaylab resume RUN_DIR` continues the sweep")


def build_parser() -> argparse.ArgumentParser:
    from orchestrator.catalog import bundled

    p = argparse.ArgumentParser(prog="decaylab", description="Fixed vs adaptive weight decay studies under "
                                "adversarial training, on Ray Tune.", epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"decaylab {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, func, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, epilog=EPILOG)
        sp.set_defaults(func=func)
        return sp

    def study_arg(sp):
        sp.add_argument("study", help="study file (YAML), or the name of a bundled study: "
                        + ", ".join(sorted(bundled())))

    def run_dir_arg(sp, what="a run directory"):
        sp.add_argument("run_dir", help=f"{what}: <storage>/<study name> as `sweep` "
                        "printed it, or the --out directory of `decaylab train`")

    def sets_arg(sp, help_):
        sp.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help=f"{help_}; repeatable, and several may follow one --set (--set a=1 b=2)")

    def out_arg(sp, help_):
        sp.add_argument("--out", help=help_)

    def large_grid_arg(sp):
        sp.add_argument("--allow-large-grid", action="store_true", help="accept a grid of more than "
                        "10,000 trials (refused by default: usually a list where fewer values were meant)")

    def force_arg(sp):
        sp.add_argument("--force", action="store_true", help="write the report into a non-empty directory that "
                        "holds no earlier report (nothing there is removed)")

    def report_args(sp):
        sp.add_argument("--report", action="store_true", help="write the report when the sweep ends")
        out_arg(sp, "report directory (default reports/<study name>)")
        force_arg(sp)
        sp.add_argument("--report-out", dest="out", help=argparse.SUPPRESS)  # the former spelling

    def cluster_args(sp):
        sp.add_argument("--address", help="Ray cluster to join: auto, ray://host:10001, host:6379 "
                        "(default: RAY_ADDRESS, else a local cluster)")
        sp.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                        help="auto: GPU when the cluster has one and the study asks for it (default)")
        sp.add_argument("--num-cpus", type=int, help="CPUs of the local Ray cluster (default: all)")
        sp.add_argument("--dashboard", action="store_true", help="start Ray's dashboard on 127.0.0.1")

    sp = cmd("sweep", cmd_sweep, "run a study (grid or Optuna) on Ray Tune; finished trials are kept")
    study_arg(sp)
    sp.add_argument("--storage", default="results", help="where run directories live: path or URI "
                    "(s3://, gs://); the run directory is <storage>/<study name> (default: results)")
    sets_arg(sp, "override study keys, e.g. train.epochs=5 lr=[0.01,0.05]")
    large_grid_arg(sp)
    report_args(sp)
    cluster_args(sp)

    sp = cmd("resume", cmd_resume, "finish an interrupted sweep (finished trials are not re-run)")
    run_dir_arg(sp, "the run directory of the interrupted sweep")
    report_args(sp)
    cluster_args(sp)

    sp = cmd("status", cmd_status, "trials done / running / failed / diverged, without Ray")
    run_dir_arg(sp)

    sp = cmd("train", cmd_train, "one trial in this process (no Ray), for debugging")
    study_arg(sp)
    sets_arg(sp, "method=<arm> lam=|lambda_awd=<value> seed=<n> label_noise=<r> and study keys")
    out_arg(sp, "run directory to write (default results/train/<trial id>); `status`, `report`, `evaluate` "
            "and `export` read it")
    sp.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                    help="auto: CUDA when this machine has it (default)")

    sp = cmd("report", cmd_report, "tables, figures and report.md from a run directory")
    run_dir_arg(sp)
    out_arg(sp, "report directory (default reports/<study name>)")
    force_arg(sp)

    sp = cmd("validate", cmd_validate, "check a study file; start nothing")
    study_arg(sp)
    sets_arg(sp, "override study keys, as for `sweep`")
    large_grid_arg(sp)
    sp.add_argument("--estimate", action="store_true", help="also print trials, epochs, forward passes and the "
                    "expected wall time (times a few training steps here: needs torch)")
    sp.add_argument("--mfu", type=float, help="--estimate of a GPU study on a machine without a GPU: the model "
                    "FLOP utilisation to assume (default 0.36); with a GPU here the time is measured")

    sp = cmd("evaluate", cmd_evaluate, "AutoAttack / pruning on the kept checkpoints of a finished sweep")
    run_dir_arg(sp)
    sets_arg(sp, "evaluation keys, e.g. eval.autoattack.enabled=true eval.pruning.enabled=true")
    sp.add_argument("--full-test", action="store_true", help="evaluate on the whole test set "
                    "(eval.final_examples and eval.autoattack.examples = the test split's size)")
    cluster_args(sp)

    sp = cmd("export", cmd_export, "a trained model as a standalone state dict plus a JSON sidecar")
    run_dir_arg(sp)
    pick = sp.add_mutually_exclusive_group(required=True)
    pick.add_argument("--trial", metavar="ID", help="the trial to export (its id, as `decaylab status` lists it)")
    pick.add_argument("--best", metavar="ARM", help="export the arm's best-tuned trial (see README: "
                      "Loading a trained model)")
    sp.add_argument("--checkpoint", choices=["best", "last"], default="best",
                    help="best: the weights of the best validation epoch (default); last: the final weights")
    sp.add_argument("--out", required=True, help="model file to write (e.g. model.pt); its JSON sidecar is "
                    "written beside it (model.json)")

    cmd("options", cmd_options, "every study-file key with its default and meaning")
    cmd("schema", cmd_schema, "the JSON Schema of study files (for editors: YAML language server)")
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("decaylab")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def expand_sets(argv: list[str]) -> list[str]:
    """`--set a=1 b=2 STUDY` → `--set a=1 --set b=2 STUDY`: the words after a --set that look like
    KEY=VALUE are overrides, the first one that does not is a positional again."""
    out: list[str] = []
    taking = False  # after a --set and its value
    for i, word in enumerate(argv):
        if word == "--":
            out += argv[i:]
            break
        if taking and "=" in word and not word.startswith("-"):
            out.append("--set")
        taking = (taking or (i > 0 and argv[i - 1] == "--set")) and "=" in word and not word.startswith("-")
        out.append(word)
    return out


# ------------------------------------------------------------------------------ commands


def cmd_validate(args) -> int:
    from orchestrator.catalog import study_file
    from orchestrator.spec import check_machine, data_problem, expand_grid, load_study, planned_count_text

    path = study_file(args.study)
    study = load_study(path, args.sets, check_data=False, allow_large_grid=args.allow_large_grid)
    # a dataset not fetched yet is a warning here (the file is fine); `sweep` refuses it
    problem = data_problem(study, path)
    check_machine(study, path, data_root=problem is None)
    n = len(expand_grid(study)) if study.search.kind == "grid" else None
    print(f"{args.study}: ok — study {study.name!r}, {planned_count_text(study, n)}")
    if problem is not None:
        print(f"warning: {problem.message}", file=sys.stderr)
    if args.estimate:
        from orchestrator.estimate import estimate_text

        print(estimate_text(study, mfu=args.mfu))
    return 0


def cmd_schema(args) -> int:
    import json

    from orchestrator.spec import study_schema

    print(json.dumps(study_schema(), indent=2))
    return 0


def cmd_export(args) -> int:
    from orchestrator.export import export

    return export(args.run_dir, trial=args.trial, best=args.best, checkpoint=args.checkpoint, out=args.out)


def cmd_sweep(args) -> int:
    from orchestrator.catalog import study_file
    from orchestrator.spec import load_study
    from orchestrator.sweep import run_dir_for, run_study

    path = study_file(args.study)
    study = load_study(path, args.sets, allow_large_grid=args.allow_large_grid)
    run = run_dir_for(args.storage, study)
    status = run_study(study, run, address=args.address, device=args.device, num_cpus=args.num_cpus,
                       dashboard=args.dashboard, source=str(path))
    return _maybe_report(args, run.location, status)


def cmd_resume(args) -> int:
    from orchestrator.sweep import open_run, run_study

    run, study = open_run(args.run_dir)
    status = run_study(study, run, address=args.address, device=args.device, num_cpus=args.num_cpus,
                       dashboard=args.dashboard)
    return _maybe_report(args, run.location, status)


def _maybe_report(args, run_dir: str, status: int) -> int:
    if args.report and status not in (130, 143):  # a stopped sweep reports when it has been resumed
        path = _write_report(run_dir, args.out, args.force)
        print(f"report: {path}", file=sys.stderr)
    return status


def _write_report(run_dir: str, out: str | None, force: bool = False):
    """The report of `run_dir`; damaged result files and a refused --out are clear errors, not tracebacks."""
    import pyarrow

    from analysis.load import ResultsError
    from analysis.output import OutputError
    from analysis.report import write_report

    try:
        return write_report(run_dir, out, force=force)
    except OutputError as e:  # "<dir>: what is wrong; what to do"
        reason, _, hint = str(e).partition("; ")
        raise UserError("", reason, hint or None) from None
    except (ResultsError, pyarrow.ArrowException) as e:  # the message names the file and what is wrong
        raise RunError("", str(e)[:400], "a damaged result file (epochs/trials/evaluations.parquet) is "
                       "rebuilt from the trial records by `decaylab resume RUN_DIR`") from None


def cmd_status(args) -> int:
    from orchestrator.status import status_text
    from orchestrator.sweep import open_run

    run, _ = open_run(args.run_dir, check_data=False)
    print(status_text(run))
    return 0


def cmd_report(args) -> int:
    from orchestrator import records, results
    from orchestrator.storage import local_copy
    from orchestrator.sweep import open_run

    run, _ = open_run(args.run_dir, check_data=False)
    # trials that ended since the last consolidation (a sweep still running, or killed) join in; a run
    # directory this user may only read is reported from its files as they are
    if records.trial_ids(run):
        with contextlib.suppress(OSError):
            results.consolidate(run)
    if not run.exists("trials.parquet"):
        raise UserError(args.run_dir, "no results yet (trials.parquet is missing)",
                        "wait for the first trial to finish, or run `decaylab resume`")
    # said before the analysis and plotting libraries are imported (about a second): the report has begun
    print(f"report: reading {run.location}", file=sys.stderr, flush=True)
    with local_copy(run) as run_dir:  # the analysis reads local files: an object store's are fetched
        path = _write_report(run_dir, args.out, args.force)
    print(f"report: {path}")
    return 0


def cmd_options(args) -> int:
    from orchestrator.spec import documented_options

    for key, default, doc in documented_options():
        print(f"{key:34s} {default:28s} {doc}")
    return 0


def cmd_train(args) -> int:
    from orchestrator.catalog import study_file
    from orchestrator.train_cli import train_one

    return train_one(study_file(args.study), args.sets, args.out, args.device)


def cmd_evaluate(args) -> int:
    from orchestrator.evaluate import evaluate_run

    return evaluate_run(args.run_dir, args.sets, address=args.address, device=args.device,
                        num_cpus=args.num_cpus, full_test=args.full_test)


def run() -> None:
    """The `decaylab` command: `main`, then exit. After a command that imported torch or Ray, the
    interpreter's own teardown of their modules takes seconds (about 3 s after a sweep on a 2-core
    machine) and keeps nothing: so once everything registered to run at exit has run (Ray's shutdown,
    the trackers' flushes, logging's) and the output is flushed, the process ends at once. Not while a
    thread the interpreter would wait for is still running: then it exits as usual."""
    status = main()
    heavy = "torch" in sys.modules or "ray" in sys.modules
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if not heavy or others:
        sys.exit(status)
    # the handlers the interpreter would run at exit, run now: CPython's atexit has no public name for
    # this (it has been `_run_exitfuncs` since Python 3.0); os._exit below would skip them
    atexit._run_exitfuncs()
    signals.exit_now(status)


if __name__ == "__main__":
    run()
