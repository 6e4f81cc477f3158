"""The `decaylab` command line: one module per command under this package, each adding its parser
(`add`) and running it. User mistakes print one clear message (exit 2), never a traceback."""

from __future__ import annotations

import argparse
import sys

from orchestrator.cli import (
    compare,
    confirm,
    evaluate,
    export,
    reference,
    report,
    status,
    sweep,
    train,
    validate,
    verdict,
)
from orchestrator.errors import RunError, UserError
from orchestrator.terminal import visible

EPILOG = "Study files: `decaylab options` lists every key; bundled studies are named like `digits`."
COMMANDS = (sweep, confirm, status, train, report, validate, evaluate, export, reference, verdict, compare)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(expand_sets(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"decaylab {args.command}: error: {visible(e.message)}", file=sys.stderr)  # it may quote files
        return e.exit_status
    except OSError as e:  # a full disk, lost permissions or an unreachable cluster: one line, no traceback
        print(f"decaylab {args.command}: error: {visible(os_error(args, e).message)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"decaylab {args.command}: interrupted; finished trials are saved — "
              "`decaylab resume RUN_DIR` continues", file=sys.stderr)
        return 130


def os_error(args, e: OSError) -> RunError:
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
    p.add_argument("--version", action="version", version=f"decaylab {version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub, EPILOG)
    return p


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("decaylab")
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


def run() -> None:
    """The `decaylab` command."""
    sys.exit(main())
