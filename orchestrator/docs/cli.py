"""docs/reference/cli.md: every `decaylab` command, its usage and its arguments, read from the parser
`orchestrator.cli.build_parser` builds (so a new command or option appears when the page is regenerated)."""

from __future__ import annotations

import argparse
import functools

from orchestrator.docs import header

WIDTH = 100  # usage lines are wrapped at this width whatever the terminal's
NARGS = {None: "required", "?": "optional", "*": "any number", "+": "one or more"}  # of a positional


def page() -> str:
    from orchestrator.cli import build_parser

    parser = fixed_width(build_parser())
    commands = subcommands(parser)
    lines = [header("Command line", "the parser in `orchestrator/cli/`"),
             f"{parser.description}", "",
             "```text", parser.format_usage().rstrip(), "```", "",
             *arguments(parser), "",
             "Commands: " + ", ".join(f"[`{name}`](#decaylab-{name})" for name in commands) + ".", ""]
    if parser.epilog:
        lines += [parser.epilog, ""]
    for name, sub in commands.items():
        sub = fixed_width(sub)
        lines += [f"## decaylab {name}", "", f"{sub.description or ''}", "",
                  "```text", sub.format_usage().rstrip(), "```", "", *arguments(sub), ""]
    return "\n".join(lines).rstrip() + "\n"


def fixed_width(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The parser, formatting its usage at WIDTH columns (argparse otherwise reads the terminal's)."""
    parser.formatter_class = functools.partial(parser.formatter_class, width=WIDTH)
    return parser


def actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return list(parser._actions)  # noqa: SLF001 -- argparse lists a parser's arguments nowhere public


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name, in the order they were added."""
    for action in actions(parser):
        if isinstance(action.choices, dict):  # the subparsers action: name → parser
            return dict(action.choices)
    return {}


def arguments(parser: argparse.ArgumentParser) -> list[str]:
    """A table of the parser's arguments: name, value, default, meaning."""
    rows = []
    for action in actions(parser):
        if action.help == argparse.SUPPRESS or isinstance(action.choices, dict):
            continue
        name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
        rows.append(f"| {name} | {value(action)} | {default(action)} | {cell(help_text(parser, action))} |")
    if not rows:
        return []
    return ["| argument | value | default | meaning |", "|---|---|---|---|", *rows]


def value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "—"
    if action.choices is not None:
        return " \\| ".join(f"`{c}`" for c in action.choices)
    if not action.option_strings:
        return NARGS.get(action.nargs, f"`{action.nargs}`")
    return f"`{action.metavar or action.dest.upper()}`"


def default(action: argparse.Action) -> str:
    if action.required and action.option_strings:
        return "required"
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS, [], False):
        return ""
    return f"`{action.default}`"


def help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help string with argparse's %(...)s fields filled, as `--help` shows it."""
    text = action.help or ""
    if "%(" in text:
        fields = {**vars(action), "prog": parser.prog}
        if action.choices is not None:
            fields["choices"] = ", ".join(map(str, action.choices))
        text = text % fields
    return text


def cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")
