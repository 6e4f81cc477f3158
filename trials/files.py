"""Reading a file that may come from anyone: a regular file, at most a cap of bytes, never through a link.

A path planted where decaylab expects a record may be a symbolic link (to `/dev/zero`, to another
user's file), a FIFO (whose `open` would wait forever for a writer) or a device, and a file's size
from `stat` says nothing about what a read returns (`/proc` files claim 0 bytes, a file may grow).
So the last component is opened with `O_NOFOLLOW | O_NONBLOCK`, the open file must be a regular
file (`fstat`), and at most `cap + 1` bytes are read: one more than allowed means too large. Every
refusal is an `OSError` naming the file and saying what it is. Torch-free.
"""

from __future__ import annotations

import errno
import os
import stat

CHUNK = 16 << 20  # read in pieces: the cap of a checkpoint is far more than one allocation should be


class TooLarge(OSError):
    """The file holds more bytes than its cap."""


def kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: str | os.PathLike, cap: int, follow: bool = False) -> bytes:
    """The bytes of the regular file `path` (at most `cap`). `follow=True` follows a link in the last
    component (a path a person gave on the command line); a run directory's files are never links."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:  # what O_NOFOLLOW says of a link
            raise OSError(errno.ELOOP, "a symbolic link, which decaylab does not follow here", str(path)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "a directory where a file should be", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file ({kind(mode)})", str(path))
        return read_capped(lambda n: os.read(fd, n), cap, str(path))
    finally:
        os.close(fd)


def read_capped(read, cap: int, where: str) -> bytes:
    """Bytes from `read(n)` (a stream: local or an object store's) until its end, refusing more than `cap`."""
    chunks, left = [], cap + 1
    while left > 0:
        chunk = read(min(left, CHUNK))
        if not chunk:
            break
        chunks.append(bytes(chunk))
        left -= len(chunk)
    if left <= 0:
        raise TooLarge(errno.EFBIG, f"larger than {cap:,} bytes, more than a real file of its kind holds", where)
    return b"".join(chunks)
