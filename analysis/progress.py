"""How far a sweep got: counts by status, the partial/complete line, and the unfinished trials.

A trial is *finished* when it ended on its own: `ok`, or `diverged` (a non-finite loss stops it
at once and keeps its rows). `failed` and `running` trials are not finished, and neither is a
planned trial with no row yet; any of those makes the report partial.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.select import LEVEL
from trials import schema

FINISHED = ("ok", "diverged", "stopped")  # stopped: ended early by the tuning scheduler


@dataclass(frozen=True)
class Progress:
    counts: dict[str, int]  # trials per status, every status present
    planned: int | None  # from the manifest; None without one

    @property
    def known(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(self.counts[status] for status in FINISHED)

    @property
    def total(self) -> int:
        """Trials the sweep is made of: the planned count, or those seen when none is known."""
        return max(self.planned or 0, self.known)

    @property
    def partial(self) -> bool:
        """Fewer trials finished than make up the sweep; a sweep with no trial yet is partial too."""
        return self.finished < self.total or self.total == 0

    def line(self) -> str:
        """'partial: 30 of 48 trials finished (…)' or 'complete: 48 of 48 trials finished (…)'."""
        parts = [f"{self.counts[s]} {s}" for s in schema.STATUSES if self.counts[s]]
        not_started = self.total - self.known
        if not_started > 0:
            parts.append(f"{not_started} not started")
        if self.planned is None:
            parts.append("no manifest, so the planned count is unknown")
        state = "partial" if self.partial else "complete"
        return f"{state}: {self.finished} of {self.total} trials finished ({', '.join(parts) or 'no trials'})"


def progress(outcomes: pd.DataFrame, planned: int | None) -> Progress:
    counts = outcomes["status"].value_counts()
    return Progress({status: int(counts.get(status, 0)) for status in schema.STATUSES}, planned)


def unfinished_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Diverged, failed and running trials with the epoch they reached and any error message.

    For a diverged trial `epoch` is its last logged epoch: the one whose loss went non-finite.
    """
    rows = outcomes[(outcomes["status"] != "ok") | outcomes["no_eval"]]
    epoch = rows["last_epoch"].fillna(rows["epochs_done"].astype("float64"))
    table = pd.DataFrame(
        {
            "trial_id": rows["trial_id"],
            "status": rows["status"],
            LEVEL: rows[LEVEL],
            "method": rows["method"],
            "setting": rows["setting"],
            "lr": rows["lr"],
            "seed": rows["seed"],
            "epoch": epoch.astype("Int64"),
            "error": rows["error"].fillna("").where(~rows["no_eval"], "finished, but has no final evaluation"),
        }
    )
    order = {status: i for i, status in enumerate(schema.STATUSES)}
    return table.sort_values(["status", "trial_id"], key=lambda s: s.map(order) if s.name == "status" else s)
