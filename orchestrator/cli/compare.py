"""`decaylab compare RUN_DIR…`: every arm against a reference arm across several studies (and noise levels).

Each run directory × label-noise level is a stratum; within it the per-seed values are exactly those of that
run's report. Per arm: P(arm > reference) averaged over the strata, the mean and IQM of the paired difference,
stratified bootstrap intervals Bonferroni-adjusted over the arms, and a verdict (`analysis.across`). Writes
compare.md, compare.html, compare.json, figures/ and tables/ into --report-dir. The result files are read as they
are (run `decaylab report` first to fold in trials that ended since they were last written).
"""

from __future__ import annotations

import sys

from orchestrator.cli import args as a
from orchestrator.errors import RunError, UserError


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "compare", compare, "compare arms with a reference arm across several run directories",
                   epilog)
    sp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (<storage>/<study name>); each "
                    "one × label-noise level is a stratum")
    sp.add_argument("--reference", metavar="ARM", help="the arm every other arm is compared with (default: the "
                    "studies' own reference, when they share one)")
    sp.add_argument("--metric", choices=["pgd_acc", "autoattack_acc", "clean_acc"], help="accuracy compared "
                    "(default: each report's headline metric, pgd_acc for adversarial training)")
    sp.add_argument("--checkpoint", choices=["best", "last", "ema"], default="best", help="checkpoint whose "
                    "final evaluation is compared (default best, the report's headline)")
    a.report_dir(sp, "reports/compare-<study>-<study>…")
    sp.add_argument("--meaningful", type=float, default=0.75, metavar="γ", help="P(arm > reference) whose "
                    "interval lies above γ is 'meaningfully better' (below 1 − γ: worse); default 0.75")
    sp.add_argument("--resample-strata", action="store_true", help="also resample the strata in the bootstrap "
                    "(a claim about studies like these, not only these)")
    sp.add_argument("--allow-mixed", action="store_true", help="compare runs with different threat models, "
                    "metrics, checkpoints or analysis.min_effect/alpha (said in the output)")
    sp.add_argument("--two-level", action="store_true", help="also resample test examples within each stratum "
                    "(needs the per-example correctness stored by the final evaluation)")
    a.force(sp)


def compare(args) -> int:
    import contextlib

    from orchestrator.run.layout import RESULT_FILES, STUDY, TRIALS_TABLE
    from orchestrator.run.storage import RunDir, absolute, check_location, local_copy

    print(f"compare: reading {len(args.run_dirs)} run director{'y' if len(args.run_dirs) == 1 else 'ies'}",
          file=sys.stderr, flush=True)
    with contextlib.ExitStack() as stack:
        local = []
        for location in args.run_dirs:
            check_location(location)
            run = RunDir(absolute(location))
            if not run.exists():
                raise UserError(location, "no such run directory", "give <storage>/<study name>, e.g. results/digits")
            if not run.exists(TRIALS_TABLE):
                raise UserError(location, f"no results ({TRIALS_TABLE} is missing)", "give the run directory "
                                "`decaylab sweep` printed, once its first trial has finished")
            local.append(stack.enter_context(local_copy(run, (*RESULT_FILES, STUDY))))
        path = write(local, args)
    print(f"compare: {path}")
    return 0


def write(run_dirs: list[str], args):
    """The comparison; bad inputs, damaged result files and a refused --report-dir are clear errors, not tracebacks."""
    import pyarrow

    from analysis.across import CompareInputError
    from analysis.across_report import write_compare
    from analysis.load import ResultsError
    from analysis.output import OutputError

    try:
        return write_compare(run_dirs, args.report_dir, force=args.force, reference=args.reference, metric=args.metric,
                             checkpoint=args.checkpoint, meaningful=args.meaningful,
                             resample_strata=args.resample_strata, allow_mixed=args.allow_mixed,
                             two_level=args.two_level, locations=args.run_dirs)
    except CompareInputError as e:
        raise UserError(_given(e.where, run_dirs, args.run_dirs), e.reason, e.hint) from None
    except OutputError as e:  # "<dir>: what is wrong; what to do"
        reason, _, hint = str(e).partition("; ")
        raise UserError("", reason, hint or None) from None
    except (ResultsError, pyarrow.ArrowException) as e:  # the message names the file and what is wrong
        raise RunError("", str(e)[:400], "a damaged result file (epochs/trials/evaluations.parquet) is "
                       "rebuilt from the trial records by `decaylab resume RUN_DIR`") from None


def _given(where: str, local: list[str], given: list[str]) -> str:
    """`where` as the user wrote it: a temporary copy of a remote run directory is named by its location."""
    for copy, location in zip(local, given, strict=True):
        if where == str(copy):
            return location
    return where
