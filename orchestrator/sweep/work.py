"""What a sweep hands its executor: work that yields entries (`orchestrator.study.plan.Entry`) and hears
how each epoch and each entry ended. The grid comparison is a fixed list; the Optuna stage
(`orchestrator.sweep.optuna.OptunaWork`) asks and tells as entries run.

    entry = work.next()                 # the next entry to start, None when none is left
    stop = work.epoch(entry, report)    # after each epoch of it: True stops it early
    work.ended(entry, status, report)   # ok | diverged | stopped | failed
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from orchestrator.study.plan import Entry


class Work(Protocol):
    total: int  # entries it will yield

    def next(self) -> Entry | None: ...

    def epoch(self, entry: Entry, report: dict) -> bool: ...

    def ended(self, entry: Entry, status: str, report: dict) -> None: ...


class GridWork:
    """The comparison: every given entry to full length, in study order, never stopped early."""

    def __init__(self, entries: list[Entry]):
        self.pending = deque(entries)
        self.total = len(entries)

    def next(self) -> Entry | None:
        return self.pending.popleft() if self.pending else None

    def epoch(self, entry: Entry, report: dict) -> bool:
        return False

    def ended(self, entry: Entry, status: str, report: dict) -> None:
        pass
