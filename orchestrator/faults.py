"""Fault injection for the reliability tests: `DECAYLAB_FAULTS` (JSON) makes a trial fail on purpose.

    DECAYLAB_FAULTS='[{"trial": "wd-0-lr0.05-s0", "epoch": 2, "action": "raise", "once": "/tmp/m"}]'

After reporting epoch `epoch`, the trial raises (`raise`) or kills its own process (`kill`,
SIGKILL: a dead worker). With `once`, the fault fires only while the marker file does not
exist (it is created when the fault fires), so a retry succeeds. Unset, this does nothing.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path


class InjectedFault(RuntimeError):
    pass


def maybe_fail(trial_id: str, epoch: int) -> None:
    spec = os.environ.get("DECAYLAB_FAULTS")
    if not spec:
        return
    for fault in json.loads(spec):
        if fault["trial"] != trial_id or fault["epoch"] != epoch:
            continue
        once = fault.get("once")
        if once:
            if Path(once).exists():
                continue
            Path(once).touch()
        if fault["action"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(f"injected fault in {trial_id} after epoch {epoch}")
