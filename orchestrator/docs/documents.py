"""docs/reference/summary-json.md: the machine-readable files a report and a comparison write, from the module
docstrings that define them (`analysis/summary_json.py`, `analysis/across/__init__.py`), read from the source."""

from __future__ import annotations

import ast

from orchestrator.docs import REPO, header

SOURCES = [
    ("summary.json (`decaylab report`)", "analysis/summary_json.py"),
    ("compare.json (`decaylab compare`)", "analysis/across/__init__.py"),
]


def page() -> str:
    lines = [header("summary.json and compare.json", " and ".join(f"`{path}`" for _, path in SOURCES)),
             "Both files are strict JSON: a number that does not exist is `null`, never `NaN`; accuracies and "
             "differences are fractions (0.01 is one point). The report's tables hold the same numbers as CSV.", ""]
    for title, path in SOURCES:
        lines += [f"## {title}", "", markdown(docstring(path)), ""]
    return "\n".join(lines).rstrip() + "\n"


def docstring(path: str) -> str:
    return ast.get_docstring(ast.parse((REPO / path).read_text(encoding="utf-8"))) or ""


def markdown(doc: str) -> str:
    """A docstring as Markdown: its indented blocks (after a blank line, or after a line ending in `::`) fenced."""
    out: list[str] = []
    block: list[str] = []
    for line in doc.splitlines():
        indented = line.startswith("    ")
        if block and (indented or not line.strip()):
            block.append(line)
            continue
        if block:
            out += _fence(block)
            block = []
        if indented and (not out or not out[-1].strip()):
            block = [line]
            continue
        out.append(line[:-1] if line.endswith("::") else line)
    if block:
        out += _fence(block)
    return "\n".join(out).strip()


def _fence(block: list[str]) -> list[str]:
    while block and not block[-1].strip():
        block.pop()
    return ["```text", *(line[4:] for line in block), "```", ""]
