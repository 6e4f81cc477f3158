"""Pre-emption: SIGTERM (what SLURM and Kubernetes send) and SIGINT (Ctrl-C) stop a sweep gracefully.

While a sweep runs, either signal only records itself (`received`): Ray Tune's loop asks
`tune_backend.StopOnSignal` after every step and ends the experiment, the result files are
consolidated from every finished trial, Ray is shut down, and the command exits with 128 + the
signal number (143 for SIGTERM, 130 for SIGINT) after one line telling the user to `decaylab
resume RUN_DIR`. Running trials lose only the epoch in progress: each wrote a checkpoint at its
last finished epoch. The handler raises nothing (an exception raised inside Ray's compiled code
surfaces as a SystemError), and it is installed after `ray.init`, which would otherwise answer
SIGTERM with a stack dump and an abort. Ray Tune's own SIGINT handling is turned off
(`TUNE_DISABLE_SIGINT_HANDLER`): decaylab's does the same, for SIGTERM too. When the signal also
ended the Ray cluster (sent to the whole process group or job), `sweep.exit_with_lost_cluster` ends
the sweep without waiting for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import NoReturn

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DEFAULTS = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}

received: int | None = None  # the first stop signal; trials ending from then on were cut short, not failed


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

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():  # None: a handler not set from Python (Ray's): the default then
            signal.signal(s, h if h is not None else DEFAULTS[s])


def exit_now(status: int) -> NoReturn:
    """Flush the output and end the process with `status`, skipping the interpreter's teardown (and
    whatever is registered to run at exit: the caller runs what must run first)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
