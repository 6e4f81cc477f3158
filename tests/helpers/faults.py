"""Faults injected into trials for the reliability tests. decaylab has no fault switch of its own: a test
wraps `orchestrator.run.trial.RecordedTrial.step`, in its own process with `inject` (pytest's monkeypatch),
or in the processes a command starts (Ray's workers included) with `environment`, which puts a
`sitecustomize` module on PYTHONPATH: Python imports it at start-up, and it wraps the runner the moment
the runner is imported.

A fault: {"trial": <trial id>, "epoch": <n>, "action": "raise" | "kill" | "term" | "wait", "once": <marker
file, optional>, "until": <file, for wait>}. After the trial's epoch `n` is recorded, it raises (`raise`),
its process kills itself (`kill`, SIGKILL: a dead worker), signals itself to stop (`term`, SIGTERM) or
waits until the file `until` exists (`wait`: the test decides when the sweep goes on). With `once`, it
fires only while the marker file does not exist.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from helpers.sweep import REPO

WAIT_S = 300.0  # a `wait` fault's longest wait: a test that never lets the trial go fails, not hangs

SITECUSTOMIZE = '''
import importlib.abc, importlib.util, json, os, sys

FAULTS = json.loads(os.environ.get("DECAYLAB_TEST_FAULTS", "[]"))
SLOW = float(os.environ.get("DECAYLAB_TEST_SLOW_CONSOLIDATE", "0"))


class _Wrap(importlib.abc.MetaPathFinder):
    def __init__(self, wrappers):
        self.wrappers = wrappers  # module name -> function(module)

    def find_spec(self, name, path, target=None):
        if name not in self.wrappers:
            return None
        wrapper = self.wrappers.pop(name)
        if not self.wrappers:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            wrapper(module)

        spec.loader.exec_module = exec_module
        return spec


def _faults(module):
    from helpers.faults import wrap

    wrap(module.RecordedTrial, FAULTS)


def _slow(module):
    from helpers.faults import slowed

    module.consolidate = slowed(module.consolidate, SLOW)


WRAPPERS = {**({"orchestrator.run.trial": _faults} if FAULTS else {}),
            **({"orchestrator.run.results": _slow} if SLOW else {})}
if WRAPPERS:
    sys.meta_path.insert(0, _Wrap(WRAPPERS))
'''


def slowed(consolidate, seconds: float):
    """`results.consolidate` that waits `seconds` first: a window, between the last trial's record and the
    result files, long enough for a test to act in."""
    import time

    def consolidate_slowly(*args, **kwargs):
        time.sleep(seconds)
        return consolidate(*args, **kwargs)

    return consolidate_slowly


def fire(fault: dict, trial_id: str, epoch: int) -> None:
    if fault["trial"] != trial_id or fault["epoch"] != epoch:
        return
    once = fault.get("once")
    if once:
        if Path(once).exists():
            return
        Path(once).touch()
    if fault["action"] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault["action"] == "wait":
        deadline = time.monotonic() + WAIT_S
        while not Path(fault["until"]).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{trial_id} waited {WAIT_S:.0f} s for {fault['until']}")
            time.sleep(0.05)
        return
    if fault["action"] == "term":  # a stop signal to the process itself, as a scheduler sends it
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise RuntimeError(f"injected fault in {trial_id} after epoch {epoch}")


def faulty(step, faults: list[dict]):
    """`step` (RecordedTrial's) firing `faults` after each recorded epoch."""

    def step_with_faults(self):
        row = step(self)
        for fault in faults:
            fire(fault, self.trial_id, row["epoch"])
        return row

    return step_with_faults


def wrap(cls, faults: list[dict]) -> None:
    cls.step = faulty(cls.step, faults)


def inject(monkeypatch, faults: list[dict]) -> None:
    """The faults, in this process (the local executor's trials run here)."""
    from orchestrator.run import trial

    monkeypatch.setattr(trial.RecordedTrial, "step", faulty(trial.RecordedTrial.step, faults))


def environment(directory: Path, faults: list[dict], slow_consolidate: float = 0.0) -> dict[str, str]:
    """Environment variables that inject `faults` into every Python process of a command (its Ray workers
    inherit them), and with `slow_consolidate` a wait of that many seconds before each consolidation of the
    result files; `directory` receives the start-up module."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join([str(directory), str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {"DECAYLAB_TEST_FAULTS": json.dumps(faults), "DECAYLAB_TEST_SLOW_CONSOLIDATE": str(slow_consolidate),
            "PYTHONPATH": path.rstrip(os.pathsep)}
