"""The `decaylab` command line. User mistakes print one clear message (exit 2), never a traceback."""

from __future__ import annotations

import argparse
import sys

from orchestrator.errors import RunError, UserError

EPILOG = "Study files: see studies/digits.yaml and `decaylab options` for every key."


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
    p = argparse.ArgumentParser(prog="decaylab", description="Fixed vs adaptive weight decay studies under "
                                "adversarial training, on Ray Tune.", epilog=EPILOG)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, func, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=func)
        return sp

    def cluster_args(sp):
        sp.add_argument("--address", help="Ray cluster to join: auto, ray://host:10001, host:6379 "
                        "(default: RAY_ADDRESS, else a local cluster)")
        sp.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                        help="auto: GPU when the cluster has one and the study asks for it (default)")
        sp.add_argument("--num-cpus", type=int, help="CPUs of the local Ray cluster (default: all)")
        sp.add_argument("--dashboard", action="store_true", help="start Ray's dashboard on 127.0.0.1")

    sp = cmd("sweep", cmd_sweep, "run a study (grid or Optuna) on Ray Tune; finished trials are kept")
    sp.add_argument("study", help="study file (YAML)")
    sp.add_argument("--storage", default="results", help="where run directories live: path or URI "
                    "(s3://, gs://); the run directory is <storage>/<study name> (default: results)")
    sp.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="override study keys, e.g. train.epochs=5 lr=[0.01,0.05]")
    sp.add_argument("--report", action="store_true", help="write the report when the sweep ends")
    sp.add_argument("--report-out", help="report directory (default reports/<study name>)")
    cluster_args(sp)

    sp = cmd("resume", cmd_resume, "finish an interrupted sweep (finished trials are not re-run)")
    sp.add_argument("run_dir")
    sp.add_argument("--report", action="store_true", help="write the report when the sweep ends")
    sp.add_argument("--report-out")
    cluster_args(sp)

    sp = cmd("status", cmd_status, "trials done / running / failed / diverged, without Ray")
    sp.add_argument("run_dir")

    sp = cmd("train", cmd_train, "one trial in this process (no Ray), for debugging")
    sp.add_argument("study")
    sp.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="method=<arm> lam=|lambda_awd=<value> seed=<n> label_noise=<r> and study keys")
    sp.add_argument("--out", help="directory for epochs.parquet and the checkpoints "
                    "(default results/train/<trial id>)")
    sp.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")

    sp = cmd("report", cmd_report, "tables, figures and report.md from a run directory")
    sp.add_argument("run_dir")
    sp.add_argument("--out", help="report directory (default reports/<study name>)")

    sp = cmd("validate", cmd_validate, "check a study file; start nothing")
    sp.add_argument("study")
    sp.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE")

    sp = cmd("evaluate", cmd_evaluate, "AutoAttack / pruning on the kept checkpoints of a finished sweep")
    sp.add_argument("run_dir")
    sp.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="evaluation keys, e.g. eval.autoattack.enabled=true eval.pruning.enabled=true")
    cluster_args(sp)

    cmd("options", cmd_options, "every study-file key with its default and meaning")
    return p


# ------------------------------------------------------------------------------ commands


def cmd_validate(args) -> int:
    from orchestrator.spec import expand_grid, load_study, planned_count_text

    study = load_study(args.study, args.sets)
    n = len(expand_grid(study)) if study.search.kind == "grid" else None
    print(f"{args.study}: ok — study {study.name!r}, {planned_count_text(study, n)}")
    return 0


def cmd_sweep(args) -> int:
    from orchestrator.spec import load_study
    from orchestrator.sweep import run_dir_for, run_study

    study = load_study(args.study, args.sets)
    run = run_dir_for(args.storage, study)
    status = run_study(study, run, address=args.address, device=args.device, num_cpus=args.num_cpus,
                       dashboard=args.dashboard)
    return _maybe_report(args, run.location, status)


def cmd_resume(args) -> int:
    from orchestrator.sweep import open_run, run_study

    run, study = open_run(args.run_dir)
    status = run_study(study, run, address=args.address, device=args.device, num_cpus=args.num_cpus,
                       dashboard=args.dashboard)
    return _maybe_report(args, run.location, status)


def _maybe_report(args, run_dir: str, status: int) -> int:
    if args.report:
        path = _write_report(run_dir, args.report_out)
        print(f"report: {path}", file=sys.stderr)
    return status


def _write_report(run_dir: str, out: str | None):
    """The report of `run_dir`; damaged result files are a clear error, not a traceback."""
    import pyarrow

    from analysis.load import ResultsError
    from analysis.report import write_report

    try:
        return write_report(run_dir, out)
    except (ResultsError, pyarrow.ArrowException) as e:
        raise RunError(run_dir, f"the result files cannot be read: {str(e)[:300]}",
                       "`decaylab resume RUN_DIR` rebuilds the parquet files from the checkpoints; "
                       "a damaged manifest.json can be deleted") from None


def cmd_status(args) -> int:
    from orchestrator.status import status_text
    from orchestrator.sweep import open_run

    run, _ = open_run(args.run_dir, check_data=False)
    print(status_text(run))
    return 0


def cmd_report(args) -> int:
    from orchestrator.sweep import open_run

    run, _ = open_run(args.run_dir, check_data=False)
    if not run.exists("trials.parquet"):
        raise UserError(args.run_dir, "no results yet (trials.parquet is missing)",
                        "wait for the first trial to finish, or run `decaylab resume`")
    path = _write_report(run.location, args.out)
    print(f"report: {path}")
    return 0


def cmd_options(args) -> int:
    from orchestrator.spec import documented_options

    for key, default, doc in documented_options():
        print(f"{key:34s} {default:28s} {doc}")
    return 0


def cmd_train(args) -> int:
    from orchestrator.train_cli import train_one

    return train_one(args.study, args.sets, args.out, args.device)


def cmd_evaluate(args) -> int:
    from orchestrator.evaluate import evaluate_run

    return evaluate_run(args.run_dir, args.sets, address=args.address, device=args.device,
                        num_cpus=args.num_cpus)


if __name__ == "__main__":
    sys.exit(main())
