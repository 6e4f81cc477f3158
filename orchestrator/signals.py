"""Pre-emption: SIGTERM (what SLURM and Kubernetes send) and SIGINT (Ctrl-C) stop a sweep gracefully.

While a sweep runs, either signal only records itself (`received`): Ray Tune's loop asks
`orchestrator.ray.executor.WorkStopper` after every step and ends the experiment (the local executor
checks at the end of each epoch), the result files are
consolidated from every finished trial, Ray is shut down, and the command exits with 128 + the
signal number (143 for SIGTERM, 130 for SIGINT) after one line telling the user to `decaylab
resume RUN_DIR`. Running trials lose only the epoch in progress: each wrote a checkpoint at its
last finished epoch. The handler raises nothing (an exception raised inside Ray's compiled code
surfaces as a SystemError), and it is installed after `ray.init`, which would otherwise answer
SIGTERM with a stack dump and an abort. Ray Tune's own SIGINT handling is turned off
(`TUNE_DISABLE_SIGINT_HANDLER`): decaylab's does the same, for SIGTERM too. When the signal also
ended the Ray cluster (sent to the whole process group or job), `ray.executor.exit_with_lost_cluster` ends
the sweep without waiting for it; it learns of the signal from `wait`, at once, from any thread.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Iterator
from typing import NoReturn

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DEFAULTS = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}

received: int | None = None  # the first stop signal; trials ending from then on were cut short, not failed
# the pipe Python's C-level handler writes each caught signal's number to (`signal.set_wakeup_fd`) while
# `graceful_stop` runs: `wait` reads it, so another thread hears of a signal the moment it arrives, not
# when the main thread next runs Python code (it may be inside Ray for a while). Made once, never closed:
# a thread may still be waiting on it when the block ends.
_wakeup: tuple[int, int] | None = None


class Interrupted(Exception):
    """The sweep stopped because of a signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def stopping() -> bool:
    return received is not None


def check() -> None:
    """Raise `Interrupted` if a stop signal has arrived."""
    if received is not None:
        raise Interrupted(received)


@contextlib.contextmanager
def graceful_stop() -> Iterator[None]:
    """Record SIGTERM and SIGINT instead of dying while the block runs (main thread only)."""

    def handler(signum, frame):
        global received
        if received is None:
            received = signum

    global _wakeup, received
    received = None  # a new block starts unstopped (a process may run several, e.g. a test's)
    if _wakeup is None:
        _wakeup = os.pipe()
        for fd in _wakeup:
            os.set_blocking(fd, False)
    _drain()
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    previous_fd = signal.set_wakeup_fd(_wakeup[1], warn_on_full_buffer=False)
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for s, h in previous.items():  # None: a handler not set from Python (Ray's): the default then
            signal.signal(s, h if h is not None else DEFAULTS[s])


def _drain() -> list[int]:
    """The signal numbers written to the wake-up pipe since it was last read."""
    numbers = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(_wakeup[0], 512):
            numbers.extend(chunk)
    return numbers


def wait(timeout: float) -> bool:
    """Whether a stop signal has arrived, waiting up to `timeout` seconds for one. It hears of signals
    inside `graceful_stop` only. Callable from any thread."""
    global received
    if _wakeup is None:  # never inside `graceful_stop`: nothing to hear
        time.sleep(timeout)
        return received is not None
    deadline = time.monotonic() + timeout
    while received is None and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([_wakeup[0]], [], [], left)
        stop = [n for n in _drain() if n in STOP_SIGNALS] if ready else []
        if stop and received is None:  # the main thread's handler records the same when it runs
            received = stop[0]
    return received is not None


def exit_now(status: int) -> NoReturn:
    """Flush the output and end the process with `status`, skipping the interpreter's teardown (and
    whatever is registered to run at exit: the caller runs what must run first)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def stop_line(location: str, stop: Interrupted) -> str:
    """What a stopped sweep says last."""
    return (f"stopped by {stop}: finished trials are kept, running ones continue from their last finished epoch "
            f"— `decaylab resume {location}`")
