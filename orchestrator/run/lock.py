"""One decaylab writes a run directory at a time: its lock, `RUN_DIR/.decaylab.lock`.

`sweep`, `resume`, `confirm`, `evaluate` and `train` hold it for their whole run; a second one is
refused with who holds it. `report` consolidates the result files only when it can take the lock
at once, and otherwise reports from the files as they are. The file says who holds the lock:
{pid, host, command, started, heartbeat}.

* Locally (and on NFS, whose clients carry `flock` as a lock of the server's) the lock is
  `fcntl.flock` on the file, held by the driver's process: the kernel releases it when the process
  ends, however it ends, so a lock is never stale.
* On object stores, which have no locks (and on a file system without `flock`), the file is a lease:
  the holder rewrites its heartbeat every `HEARTBEAT_S` (a daemon thread), and a lease without a
  heartbeat for `STALE_S` — or whose process is gone from this host — was left by a driver that died.
  A lease whose process is gone from this host is broken at once, with a line that says so: the kernel
  says no such process exists, so nothing can be writing under it (a reused pid reads as alive, which
  only refuses). A lease that is only silent — perhaps a driver on another host, cut off — is broken
  only when asked (`--break-lock`), never silently. Two drivers started within
  the same second can both write a lease; each reads it back, and the one that finds the other's is
  refused, so a lease narrows the race to the time of a PUT and a GET, where `flock` closes it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import secrets
import socket
import stat
import sys
import threading
from collections.abc import Iterator

from orchestrator.errors import RunError
from orchestrator.run.layout import LOCK, MAX_LOCK
from orchestrator.run.storage import RunDir, file_mode
from orchestrator.terminal import visible

HEARTBEAT_S = 30.0
STALE_S = 300.0  # ten missed heartbeats: a driver that is alive never goes this long without one
NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS)  # file systems without flock


class Busy(RunError):
    """Another decaylab holds the run directory's lock (or left a lease that is not broken)."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def holder(command: str, token: str = "") -> dict:
    stamp = now().isoformat(timespec="seconds")
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": stamp,
            "heartbeat": stamp, **({"token": token} if token else {})}


def parse(data: bytes) -> dict | None:
    """The holder a lock file names, or None when it names none (empty, damaged)."""
    try:
        info = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return info if isinstance(info, dict) else None


def who(info: dict | None) -> str:
    """'pid P on host H, `decaylab sweep` since S': the holder a lock file names."""
    if info is None:
        return "a holder the lock file does not name"
    shown = {k: str(info.get(k, "?"))[:80] for k in ("pid", "host", "command", "started")}
    return f"pid {shown['pid']} on host {shown['host']}, `decaylab {shown['command']}` since {shown['started']}"


def in_use(run: RunDir, info: dict | None, more: str = "") -> Busy:
    shown = {k: str((info or {}).get(k, "?"))[:80] for k in ("pid", "host", "command", "started")}
    return Busy(run.location, f"another decaylab (pid {shown['pid']} on host {shown['host']}) is running this run "
                f"directory since {shown['started']} (`decaylab {shown['command']}`){more}",
                f"wait for it to end, or stop it; `decaylab status {run.location}` shows how far it is")


@contextlib.contextmanager
def hold(run: RunDir, command: str, break_lock: bool = False) -> Iterator[None]:
    """Hold the run directory's lock while the block runs; `Busy` when another decaylab holds it."""
    fd = take_flock(run, command) if run.local else None
    if fd is None:  # an object store, or a file system without flock: a lease
        with lease(run, command, break_lock):
            yield
        return
    try:
        yield
    finally:
        try:  # emptied: nobody holds it. The file stays: were it removed, a process that had opened it could
            os.ftruncate(fd, 0)  # lock the old file while another locks a new one
        finally:
            os.close(fd)  # releases the lock


def take_flock(run: RunDir, command: str) -> int | None:
    """The descriptor holding the flock of a local run directory (written with its holder); None when the
    file system has no flock; `Busy` when another process holds it."""
    fd = os.open(run.inside(LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                 file_mode())
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RunError(run.uri(LOCK), "not a regular file", "remove it: decaylab makes its lock file itself")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder(command)).encode(), 0)
        return fd
    except BaseException as e:
        busy = isinstance(e, BlockingIOError)
        info = parse(os.pread(fd, MAX_LOCK, 0)) if busy else None
        os.close(fd)
        if busy:
            raise in_use(run, info) from None
        if isinstance(e, OSError) and e.errno in NO_FLOCK:
            return None
        raise


@contextlib.contextmanager
def try_hold(run: RunDir, command: str) -> Iterator[str | None]:
    """Hold the lock if it can be taken at once: yields None when held, else why not (in words)."""
    stack = contextlib.ExitStack()
    why = None
    try:
        stack.enter_context(hold(run, command))
    except RunError as e:  # another decaylab holds it, or something else is in its place
        why = e.reason
    except OSError as e:  # a run directory this user may only read
        why = f"the run directory's lock cannot be taken ({e.strerror or e})"
    with stack:
        yield why


# ------------------------------------------------------------------------------------- leases


def read_lease(run: RunDir) -> tuple[bool, dict | None]:
    """(whether a lease is there, the holder it names). An empty file is no lease: a lock file is emptied
    when its `flock` is released (a run directory copied from a local disk to an object store has one)."""
    try:
        data = run.read_bytes(LOCK, cap=MAX_LOCK)
    except FileNotFoundError:
        return False, None
    return bool(data.strip()), parse(data)


def age_s(info: dict) -> float | None:
    """Seconds since the lease's last heartbeat (None when it has no readable one)."""
    try:
        beat = dt.datetime.fromisoformat(str(info["heartbeat"]))
    except (KeyError, ValueError):
        return None
    return (now() - (beat if beat.tzinfo else beat.replace(tzinfo=dt.timezone.utc))).total_seconds()


def gone(info: dict) -> bool:
    """Whether the holder was a process of this host that is no longer running."""
    if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return False
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: alive
        return False
    return False


def stale_reason(info: dict | None) -> str | None:
    """Why a lease is left over from a dead driver, or None when its holder is alive."""
    if info is None:
        return "the lock file names no holder (it is damaged)"
    if gone(info):
        return f"its process ({str(info.get('pid'))[:20]}) is no longer running on this host"
    age = age_s(info)
    if age is None:
        return "it has no readable heartbeat"
    if age > STALE_S:
        return f"its last heartbeat was {age / 60:.0f} minutes ago (a live driver beats every {HEARTBEAT_S:.0f} s)"
    return None


@contextlib.contextmanager
def lease(run: RunDir, command: str, break_lock: bool) -> Iterator[None]:
    exists, old = read_lease(run)
    if exists:
        stale = stale_reason(old)
        if stale is not None and old is not None and gone(old):
            break_lock = True  # certain: the holder's process does not exist
        if stale is None:
            more = f" (its last heartbeat: {age_s(old):.0f} s ago)"
            raise in_use(run, old, more + ("; --break-lock breaks only a lock whose holder is gone" if break_lock
                                           else ""))
        if not break_lock:
            raise Busy(run.location, f"the run directory is locked by decaylab ({who(old)}), but {stale}: that "
                       "driver has probably died", "if no decaylab runs this run directory any more, run the "
                       "command again with --break-lock")
        print(visible(f"decaylab: breaking the lock of {run.location}: {stale}"), file=sys.stderr)
    token = secrets.token_hex(8)
    info = holder(command, token)
    run.write_atomic(json.dumps(info).encode(), LOCK)
    if (read_lease(run)[1] or {}).get("token") != token:  # another driver wrote its lease in the same moment
        raise in_use(run, read_lease(run)[1])
    stop = threading.Event()
    beat = threading.Thread(target=heartbeat, args=(run, info, stop), name="decaylab-lock", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join(timeout=5)
        with contextlib.suppress(OSError):
            if (read_lease(run)[1] or {}).get("token") == token:
                run.delete(LOCK)


def heartbeat(run: RunDir, info: dict, stop: threading.Event) -> None:
    """Rewrite the lease's heartbeat every `HEARTBEAT_S` until `stop`; stop beating (and say so) when the lease
    is no longer this process's (broken by another with --break-lock)."""
    while not stop.wait(HEARTBEAT_S):
        try:
            current = read_lease(run)[1] or {}
            if current.get("token") != info["token"]:
                print(visible(f"decaylab: warning: the lock of {run.location} was taken over "
                              f"({who(current or None)}); two drivers may now write it"), file=sys.stderr)
                return
            run.write_atomic(json.dumps({**info, "heartbeat": now().isoformat(timespec="seconds")}).encode(), LOCK)
        except OSError as e:  # a network hiccup: the next beat tries again (a lease lives STALE_S)
            print(visible(f"decaylab: warning: the lock's heartbeat failed ({e}); trying again"), file=sys.stderr)
