"""Where a report is written, and the promise that it removes nothing it did not write.

A report directory holds `.decaylab-report.json`, the list of files the last report wrote.
A new report into that directory first removes those files (so no stale figure outlives its
data) and nothing else. A directory that is not empty and has no such list belongs to someone
else: the report refuses it unless forced, and even then only adds and overwrites its own files.

The record is read as untrusted input (an output directory may have been shared or edited): only
names a report can write (`report.md`, `figures/<name>.png`, …) that are regular files inside the
directory, reached through no symbolic link, are removed; anything else it lists is ignored, and a
record that cannot be read is an `OutputError`. Every file is written atomically (a temporary file
in the same directory, then a rename), and never through a symbolic link planted in the directory.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from contextlib import suppress
from pathlib import Path, PurePosixPath

RECORD = ".decaylab-report.json"
TOP_FILES = ("report.md", "report.html", "summary.json", "compare.md", "compare.html", "compare.json")
SUBDIRS = ("figures", "tables")
MAX_RECORD_BYTES = 1_000_000  # a report's record lists a few hundred names; more is not one of ours
# The names a report writes, relative to its directory: only these are ever removed.
_REPORT_FILE = re.compile(
    r"report\.md|report\.html|summary\.json|compare\.md|compare\.html|compare\.json|figures/[\w.+-]+\.(png|pdf)|"
    r"tables/[\w.+-]+\.(md|csv|tex)"
)


class OutputError(ValueError):
    """The report cannot be written where asked; the message says why and what to do."""


def prepare(out: Path, force: bool = False) -> None:
    """Make `out` ready for a report: create it, or clear the previous report's own files."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory; choose another --report-dir")
    if not out.exists():
        out.mkdir(parents=True)
        return
    for name in (*TOP_FILES, RECORD):
        check_file(out / name)
    for name in SUBDIRS:
        check_dir(out / name)
    previous = written_before(out)
    if previous is None and any(out.iterdir()) and not force:
        raise OutputError(
            f"{out}: directory is not empty and holds no earlier decaylab report; choose an empty or new "
            "directory, or pass --force to write the report's files there anyway (nothing else is removed)"
        )
    for path in previous or []:
        try:
            path.unlink()
        except FileNotFoundError:  # removed meanwhile: nothing left to clear
            pass
        except OSError as error:
            raise OutputError(f"{path}: cannot remove the previous report's file ({error.strerror})") from None


def written_before(out: Path) -> list[Path] | None:
    """The regular files of the previous report in `out` that it may remove; None without a record."""
    record_path = out / RECORD
    check_file(record_path)
    if not record_path.is_file():
        return None
    names = _record_names(record_path)
    return [out / name for name in names if _removable(out, name)]


def _record_names(path: Path) -> list[object]:
    """The `files` list of a record; OutputError when it cannot be read as one."""
    damaged = OutputError(f"{path}: damaged; delete it, or pass another --report-dir")
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise damaged
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deep to parse
        raise damaged from None
    names = data.get("files", []) if isinstance(data, dict) else None
    if not isinstance(names, list):
        raise damaged
    return names


def _removable(out: Path, name: object) -> bool:
    """Whether `name` from a record is a report's file: a report file's name, a regular file, no link on the way."""
    if not isinstance(name, str) or not _REPORT_FILE.fullmatch(name):
        return False
    path = out
    for part in PurePosixPath(name).parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # gone already, or unreadable: nothing to remove
            return False
        if stat.S_ISLNK(mode):
            return False
    return stat.S_ISREG(mode)


def refuse_link(path: Path) -> None:
    """OutputError when `path` is a symbolic link: a report never writes through one, nor removes its target."""
    if path.is_symlink():
        raise OutputError(
            f"{path}: a symbolic link, which the report will not write through; remove it, or pass another --report-dir"
        )


def check_file(path: Path) -> None:
    """OutputError unless `path` is absent or a regular file (not a link, directory or device)."""
    refuse_link(path)
    if path.exists() and not path.is_file():
        raise OutputError(f"{path}: exists and is not a regular file; remove it, or pass another --report-dir")


def check_dir(path: Path) -> None:
    """OutputError unless `path` is absent or a directory (not a link to one)."""
    refuse_link(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a directory; remove it, or pass another --report-dir")


def ensure_dir(path: Path) -> Path:
    """Create the directory `path` (figures/, tables/) if needed; OutputError if something else is there."""
    check_dir(path)
    path.mkdir(parents=True, exist_ok=True)
    check_dir(path)
    return path


def write_atomic(path: Path, data: str | bytes, durable: bool = True) -> Path:
    """Write `data` to `path` atomically: a reader sees the old file or the new one, never a part.

    The data goes to a new temporary file in the same directory (opened without following links),
    which then replaces `path` by a rename; a symbolic link at `path` is refused. `durable` also
    syncs the file and the directory, so the new file survives a crash once this returns.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    check_file(path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        temporary = f".{path.name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            with os.fdopen(os.open(temporary, flags, 0o666, dir_fd=directory), "wb") as handle:
                handle.write(payload)
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
            refuse_link(path)
            os.replace(temporary, path.name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=directory)
            raise
        if durable:
            os.fsync(directory)
    finally:
        os.close(directory)
    return path


def record(out: Path, files: list[Path], written_by: str = "decaylab report") -> Path:
    """Write the list of the report's files (relative to `out`) for the next report to clear."""
    names = sorted({path.relative_to(out).as_posix() for path in files})
    text = json.dumps({"written_by": written_by, "files": names}, indent=1) + "\n"
    return write_atomic(out / RECORD, text)
