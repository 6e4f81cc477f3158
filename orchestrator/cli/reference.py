"""`decaylab options` and `decaylab schema`: the study file's keys, from the schema itself."""

from __future__ import annotations

import json

from orchestrator.cli import args as a
from orchestrator.errors import UserError

MAX_WIDTH = 100  # wider lines are harder to read, whatever the terminal


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "options", options, "every study-file key with its type, allowed values, default and "
                   "meaning", epilog)
    sp.add_argument("prefix", nargs="?", metavar="KEY", help="list only this key and the keys under it, e.g. "
                    "train, attack.eval or methods")
    a.command(sub, "schema", schema, "the JSON Schema of study files (for editors: YAML language server)", epilog)


def rows():
    """(key, type, allowed values, default, meaning) of every key, the arms' sections by kind."""
    from orchestrator.study import docs
    from trials import arms

    found = [(o.key, o.type, o.allowed, o.default, o.doc) for o in docs.options()]
    for kind in arms.KINDS:
        found += [(f"methods.<arm>.{o.key} (kind: {kind})", o.type, o.allowed, o.default, o.doc)
                  for o in docs.arm_options(kind)]
    return found


def options(args) -> int:
    import shutil
    import textwrap

    found = rows()
    if args.prefix:
        prefix = args.prefix.rstrip(".")
        found = [r for r in found if r[0] == prefix or r[0].startswith((prefix + ".", prefix + "["))]
        if not found:
            sections = sorted({r[0].split(".")[0].split("[")[0] for r in rows()})
            close = a.close_match(prefix, sections)
            raise UserError(args.prefix, "no study key is, or starts with, this",
                            f"did you mean `{close}`?" if close else f"give a section: {', '.join(sections)}")
    width = max(40, min(shutil.get_terminal_size((MAX_WIDTH, 24)).columns, MAX_WIDTH))
    for key, kind, allowed, default, doc in found:
        kind = f"{kind}, one of: {', '.join(allowed)}" if allowed else kind
        print(textwrap.fill(f"{key} = {default}  ({kind})", width, subsequent_indent=" " * 8))
        if doc:
            print(textwrap.fill(doc, width, initial_indent=" " * 4, subsequent_indent=" " * 4))
    return 0


def schema(args) -> int:
    from orchestrator.study.schema import study_schema

    print(json.dumps(study_schema(), indent=2))
    return 0
