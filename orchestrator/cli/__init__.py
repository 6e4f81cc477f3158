"""The `decaylab` command line: one module per command under this package, each adding its parser
(`add`) and running it. User mistakes print one clear message (exit 2), never a traceback."""

from __future__ import annotations

import argparse
import os
import sys

from orchestrator.cli import (
    compare,
    confirm,
    evaluate,
    export,
    reference,
    report,
    status,
    studies,
    sweep,
    train,
    validate,
    verdict,
)
from orchestrator.cli.args import close_match, flags
from orchestrator.errors import RunError, UserError
from orchestrator.terminal import visible

EPILOG = ("Study files: `decaylab options` lists every key; `decaylab studies` lists the bundled studies, "
          "usable by name (`decaylab sweep digits`).")
COMMANDS = (sweep, confirm, status, train, report, validate, studies, evaluate, export, reference, verdict, compare)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, expand_sets(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "command", None):
        parser.print_usage(sys.stderr)
        print("decaylab: error: give a command; `decaylab --help` lists them", file=sys.stderr)
        return 2
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader of stdout that has gone shows here, not in the interpreter's exit
        return status
    except BrokenPipeError as e:
        if not stdout_gone():
            print(f"decaylab {args.command}: error: {visible(os_error(args, e).message)}", file=sys.stderr)
            return 1
        # the reader took what it wanted (`decaylab schema | head -1`): not an error; the output still
        # buffered goes nowhere, instead of failing again when the interpreter flushes it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
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


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The parsed command line; words it does not know are refused by the subcommand they were given to,
    with its usage and the option each resembles."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = getattr(args, "parser", None) or parser
        known = {flag.lstrip("-"): flag for flag in flags(command)}  # the dashes alone would make any two alike
        guesses = [(word, known[close]) for word in unknown if word.startswith("-")
                   if (close := close_match(word.split("=")[0].lstrip("-"), list(known)))]
        text = f"unrecognized argument {unknown[0]}" if len(unknown) == 1 else \
            f"unrecognized arguments: {' '.join(unknown)}"
        if len(guesses) == 1:
            text += f"; did you mean {guesses[0][1]}?"
        elif guesses:
            text += "; did you mean " + ", ".join(f"{flag} (for {word})" for word, flag in guesses) + "?"
        command.error(text)
    return args


def stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file (replaced, or closed)
        return False
    if not hasattr(select, "poll"):  # no poll() here: a broken pipe is almost always stdout's
        return True
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))


def os_error(args, e: OSError) -> RunError:
    if isinstance(e, ConnectionError) and hasattr(args, "address"):  # only commands that use a cluster
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
