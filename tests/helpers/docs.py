"""The project's Markdown as data: its fenced blocks with the marker comment above each, and its links.

A block's marker is the HTML comment on the line right above its fence (blank lines between are allowed):

    <!-- not run: needs a Ray cluster -->     a shell block the tests do not run, and why
    <!-- run: slow -->                        a shell block run only with the slow tests
    <!-- invalid: a Kubernetes manifest -->   a YAML block that is not a study file, and why
    <!-- fragment -->                         a YAML block of a few keys, checked merged into studies/digits.yaml
    <!-- file: my_study.yaml -->              a study file the page's shell blocks use, written where they run
    <!-- placeholder: what to put there -->   the link below it points at a file still to be made
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from helpers.sweep import REPO

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<text>.*?)\s*-->\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def pages() -> list[Path]:
    """The project's own documentation: README.md and every page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def guides() -> list[Path]:
    """The pages whose shell commands a reader runs: README.md and every hand-written page under docs/."""
    return [p for p in pages() if "reference" not in p.relative_to(REPO).parts]


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent = i, len(m["indent"])
        i += 1
        body = []
        while i < len(lines) and not lines[i].strip().startswith("```"):
            body.append(lines[i][indent:])
            i += 1
        found.append(Block(path, start + 1, m["lang"], "\n".join(body) + "\n", marker_above(lines, start)))
        i += 1
    return found


def marker_above(lines: list[str], index: int) -> str | None:
    """The marker comment on the nearest non-blank line above line `index`, if that line is one."""
    for line in reversed(lines[:index]):
        if line.strip():
            m = MARKER.match(line)
            return m["text"] if m else None
    return None


def all_blocks(paths: list[Path], *langs: str) -> list[Block]:
    return [b for p in paths for b in blocks(p) if b.lang in langs]


def study_files(path: Path) -> dict[str, str]:
    """The `<!-- file: NAME -->` blocks of a page: NAME → text."""
    return {b.marker.split(":", 1)[1].strip(): b.text for b in blocks(path)
            if b.marker and b.marker.startswith("file:")}


def links(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, target, marker above the line) of every Markdown link and image outside code blocks."""
    out, fenced = [], False
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if FENCE.match(line) or (fenced and line.strip().startswith("```")):
            fenced = not fenced
            continue
        if fenced:
            continue
        for m in LINK.finditer(line):
            out.append((i + 1, m["target"], marker_above(lines, i)))
    return out
