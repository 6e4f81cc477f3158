"""The one runner of a trial against its record: every command that trains goes through it.

A trial's record (`orchestrator.run.records`) is the source of truth, so the order of writes is
the contract: after each epoch the row, then the checkpoint that covers it; when the trial ends,
its result (every row, the final evaluations) and its result parts. A trial resumes from its
newest usable checkpoint — one that loads, and whose epochs all have their rows — and a trial
whose process died between its last checkpoint and its result gets the result written from that
checkpoint. `decaylab train`, `evaluate`, both executors and the sweep's resume use this module.

Several member trials (an Optuna configuration's seeds) train in lockstep: one epoch of each,
then `after_epoch`, which may stop them (early stopping: they are recorded as stopped).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.run import records, results
from orchestrator.run.layout import TRIALS
from orchestrator.run.storage import RunDir
from trials.config import EvalConfig, TrialConfig

if TYPE_CHECKING:  # torch comes with the trainer: `decaylab status` reads records without it
    from torch import nn

    from trials.data import TrialData
    from trials.train import Trainer


class RecordedTrial:
    """One member trial: its trainer at the newest usable checkpoint of its record."""

    def __init__(self, run: RunDir, config: TrialConfig, device: str | None = None):
        self.run, self.config = run, config
        self.trainer, self.warning = self._resume(device)

    @property
    def trial_id(self) -> str:
        return self.config.trial_id

    @property
    def finished(self) -> bool:
        return self.trainer.finished

    def _resume(self, device: str | None) -> tuple[Trainer, str]:
        from trials.train import start_trial

        trial_id = self.trial_id
        rows = len(records.read_epoch_rows(self.run, trial_id))
        ended = records.read_result(self.run, trial_id) is not None  # its rows are in result.json

        def use(state: dict | None) -> Trainer:
            if state is not None and state["epoch"] > rows and not ended:
                raise records.DamagedRecord(f"the rows of epochs {rows + 1}…{state['epoch']} are missing or damaged")
            return start_trial(self.config, state, device)

        trainer, warning = records.load_checkpoint(self.run, trial_id, use)
        if trainer.finished and not ended:  # the process died between the final checkpoint and the result
            records.write_result(self.run, trainer.state_dict())
            results.export_trial(self.run, trial_id)
        return trainer, warning

    def step(self) -> dict:
        """Train and evaluate one epoch; write its row, then its checkpoint, then (at the end) the result
        and the result parts. Returns the row."""
        from trials.train import step

        row, state = step(self.trainer)
        records.write_epoch_row(self.run, self.trial_id, row)
        records.write_checkpoint(self.run, self.trial_id, state)
        if self.trainer.finished:
            records.write_result(self.run, state)
            results.export_trial(self.run, self.trial_id)
        return row

    def objective(self) -> float:
        """The selection rule's score so far: best val robust accuracy (0 once diverged, NaN before any)."""
        tr = self.trainer
        if tr.status == "diverged":
            return 0.0
        return tr.best["val_robust_acc"] if tr.best else math.nan

    def evaluations_done(self) -> int:
        """Evaluated epochs so far (every `eval.every`-th and the last): the early-stopping clock."""
        every, epochs, epoch = self.config.eval.every, self.config.train.epochs, self.trainer.epoch
        return epoch // every + (epoch == epochs and epochs % every != 0)


AfterEpoch = Callable[[list[RecordedTrial]], bool | None]


def progress(trials: list[RecordedTrial]) -> dict[str, Any]:
    """What an entry reports after each epoch: the tuning objective (the mean over members of the selection
    score, NaN until every member has one), epochs, evaluations and status."""
    objectives = [t.objective() for t in trials]
    done = all(t.finished for t in trials)
    statuses = {t.trainer.status for t in trials}
    return {"objective": math.fsum(objectives) / len(objectives) if not any(map(math.isnan, objectives)) else math.nan,
            "epoch": max(t.trainer.epoch for t in trials), "epochs": trials[0].config.train.epochs,
            "evaluations": min(t.evaluations_done() for t in trials), "arm": trials[0].config.arm,
            "status": "running" if not done else ("ok" if statuses == {"ok"} else "diverged")}


def train(run: RunDir, members: list[TrialConfig] | tuple[TrialConfig, ...], *, device: str | None = None,
          threads: int | None = None, after_epoch: AfterEpoch | None = None) -> list[RecordedTrial]:
    """Train the members to their end in lockstep, each from its record. `after_epoch(trials)` runs after every
    epoch (and once when every member had already ended); when it returns True the unfinished members stop
    and are recorded as stopped. Returns the members' runners."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    trials = [RecordedTrial(run, cfg, device) for cfg in members]
    if all(t.finished for t in trials):
        if after_epoch:
            after_epoch(trials)
        return trials
    while not all(t.finished for t in trials):
        for t in trials:
            if not t.finished:
                t.step()
        if after_epoch and after_epoch(trials) and not all(t.finished for t in trials):
            for t in trials:
                if not t.finished:
                    records.record_stopped(run, t.trial_id, t.config.to_dict())
                    results.export_trial(run, t.trial_id)
            break
    return trials



def finished_weights(run: RunDir, trial_id: str, evaluation: EvalConfig, device: str | None = None
                     ) -> tuple[dict, TrialConfig, nn.Module, TrialData]:
    """A finished trial's newest usable checkpoint, its config with `evaluation` in place of its own, and a
    model (of that config, on `device`) its weights load into, with the trial's data; a checkpoint whose
    weights do not load falls back to the one before (`decaylab evaluate`)."""
    from trials.train import build_trainer

    def loaded(state: dict | None):
        if state is None:
            return None
        cfg = TrialConfig.from_dict(state["config"]).model_copy(update={"eval": evaluation})
        tr = build_trainer(cfg, device)
        for key in ("model", "best_model", "ema_best_model"):
            if state.get(key) is not None or key == "model":
                tr.model.load_state_dict(state[key])
        return state, cfg, tr

    found, warning = records.load_checkpoint(run, trial_id, loaded)
    if found is None:
        raise RuntimeError(f"no usable checkpoint of {trial_id} in {TRIALS}/{trial_id}/ ({warning or 'none'})")
    state, cfg, tr = found
    return state, cfg, tr.model, tr.data
