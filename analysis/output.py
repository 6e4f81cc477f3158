"""Where a report is written, and the promise that it removes nothing it did not write.

A report directory holds `.decaylab-report.json`, the list of files the last report wrote.
A new report into that directory first removes those files (so no stale figure outlives its
data) and nothing else. A directory that is not empty and has no such list belongs to someone
else: the report refuses it unless forced, and even then only adds and overwrites its own files.
"""

from __future__ import annotations

import json
from pathlib import Path

RECORD = ".decaylab-report.json"


class OutputError(ValueError):
    """The report cannot be written where asked; the message says why and what to do."""


def prepare(out: Path, force: bool = False) -> None:
    """Make `out` ready for a report: create it, or clear the previous report's own files."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory; choose another --out")
    if not out.exists():
        out.mkdir(parents=True)
        return
    previous = written_before(out)
    if previous is None and any(out.iterdir()) and not force:
        raise OutputError(
            f"{out}: directory is not empty and holds no earlier decaylab report; choose an empty or new "
            "directory, or pass --force to write the report's files there anyway (nothing else is removed)"
        )
    for path in previous or []:
        if path.is_file() or path.is_symlink():
            path.unlink()


def written_before(out: Path) -> list[Path] | None:
    """The files of the previous report in `out` (only paths inside `out`); None without a record."""
    record = out / RECORD
    if not record.is_file():
        return None
    try:
        names = json.loads(record.read_text()).get("files", [])
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise OutputError(f"{record}: damaged; delete it, or pass another --out") from None
    root = out.resolve()
    inside = []
    for name in names if isinstance(names, list) else []:
        path = (out / str(name)).resolve()
        if path != root and root in path.parents:  # a record edited to point elsewhere is ignored
            inside.append(out / str(name))
    return inside


def record(out: Path, files: list[Path]) -> Path:
    """Write the list of the report's files (relative to `out`) for the next report to clear."""
    names = sorted({str(path.relative_to(out)) for path in files})
    path = out / RECORD
    path.write_text(json.dumps({"written_by": "decaylab report", "files": names}, indent=1) + "\n")
    return path
