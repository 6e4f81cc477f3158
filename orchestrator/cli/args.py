"""Arguments several commands share, spelled and documented once."""

from __future__ import annotations

import argparse


def command(sub, name: str, func, help_: str, epilog: str) -> argparse.ArgumentParser:
    sp = sub.add_parser(name, help=help_, description=help_, epilog=epilog)
    sp.set_defaults(func=func)
    return sp


def study(sp: argparse.ArgumentParser) -> None:
    from orchestrator.study.catalog import bundled

    sp.add_argument("study", help="study file (YAML), or the name of a bundled study: " + ", ".join(sorted(bundled())))


def run_dir(sp: argparse.ArgumentParser, what: str = "a run directory") -> None:
    sp.add_argument("run_dir", help=f"{what}: <storage>/<study name> as `sweep` printed it, or the --out "
                    "directory of `decaylab train`")


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


def report(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--report", action="store_true", help="write the report when the sweep ends")
    sp.add_argument("--out", help="report directory (default reports/<study name>)")
    force(sp)


def cluster(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--executor", choices=["ray", "local"], default="ray",
                    help="ray: trials as Ray Tune trials, on a local Ray cluster or --address (default); local: "
                    "one after another in this process, without Ray")
    sp.add_argument("--address", help="Ray cluster to join: auto, ray://host:10001, host:6379 "
                    "(default: RAY_ADDRESS, else a local cluster)")
    sp.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                    help="auto: GPU when the cluster has one and the study asks for it (default)")
    sp.add_argument("--num-cpus", type=int, help="CPUs of the local cluster (default: all)")
    sp.add_argument("--dashboard", action="store_true", help="start Ray's dashboard on 127.0.0.1")


def trust(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--trust-run-config", action="store_true", help="use the run directory's own tracker "
                    "destinations, Optuna journal outside it and dataset download (after checking them: a run "
                    "directory may come from anyone, and trackers send your credentials where their URI points)")
    sets(sp, "give tracker destinations, search.storage or data.root/data.download for this run, e.g. "
         "tracking.mlflow.uri=https://my.server")


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


def executor(args):
    """The executor the arguments ask for."""
    from orchestrator.errors import UserError

    if args.executor == "local":
        for flag, value in (("--address", args.address), ("--dashboard", args.dashboard)):
            if value:
                raise UserError(flag, "needs Ray, and --executor local runs without it",
                                f"drop {flag}, or use --executor ray")
        from orchestrator.sweep.executor import LocalExecutor

        return LocalExecutor(args.num_cpus)
    import os

    from orchestrator.ray import environment

    if not (args.address or os.environ.get("RAY_ADDRESS")):
        environment.for_local_cluster()  # before Ray is imported, which reads it
    from orchestrator.ray.executor import RayExecutor

    return RayExecutor(args.address, num_cpus=args.num_cpus, dashboard=args.dashboard)
