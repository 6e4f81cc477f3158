"""Reading a run directory while a sweep replaces its files: every snapshot comes from one export."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from helpers import analysis as fx

from analysis import load
from analysis.load import ResultsError, load_run


def replace_atomically(path, frame: pd.DataFrame) -> None:
    """What the sweep's export does: write a temp file, then rename it over the old one."""
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp)
    os.replace(tmp, path)


def export_during_reads(monkeypatch, run, *, times: int) -> dict:
    """Make the next `times` reads of epochs.parquet be followed by a new export of both files."""
    state = {"exports": 0}
    read_table = load.read_table

    def reading(path, columns):
        frame = read_table(path, columns)
        if path.name == load.EPOCHS_FILE and state["exports"] < times:
            state["exports"] += 1
            epochs = pd.read_parquet(run / load.EPOCHS_FILE)
            trials = pd.read_parquet(run / load.TRIALS_FILE)
            replace_atomically(run / load.EPOCHS_FILE, epochs.iloc[:-1])  # one epoch row fewer each time
            replace_atomically(run / load.TRIALS_FILE, trials.iloc[:-1])
        return frame

    monkeypatch.setattr(load, "read_table", reading)
    return state


def test_a_read_that_straddles_an_export_is_repeated(tmp_path, monkeypatch):
    run = fx.write_run(tmp_path / "run")
    n_epochs, n_trials = len(pd.read_parquet(run / load.EPOCHS_FILE)), len(pd.read_parquet(run / load.TRIALS_FILE))
    state = export_during_reads(monkeypatch, run, times=2)
    loaded = load_run(run)
    assert state["exports"] == 2
    # the frames are the files as the last export left them, both of them
    assert len(loaded.epochs) == n_epochs - 2 and len(loaded.trials) == n_trials - 2


def test_files_that_never_settle_give_a_clear_error(tmp_path, monkeypatch):
    run = fx.write_run(tmp_path / "run")
    monkeypatch.setattr(load.time, "sleep", lambda _s: None)
    export_during_reads(monkeypatch, run, times=10**6)
    with pytest.raises(ResultsError, match="kept changing"):
        load_run(run)
