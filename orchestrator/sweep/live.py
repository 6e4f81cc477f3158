"""The live view of a sweep: one compact line every 10 s (whether or not a trial reported) and at
each trial's end, with every running trial's epoch.

    [3m12s] 14/36 done · 2 running (awd-0.02-lr0.1-s0 12/25, wd-0-lr0.3-s1 3/25) · 20 pending · 0 failed
    · best val robust: awd 0.645, wd 0.612 · ~5m40s left
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from orchestrator.terminal import visible


def clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


@dataclass
class Progress:
    total: int  # trials this run will have finished at the end (including earlier runs)
    already_done: int = 0  # finished in an earlier run of the same study
    every: float = 10.0  # seconds between periodic lines
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    log: list[str] = field(default_factory=list)  # every line printed (the run's log)
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    diverged: int = 0
    running: dict[str, tuple[int, int]] = field(default_factory=dict)  # trial → (epoch, epochs)
    first_start: float | None = None  # when the first trial of this run started training: the pace's clock
    work: float = 0.0  # trials' work done in this run by trials that ended, in trials (epochs ÷ epochs of each)
    before: dict[str, float] = field(default_factory=dict)  # running trial → its share done before this run
    best: dict[str, float] = field(default_factory=dict)  # arm → best val robust accuracy seen
    sink: TextIO | None = None  # the run's sweep.log, appended line by line
    on_trial_end: Callable[[], None] | None = None  # called after each trial ended and was exported
    _last_print: float = field(default_factory=time.monotonic)

    def trial_started(self, trial: str) -> None:
        """A trial's worker is up and it starts training (again, after a retry)."""
        if self.first_start is None:
            self.first_start = time.monotonic()
        self.running[trial] = (0, 0)

    def result(self, trial: str, arm: str, val_robust: float, epoch: int = 0, epochs: int = 0) -> None:
        if epochs and trial not in self.before:  # its first report here is of the first epoch it trained here
            self.before[trial] = max(int(epoch) - 1, 0) / int(epochs)
        self.running[trial] = (int(epoch), int(epochs))
        if isinstance(val_robust, (int, float)) and math.isfinite(val_robust):
            self.best[arm] = max(self.best.get(arm, -1.0), float(val_robust))
        self.tick()

    def tick(self) -> None:
        """Print the line if the last one is `every` seconds old (called often by the driver)."""
        if time.monotonic() - self._last_print >= self.every:
            self.print()

    def finished(self, trial: str, status: str) -> None:
        epoch, epochs = self.running.pop(trial, (0, 0))
        before = self.before.pop(trial, 0.0)  # dropped also for a retried trial that failed before reporting
        if epochs:
            self.work += epoch / epochs - before
        if status == "failed":
            self.failed += 1
        else:
            self.done += 1
            self.diverged += status == "diverged"
        self.print()
        if self.on_trial_end is not None:
            self.on_trial_end()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        done = self.already_done + self.done
        pending = max(self.total - done - self.failed - len(self.running), 0)
        epochs = ", ".join(f"{t} {e}/{n}" for t, (e, n) in sorted(self.running.items())[:4] if n)
        more = f", +{len(self.running) - 4}" if len(self.running) > 4 and epochs else ""
        parts = [f"[{clock(elapsed)}] {done}/{self.total} done",
                 f"{len(self.running)} running" + (f" ({epochs}{more})" if epochs else ""),
                 f"{pending} pending", f"{self.failed} failed"]
        if self.diverged:
            parts.append(f"{self.diverged} diverged")
        if self.best:
            parts.append("best val robust: " + ", ".join(f"{a} {v:.3f}" for a, v in sorted(self.best.items())))
        eta = self.eta(done)
        if eta is not None:
            parts.append(f"~{clock(eta)} left" if eta >= 1 else "finishing")
        return " · ".join(parts)

    def eta(self, done: int) -> float | None:
        """Seconds left at this run's pace: the trials' work done in this run (in trials: the share of
        its epochs each trained here) per second since the first trial started, all slots together.
        The sweep's start-up (Ray, the estimate) is not in the pace, and neither is the work of an
        earlier run a resumed trial continues; trials not started yet count as whole trials. None
        until there is a pace."""
        if self.first_start is None:
            return None
        work = self.work + sum(e / n - self.before.get(t, 0.0) for t, (e, n) in self.running.items() if n)
        elapsed = time.monotonic() - self.first_start
        if work <= 0 or elapsed <= 0:
            return None
        waiting = max(self.total - done - self.failed - len(self.running), 0)
        left = waiting + sum(1 - e / n if n else 1.0 for e, n in self.running.values())
        return elapsed / work * left

    def say(self, text: str) -> None:
        text = visible(text)  # trial ids, arm names and errors come from files: no escape sequence acts
        self.log.append(text)
        print(text, file=self.stream, flush=True)
        if self.sink is not None:
            self.sink.write(text + "\n")
            self.sink.flush()

    def print(self) -> None:
        self._last_print = time.monotonic()
        self.say(self.line())
