"""docs/reference/study-file.md: every key of a study file, and every kind of arm's section, from the schema
(`orchestrator.study.docs`, which `decaylab options` prints too)."""

from __future__ import annotations

import ast
import inspect

from orchestrator.docs import header
from orchestrator.docs.cli import cell
from orchestrator.study.docs import Option, arm_options, options
from trials import arms

INTRO = """\
A study file is YAML, read as YAML 1.2 data (no tags, no octal or `on`/`off` surprises; merge keys work).
Every key has a default; unknown keys, wrong types and impossible values are refused by `decaylab validate`
and by `decaylab sweep` before anything starts, with the file, the key and a hint. `decaylab options` prints
the same keys in a terminal; `decaylab schema` prints the JSON Schema for editors (put
`# yaml-language-server: $schema=./decaylab.schema.json` first in a study file after
`decaylab schema > decaylab.schema.json`).

*Allowed values* lists the values a key admits when it is a fixed set; other bounds (a fraction in [0, 1],
a count ≥ 1) are checked too and named in the error. A list key (`lr`, `seeds`, an arm's grids,
`data.label_noise`) also takes a single value. `required` means the key has no default and must be given.
"""


def page() -> str:
    lines = [header("Study file", "the study schema (`orchestrator/study/schema.py`, `trials/config.py`, "
                    "`trials/arms/`)"), INTRO, "## Keys", "", *table(options()), "",
             "## Arms", "",
             "`methods` maps each arm's name (letters, digits and `_`) to its section. `kind` picks the arm; its other "
             "keys are its grids, one list per hyperparameter. A grid study runs every arm × every combination of "
             "that arm's grids × every `lr` × every seed (× every `data.label_noise` rate); grids never cross arms. "
             "What each arm does and where it comes from: [the arms](../explain/arms.md).", ""]
    for kind in arms.KINDS:
        kind_row = Option("kind", "text", "required", (kind,), "selects the arm")
        lines += [f"### `kind: {kind}`", "", summary(kind), "", *table([kind_row, *arm_options(kind)]), ""]
    return "\n".join(lines).rstrip() + "\n"


def table(rows: list[Option]) -> list[str]:
    out = ["| key | type | default | allowed values | meaning |", "|---|---|---|---|---|"]
    for o in rows:
        allowed = ", ".join(f"`{v}`" for v in o.allowed)
        out.append(f"| `{o.key}` | {o.type} | `{cell(o.default)}` | {allowed} | {cell(o.doc)} |")
    return out


def summary(kind: str) -> str:
    """The first sentence of the arm module's docstring (read from its source)."""
    module = inspect.getmodule(arms.grid_class(kind))
    doc = ast.get_docstring(ast.parse(inspect.getsource(module))) or ""
    return " ".join(doc.split("\n\n")[0].split())
