"""Arguments several commands share, spelled and documented once, and the checks of combinations of them."""

from __future__ import annotations

import argparse
import difflib
import math
import os

from orchestrator.errors import UserError


def command(sub, name: str, func, help_: str, epilog: str, fields: str | None = None) -> argparse.ArgumentParser:
    """A subcommand's parser; `fields` documents what its --json prints, above the common epilog."""
    kwargs = {"epilog": epilog}
    if fields is not None:  # paragraphs kept apart, each wrapped to fit a terminal
        import textwrap

        kwargs = {"epilog": "\n\n".join(textwrap.fill(" ".join(p.split()), 79) for p in (fields, epilog)),
                  "formatter_class": argparse.RawDescriptionHelpFormatter}
    sp = sub.add_parser(name, help=help_, description=help_, **kwargs)
    sp.set_defaults(func=func, parser=sp)  # the parser: unknown words are refused in its words
    return sp


def flags(parser: argparse.ArgumentParser) -> list[str]:
    """The options a parser lists in its help (former spellings left out)."""
    return [flag for action in parser._actions  # noqa: SLF001 -- argparse lists a parser's arguments nowhere public
            if action.help != argparse.SUPPRESS for flag in action.option_strings]


def alias(sp, flag: str, dest: str) -> None:
    """`flag` as a former spelling of `dest`'s option: accepted, not listed in the help."""
    sp.add_argument(flag, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def close_match(word: str, names: list[str]) -> str | None:
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return close[0] if close else None


# --------------------------------------------------------------------------- value types


def count(text: str) -> int:
    """A whole number ≥ 1 (CPUs, seeds, GPUs)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1 (got {value}); give e.g. 1")
    return value


def utilisation(text: str) -> float:
    """A fraction in (0, 1]: 0 would be no work at all, not a default."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1] (got {text}); give e.g. 0.36 for 36%")
    return value


# --------------------------------------------------------------------------- arguments


def study(sp: argparse.ArgumentParser) -> None:
    from orchestrator.study.catalog import bundled

    sp.add_argument("study", metavar="STUDY", help="study file (YAML), or the name of a bundled study "
                    "(`decaylab studies` lists them): " + ", ".join(sorted(bundled())))


def run_dir(sp: argparse.ArgumentParser, what: str = "a run directory") -> None:
    sp.add_argument("run_dir", metavar="RUN_DIR", help=f"{what}: <storage>/<study name> as `sweep` printed it, "
                    "or the --run-dir of `decaylab train`")


def sets(sp: argparse.ArgumentParser, help_: str) -> None:
    sp.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help=f"{help_}; repeatable, and several may follow one --set (--set a=1 b=2)")


def break_lock(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--break-lock", action="store_true", help="take over the run directory's lock when the "
                    "decaylab that left it is gone (on object stores: no heartbeat for minutes, or its process has "
                    "ended on this host); a live one is never broken")


def large_grid(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--allow-large-grid", action="store_true", help="accept a grid of more than 10,000 trials "
                    "(up to 1,000,000) "
                    "(refused by default: usually a list where fewer values were meant)")


def force(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--force", action="store_true", help="write the report into a non-empty directory that holds "
                    "no earlier report (nothing there is removed)")


def report_dir(sp: argparse.ArgumentParser, default: str = "reports/<study name>") -> None:
    sp.add_argument("--report-dir", metavar="DIR", help=f"report directory (default {default})")
    alias(sp, "--out", "report_dir")


def report(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--report", action="store_true", help="write the report when the sweep ends (--report-dir, "
                    "--force: where and how)")
    report_dir(sp)
    force(sp)


def cluster(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--executor", choices=["ray", "local"], default="ray",
                    help="ray: trials as Ray Tune trials, on a local Ray cluster or --address (default); local: "
                    "one after another in this process, without Ray")
    sp.add_argument("--address", metavar="ADDRESS", help="Ray cluster to join: auto, ray://host:10001, host:6379 "
                    "(default: RAY_ADDRESS, else a local cluster)")
    sp.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                    help="auto: GPU when the cluster has one and the study asks for it (default)")
    sp.add_argument("--num-cpus", type=count, metavar="N", help="CPUs of the local Ray cluster (default: all); "
                    "not with --address, whose cluster has its own, nor with --executor local")
    sp.add_argument("--dashboard", action="store_true", help="start Ray's dashboard on 127.0.0.1 with the local "
                    "cluster (a joined cluster has its own)")


def trust(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--trust-run-config", action="store_true", help="use the run directory's own tracker "
                    "destinations, Optuna journal outside it and dataset download (after checking them: a run "
                    "directory may come from anyone, and trackers send your credentials where their URI points)")
    sets(sp, "give tracker destinations, search.storage or data.root/data.download for this run, e.g. "
         "tracking.mlflow.uri=https://my.server")


# --------------------------------------------------------------------------- combinations


def check_report(args) -> None:
    """Refuse report options given without --report (no report would be written)."""
    if args.report:
        return
    for flag, given in (("--report-dir", args.report_dir is not None), ("--force", args.force)):
        if given:
            raise UserError(flag, "only applies to the report, and no report is written without --report",
                            f"add --report, or drop {flag} (`decaylab report RUN_DIR {flag} …` reports later)")


def check_cluster(args) -> None:
    """Refuse cluster options the chosen executor or cluster would not use."""
    if args.executor == "local":
        for flag, value in (("--address", args.address), ("--dashboard", args.dashboard)):
            if value:
                raise UserError(flag, "needs Ray, and --executor local runs without it",
                                f"drop {flag}, or use --executor ray")
        if args.num_cpus is not None:
            raise UserError("--num-cpus", "sizes the local Ray cluster, and --executor local runs one trial at a "
                            "time in this process", "drop --num-cpus (a trial's threads: resources.cpu), or use "
                            "--executor ray")
        return
    address = args.address or os.environ.get("RAY_ADDRESS")
    given = "--address" if args.address else "RAY_ADDRESS"
    if address and args.num_cpus is not None:
        raise UserError("--num-cpus", f"sizes a local cluster, and {given} names one to use ({address})",
                        f"drop --num-cpus (limit a trial's CPUs with resources.cpu), or unset {given}")
    if address and address != "local" and args.dashboard:
        raise UserError("--dashboard", f"starts with a local cluster, and {given} joins one ({address}), whose "
                        "dashboard is its own", f"open that cluster's dashboard, or unset {given}")


def executor(args):
    """The executor the arguments ask for (`check_cluster` has accepted them)."""
    if args.executor == "local":
        from orchestrator.sweep.executor import LocalExecutor

        return LocalExecutor()
    from orchestrator.ray import environment

    if not (args.address or os.environ.get("RAY_ADDRESS")):
        environment.for_local_cluster()  # before Ray is imported, which reads it
    from orchestrator.ray.executor import RayExecutor

    return RayExecutor(args.address, num_cpus=args.num_cpus, dashboard=args.dashboard)


def continued(args, allowed: tuple[str, ...] | None = None):
    """(run, study) of a run directory to run more of, saying on stderr what of its study is not used."""
    import sys

    from orchestrator.run import directory

    run, study, dropped = directory.continued(args.run_dir, trust=args.trust_run_config, sets=args.sets,
                                              allowed=allowed or directory.SIDE_EFFECT_KEYS)
    for what in dropped:
        print(f"warning: the run directory's study names {what}: not used here (check it, then pass "
              "--trust-run-config; or give your own with --set)", file=sys.stderr)
    return run, study
