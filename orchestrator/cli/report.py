"""`decaylab report RUN_DIR`: tables, figures, report.md/html and summary.json."""

from __future__ import annotations

import contextlib
import sys

from orchestrator.cli import args as a
from orchestrator.errors import RunError, UserError


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "report", report, "tables, figures and report.md from a run directory", epilog)
    a.run_dir(sp)
    a.report_dir(sp)
    a.force(sp)


def report(args) -> int:
    from orchestrator.run import lock, records, results
    from orchestrator.run.directory import open_run
    from orchestrator.run.layout import TRIALS_TABLE
    from orchestrator.run.storage import local_copy
    from orchestrator.terminal import visible

    run, _ = open_run(args.run_dir, check_data=False)
    # trials that ended since the last consolidation (a sweep killed, a trial's part without its file) join in,
    # unless another decaylab writes the run directory now (it consolidates itself) or this user may only read it
    if records.trial_ids(run):
        with lock.try_hold(run, "report") as busy:
            if busy is None:
                with contextlib.suppress(OSError):
                    results.consolidate(run)
            else:
                print(visible(f"report: {busy}: reporting from its result files as they are (trials that ended "
                              "since they were last written are not in them)"), file=sys.stderr)
    if not run.exists(TRIALS_TABLE):
        raise UserError(args.run_dir, f"no results yet ({TRIALS_TABLE} is missing)",
                        "wait for the first trial to finish, or run `decaylab resume`")
    # said before the analysis and plotting libraries are imported (about a second): the report has begun
    print(f"report: reading {run.location}", file=sys.stderr, flush=True)
    with local_copy(run) as run_dir:  # the analysis reads local files: an object store's are fetched
        path = write(run_dir, args.report_dir, args.force)
    print(f"report: {path}")
    return 0


def write(run_dir: str, out: str | None, force: bool = False):
    """The report of `run_dir`; damaged result files and a refused --report-dir are clear errors, not tracebacks."""
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
