"""The run directory on a local path, NFS, or a URI (s3://, gs://): listing, reading, atomic writes.

Writes are atomic: a local file is written to a temporary name in the same directory and
renamed over the target (readers see the old or the new file, never a torn one); on object
stores a single PUT is already atomic. A local file gets the permissions of the umask (0644
by default), so a lab sharing a storage root can read each other's results.

A run directory is untrusted: every local write and delete is checked to land inside it once
symbolic links are resolved, so a link planted in it cannot redirect a write elsewhere. Reads are
checked the same way for the directories above the file; the file itself is opened without
following a link, must be a regular file, and is read up to its cap (`layout.max_bytes`), on object
stores from the stream. Durable writes also sync the directory, so the rename survives a crash.
`check_location` refuses a storage URI decaylab cannot use (scheme, credentials) in seconds,
before anything starts.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pyarrow.fs as pafs

from orchestrator.errors import RunError, UserError
from orchestrator.run.layout import RESULT_FILES, max_bytes
from trials.files import kind, read_capped, read_regular

SCHEMES = ("s3", "gs", "gcs")
# where the cloud SDKs look for credentials (besides an instance's metadata service)
CREDENTIALS = {
    "s3": (("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
           ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials", "~/.aws/config"),
           "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials; an S3-compatible "
           "server is given by AWS_ENDPOINT_URL; on an instance whose role grants access, set "
           "AWS_EC2_METADATA_DISABLED=false to use it"),
    "gs": (("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT_CREDENTIALS"),
           ("~/.config/gcloud/application_default_credentials.json",),
           "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a key file; "
           "on an instance whose service account grants access, set GCE_METADATA_HOST to use it"),
}
METADATA_ON = {"s3": ("AWS_EC2_METADATA_DISABLED", "false"), "gs": ("GCE_METADATA_HOST", None)}


def is_uri(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def scheme(location: str) -> str:
    return location.split("://", 1)[0].lower() if is_uri(location) else ""


def check_location(location: str) -> None:
    """Refuse, before anything starts, a storage URI decaylab cannot use: an unsupported scheme, or an
    object store for which no credentials are configured (the SDKs would retry for minutes)."""
    kind = scheme(location)
    if not kind:
        return
    if kind not in SCHEMES:
        raise UserError(location, f"storage scheme {kind}:// is not supported",
                        "give a local or NFS path, file://, s3:// (or an S3-compatible server through "
                        "AWS_ENDPOINT_URL) or gs://")
    kind = "gs" if kind == "gcs" else kind
    names, files, hint = CREDENTIALS[kind]
    variable, value = METADATA_ON[kind]
    paths = [os.environ.get(f, "") if f.isupper() else f for f in files]
    if any(os.environ.get(n) for n in names) or any(p and Path(p).expanduser().is_file() for p in paths):
        return
    if os.environ.get(variable) and (value is None or os.environ[variable].lower() == value):
        return
    raise RunError(location, f"no credentials for {kind}:// are configured on this machine", hint)


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

    @functools.cached_property  # one filesystem per RunDir: opening an S3 connection is not free
    def _resolved(self) -> tuple[pafs.FileSystem, str]:
        if self.local:
            return pafs.LocalFileSystem(), self.location
        return pafs.FileSystem.from_uri(self.location)

    @functools.cached_property  # resolved once: each file a trial writes is checked against it
    def _real_root(self) -> Path:
        return Path(self.location).resolve()

    def __reduce__(self):  # the location only: another process (or node) resolves and connects for itself
        return RunDir, (self.location,)

    @property
    def fs(self) -> pafs.FileSystem:
        return self._resolved[0]

    @property
    def fs_path(self) -> str:
        return self._resolved[1]

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

    def read_bytes(self, *parts: str, cap: int | None = None) -> bytes:
        """The file at `parts`, at most `cap` bytes (default: its name's cap, `layout.max_bytes`); `OSError`
        naming it when it is larger, or locally when it is a link, a FIFO, a device (`trials.files`)."""
        cap = max_bytes(parts[-1]) if cap is None else cap
        if self.local:  # the directories above it must lie inside the run directory, as for writes
            return read_regular(Path(self.inside(*parts[:-1]), parts[-1]), cap)
        with self.fs.open_input_stream(self.join(*parts)) as f:
            return read_capped(f.read, cap, self.uri(*parts))

    def read_text(self, *parts: str, cap: int | None = None) -> str:
        return self.read_bytes(*parts, cap=cap).decode()

    def open_append(self, *parts: str) -> TextIO:
        """A local file opened to append text to (`sweep.log`), as reads are: never through a link in its last
        component, and never a FIFO (whose open would wait for a reader) or a device."""
        path = Path(self.inside(*parts[:-1]), parts[-1])
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags, file_mode())
        except OSError as e:  # what a FIFO without a reader says to a non-blocking open
            if e.errno == errno.ENXIO:
                raise OSError(errno.EINVAL, "not a regular file (a FIFO)", str(path)) from None
            raise
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise OSError(errno.EINVAL, f"not a regular file ({kind(mode)})", str(path))
        return os.fdopen(fd, "a", encoding="utf-8")

    def makedirs(self, *parts: str) -> None:
        self.fs.create_dir(self.inside(*parts), recursive=True)

    def write_atomic(self, data: bytes, *parts: str, durable: bool = True) -> None:
        """Replace the file at `parts` with `data` in one step. `durable=False` skips the fsync, for files
        that are rebuilt from others when a crash of the machine leaves them empty (the result parts)."""
        target = self.inside(*parts)
        if self.local:
            write_atomic_local(Path(target), data, durable)
        else:
            with self.fs.open_output_stream(target) as f:
                f.write(data)

    def delete(self, *parts: str) -> None:
        if self.exists(*parts):
            self.fs.delete_file(self.inside(*parts))

    def move(self, source: tuple[str, ...], target: tuple[str, ...]) -> None:
        """Move one file within the run directory (a rename locally, copy and delete on object stores)."""
        self.fs.create_dir(self.inside(*target[:-1]), recursive=True)
        self.fs.move(self.inside(*source), self.inside(*target))

    def delete_dir(self, *parts: str) -> None:
        if self.is_dir(*parts):
            self.fs.delete_dir(self.inside(*parts))

    def contains(self, path: Path) -> bool:
        """Whether the local `path` lies inside this (local) run directory once symbolic links are resolved."""
        if not self.local:
            return False
        real = path.resolve()
        return real == self._real_root or self._real_root in real.parents

    def inside(self, *parts: str) -> str:
        """The path of `parts`, checked to lie inside the run directory once symbolic links are resolved
        (local run directories; object stores have no links)."""
        target = self.join(*parts)
        if not self.local:
            return target
        root = self._real_root
        real = Path(target).resolve()
        if real != root and root not in real.parents:
            raise RunError(target, f"it leads outside the run directory (to {real}) through a symbolic link",
                           f"decaylab writes only inside {root}: remove the link, or give the real run directory")
        return target


@functools.cache
def file_mode() -> int:
    """0666 less the process's umask: what `open()` would give a new file (mkstemp gives 0600)."""
    try:
        status = Path("/proc/self/status").read_text()
        umask = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError):  # not Linux: read it by setting it (restored at once)
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def local_copy(run: RunDir, names: tuple[str, ...] = RESULT_FILES) -> Iterator[str]:
    """A local directory holding the run's result files: the run directory itself when it is local,
    else a temporary copy of them (removed afterwards)."""
    if run.local:
        yield run.location
        return
    with tempfile.TemporaryDirectory(prefix="decaylab-") as tmp:
        for name in names:
            if run.exists(name):
                (Path(tmp) / name).write_bytes(run.read_bytes(name))
        yield tmp


def write_atomic_local(target: Path, data: bytes, durable: bool = True) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:  # on disk before the rename makes it visible, even if the machine goes down
                os.fsync(f.fileno())
        os.replace(tmp, target)
        if durable:
            sync_directory(target.parent)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(target)  # a failed write() does not say which file: the message should
        raise


def sync_directory(directory: Path) -> None:
    """fsync a directory, so that a rename in it is on disk (the file's own fsync does not cover its name)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:  # a file system that cannot sync a directory (some network ones) has nothing to do
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)
