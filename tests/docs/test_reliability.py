"""RELIABILITY.md's tables name, on every row, tests that exist: a pytest node id `tests/…py::test_name` (with an
optional `[parameter id]`) whose file defines that test and, for a parameter, names that id; and the bad-input
cases each row groups are cases of tests/orchestrator/test_bad_input.py."""

from __future__ import annotations

import fnmatch
import re

from helpers.docs import REPO

PAGE = REPO / "RELIABILITY.md"
NODE = re.compile(r"`(?P<file>tests/[\w/]+\.py)::(?P<test>test_\w+)(?:\[(?P<param>[^\]`]+)\])?`")
BAD_INPUT = REPO / "tests" / "orchestrator" / "test_bad_input.py"


def rows() -> list[list[str]]:
    """The cells of every body row of the page's tables (not their header or separator rows)."""
    out = []
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and not set(line) <= set("|- ") and cells[0] not in ("#", "Group"):
            out.append(cells)
    return out


def missing(match: re.Match) -> str | None:
    path = REPO / match["file"]
    if not path.is_file():
        return "no such file"
    source = path.read_text(encoding="utf-8")
    if not re.search(rf"^def {match['test']}\(", source, re.M):
        return "no such test"
    param = match["param"]
    if param and param != "…" and f'"{param}"' not in source:
        return f"no parameter {param!r}"
    return None


def test_every_row_names_tests_that_exist():
    problems = []
    for cells in rows():
        nodes = list(NODE.finditer(cells[-1]))
        if not nodes:
            problems.append(f"row {cells[0]!r} names no test (`tests/…py::test_…`) in its last column")
        problems += [f"row {cells[0]!r}: {m[0]}: {why}" for m in nodes if (why := missing(m))]
    assert len(rows()) >= 60
    assert not problems, "\n".join(problems)


def test_every_bad_input_case_named_is_a_case():
    cases = set(re.findall(r'^    "([a-z0-9-]+)": ', BAD_INPUT.read_text(encoding="utf-8"), re.M))
    named = [token for cells in rows() if not cells[0].isdigit() for token in re.findall(r"`([a-z0-9*-]+)`", cells[1])]
    assert named
    unknown = [t for t in named if not any(fnmatch.fnmatch(case, t) for case in cases)]
    assert not unknown, f"cases RELIABILITY.md names that tests/orchestrator/test_bad_input.py lacks: {unknown}"
