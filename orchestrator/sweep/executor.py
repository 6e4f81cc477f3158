"""Where a sweep's trials run, behind one small interface; `orchestrator.ray.executor.RayExecutor` (the
default: a local Ray cluster, or one joined by address) and `LocalExecutor` (`--executor local`: one trial
after another in this process, no Ray) implement it.

    resources = executor.start()                 # {"CPU": n, "GPU": m} of the largest node
    executor.nodes()                             # every node's resources (a trial must fit on one)
    executor.run(work, run=…, experiment=…, study=…, device=…, live=…)
    executor.run_tasks(fn, arg_list, resources, on_done)   # independent tasks (`decaylab evaluate`)
    executor.stop()

Both train each entry through `orchestrator.run.trial.train`, so a trial's record is written the same way
whichever runs it, and both tell the work how each epoch and entry ended.
"""

from __future__ import annotations

import math
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from orchestrator import signals
from orchestrator.errors import UserError
from orchestrator.run import records, results, tracking, trial
from orchestrator.run.storage import RunDir
from orchestrator.study.checks import local_node
from orchestrator.study.plan import Entry, threads
from orchestrator.study.schema import Study
from orchestrator.sweep.live import Progress
from orchestrator.sweep.work import Work


class Executor(Protocol):
    local: bool  # whether the trials run on this machine (its resources are checked before anything starts)

    def check(self, study: Study, where: str) -> None: ...

    def start(self) -> dict[str, float]: ...

    def nodes(self) -> list[dict[str, float]]: ...

    def run(self, work: Work, *, run: RunDir, experiment: str, study: Study, device: str, live: Progress) -> None: ...

    def run_tasks(self, fn: Callable, arg_list: list[tuple], resources: dict,
                  on_done: Callable[[int, Any, str | None], None]) -> None: ...

    def stop(self) -> None: ...


def error_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0][:500]


class LocalExecutor:
    """Every entry in this process, one after another: no Ray, for debugging and for one-machine runs. A
    crashed entry is retried from its checkpoints (`resources.max_failures`); a stop signal takes effect at
    the end of the epoch in progress. TensorBoard events are written like Ray's (MLflow and W&B need Ray)."""

    local = True

    def check(self, study: Study, where: str) -> None:
        """Refuse what this executor cannot do before anything starts: MLflow and W&B log through Ray."""
        for name in ("mlflow", "wandb"):
            if getattr(study.tracking, name):
                raise UserError(where, f"tracking.{name}: logs through Ray, and --executor local runs without it",
                                f"use the Ray executor (the default), or turn it off (--set tracking.{name}=null)")

    def start(self) -> dict[str, float]:
        return local_node(None)

    def nodes(self) -> list[dict[str, float]]:
        return [local_node(None)]

    def run(self, work: Work, *, run: RunDir, experiment: str, study: Study, device: str, live: Progress) -> None:
        boards = TensorBoard(run, experiment) if study.tracking.tensorboard else None
        while (entry := work.next()) is not None:
            signals.check()
            status, report = self._run_entry(entry, work, run, study, device, live, boards)
            work.ended(entry, status, report)
            live.finished(entry.key, status)
            signals.check()

    def _run_entry(self, entry: Entry, work: Work, run: RunDir, study: Study, device: str, live: Progress,
                   boards: TensorBoard | None) -> tuple[str, dict]:
        report: dict = {}

        def after_epoch(trials: list[trial.RecordedTrial]) -> bool:
            report.update(trial.progress(trials))
            live.result(entry.key, report["arm"], report["objective"], report["epoch"], report["epochs"])
            if boards is not None:
                boards.log(entry, trials)
            if signals.stopping():
                raise signals.Interrupted(signals.received)
            return report["status"] == "running" and work.epoch(entry, report)

        for cfg in entry.members:
            records.clear_error(run, cfg.trial_id)
        for attempt in range(study.resources.max_failures + 1):
            live.trial_started(entry.key)
            try:
                trials = trial.train(run, entry.members, device=device, threads=threads(study), after_epoch=after_epoch)
            except signals.Interrupted:
                raise
            except Exception as e:  # the trial's failure, not the sweep's: recorded, retried, then reported
                message = error_line(e)
                if attempt < study.resources.max_failures:
                    live.say(f"trial {entry.key} failed: {message} (retrying from its checkpoint)")
                    continue
                print(traceback.format_exc(), file=sys.stderr, end="")
                live.say(f"trial {entry.key} failed: {message}")
                for cfg in entry.members:
                    records.record_error(run, cfg.trial_id, message, cfg.to_dict())
                    results.export_trial(run, cfg.trial_id)
                return "failed", report
            for t in trials:
                if t.warning:
                    live.say(f"warning: {t.warning}")
            states = {results.trial_record(run, t.trial_id)["status"] for t in trials}
            status = "stopped" if "stopped" in states else ("ok" if states == {"ok"} else "diverged")
            return status, report
        return "failed", report

    def run_tasks(self, fn: Callable, arg_list: list[tuple], resources: dict,
                  on_done: Callable[[int, Any, str | None], None]) -> None:
        for index, args in enumerate(arg_list):
            signals.check()
            try:
                value = fn(*args)
            except Exception as e:
                on_done(index, None, error_line(e))
            else:
                on_done(index, value, None)

    def stop(self) -> None:
        pass


class TensorBoard:
    """Per-epoch scalars of each entry, as Ray's TensorBoard logger writes them (`RUN_DIR/sweep-NNN/<entry>/`),
    with the epoch as the step."""

    def __init__(self, run: RunDir, experiment: str):
        self.root = Path(run.join(experiment)) if run.local else None
        self.writers: dict[str, Any] = {}

    def log(self, entry: Entry, trials: list[trial.RecordedTrial]) -> None:
        if self.root is None:  # object storage: TensorBoard's writer appends to local files only
            return
        from tensorboardX import SummaryWriter

        writer = self.writers.get(entry.key)
        if writer is None:
            writer = self.writers[entry.key] = SummaryWriter(str(self.root / entry.key))
        rows = [(t.config, t.trainer.rows[-1]) for t in trials if t.trainer.rows]
        step = max((t.trainer.epoch for t in trials), default=0)
        for name, value in tracking.member_metrics(rows).items():
            if math.isfinite(value):  # as Ray's logger: a metric not measured this epoch is left out
                writer.add_scalar(f"ray/tune/{name}", value, global_step=step)
        writer.flush()
