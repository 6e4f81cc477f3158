"""The run directory on a local path, NFS, or a URI (s3://, gs://): listing, reading, atomic writes.

Writes are atomic: a local file is written to a temporary name in the same directory and
renamed over the target (readers see the old or the new file, never a torn one); on object
stores a single PUT is already atomic.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs


def is_uri(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def absolute(location: str) -> str:
    """An absolute path (Ray rejects relative storage paths) or the URI unchanged."""
    if is_uri(location):
        return location.rstrip("/")
    if location.startswith("file://"):
        location = location[len("file://"):]
    return str(Path(location).expanduser().resolve())


@dataclass(frozen=True)
class RunDir:
    """`<storage>/<study name>`: a path or URI, with a pyarrow filesystem to reach it."""

    location: str

    @property
    def local(self) -> bool:
        return not is_uri(self.location)

    @property
    def fs(self) -> pafs.FileSystem:
        if self.local:
            return pafs.LocalFileSystem()
        return pafs.FileSystem.from_uri(self.location)[0]

    @property
    def fs_path(self) -> str:
        return self.location if self.local else pafs.FileSystem.from_uri(self.location)[1]

    def join(self, *parts: str) -> str:
        return "/".join([self.fs_path.rstrip("/"), *parts])

    def uri(self, *parts: str) -> str:
        return "/".join([self.location.rstrip("/"), *parts])

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.join(*parts)).type != pafs.FileType.NotFound

    def listdir(self, *parts: str) -> list[str]:
        """Names directly under `parts` (empty if it does not exist)."""
        info = self.fs.get_file_info(pafs.FileSelector(self.join(*parts), allow_not_found=True))
        return sorted(i.base_name for i in info)

    def is_dir(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.join(*parts)).type == pafs.FileType.Directory

    def size(self, *parts: str) -> int:
        """Size in bytes (FileNotFoundError when missing, IsADirectoryError for a directory)."""
        info = self.fs.get_file_info(self.join(*parts))
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(2, "no such file", self.join(*parts))
        if info.type == pafs.FileType.Directory:
            raise IsADirectoryError(21, "a directory where a file should be", self.join(*parts))
        return int(info.size or 0)

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self.join(*parts)) as f:
            return f.readall()

    def read_text(self, *parts: str) -> str:
        return self.read_bytes(*parts).decode()

    def makedirs(self, *parts: str) -> None:
        self.fs.create_dir(self.join(*parts), recursive=True)

    def write_atomic(self, data: bytes, *parts: str) -> None:
        target = self.join(*parts)
        if self.local:
            write_atomic_local(Path(target), data)
        else:
            with self.fs.open_output_stream(target) as f:
                f.write(data)

    def delete(self, *parts: str) -> None:
        if self.exists(*parts):
            self.fs.delete_file(self.join(*parts))


def write_atomic_local(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(target)  # a failed write() does not say which file: the message should
        raise
