"""A trial's result parts are built as Arrow tables straight from its record (no pandas frame per trial):
the same values and dtypes as the pandas path they replace, the same refusals of values that do not
fit, and parts written by earlier versions (through pandas) still read."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from helpers.trial import trained_trial

from orchestrator.run import records, results
from orchestrator.run.storage import RunDir
from trials.schema import EPOCH_COLUMNS, EVAL_COLUMNS, TRIAL_COLUMNS, conform

COLUMNS = {"epochs": EPOCH_COLUMNS, "trials": TRIAL_COLUMNS, "evaluations": EVAL_COLUMNS}


@pytest.fixture(scope="module")
def ended(tmp_path_factory) -> tuple[RunDir, str, dict]:
    """A run directory holding the record of one real 5-epoch trial, and that trial's state."""
    config, rows, final = trained_trial()
    run = RunDir(str(tmp_path_factory.mktemp("tables") / "run"))
    for row in rows:  # as the trainable writes them: the rows, then the result that takes them in
        records.write_epoch_row(run, config.trial_id, row)
    records.write_result(run, final)
    return run, config.trial_id, results.trial_state(run, config.trial_id)


def pandas_rows(state: dict) -> dict[str, pd.DataFrame]:
    """The three tables as the earlier pandas path built them: a frame of the dicts, conformed."""
    rows = {"epochs": [dict(r, status=state["status"]) for r in state["rows"]],
            "trials": [results.trial_row(state)], "evaluations": state["evaluations"]}
    return {t: conform(pd.DataFrame(rows[t], columns=list(COLUMNS[t])), COLUMNS[t]) for t in COLUMNS}


@pytest.mark.slow
def test_arrow_tables_hold_what_the_pandas_frames_held(ended):
    _, _, state = ended
    assert len(state["rows"]) == 5 and state["evaluations"]
    expected = pandas_rows(state)
    for table, arrow in results.trial_tables(state).items():
        got = conform(arrow.to_pandas(), COLUMNS[table])
        pd.testing.assert_frame_equal(got, expected[table], check_exact=True)
    # NaN-filled columns of other arms stay missing: text as <NA>, numbers as NaN
    epochs = conform(results.trial_tables(state)["epochs"].to_pandas(), EPOCH_COLUMNS)
    assert epochs["granularity"].isna().all() and epochs["lambda_awd"].isna().all()


@pytest.mark.parametrize(("column", "value", "says"), [
    ("val_robust_acc", "0.5", "'val_robust_acc'"),  # text where a number belongs
    ("setting", 3.0, "'setting'"),  # a number where text belongs
    ("epoch", None, "'epoch'"),  # a missing integer: integers identify rows
    ("seed", 1.5, "'seed'"),  # a non-integral number for an integer
])
@pytest.mark.slow
def test_values_that_do_not_fit_are_refused_naming_the_column(ended, column, value, says):
    _, _, state = ended
    row = dict(state["rows"][0], status="ok", **{column: value})
    with pytest.raises(TypeError, match=says):
        results.arrow_table([row], "epochs")


def test_missing_and_integral_values_convert_as_conform_does(ended):
    _, _, state = ended
    row = dict(state["rows"][0], status="ok", epoch=3.0, granularity=math.nan, lam=None, setting=None)
    got = results.arrow_table([row], "epochs").to_pylist()[0]
    assert got["epoch"] == 3 and isinstance(got["epoch"], int)
    assert got["granularity"] is None and got["setting"] is None and math.isnan(got["lam"])
    trial = dict(results.trial_row(state), best_epoch=None)
    assert results.arrow_table([trial], "trials").to_pylist()[0]["best_epoch"] is None


def test_parts_written_through_pandas_by_earlier_versions_still_consolidate(ended):
    run, trial_id, state = ended
    results.export_trial(run, trial_id)
    results.consolidate(run)
    new = {t: pd.read_parquet(run.join(f"{t}.parquet")) for t in COLUMNS}
    for table, frame in pandas_rows(state).items():  # the earlier part format: pandas' own to_parquet
        run.write_atomic(results.pandas_parquet_bytes(frame), results.PARTS, table, f"{trial_id}.parquet")
        run.delete(results.PARTS, table, f"{trial_id}.arrow")  # now only the earlier format is there
    results.consolidate(run)
    for table in COLUMNS:
        pd.testing.assert_frame_equal(pd.read_parquet(run.join(f"{table}.parquet")), new[table], check_exact=True)


def test_parts_are_written_without_fsync_and_an_empty_one_is_rebuilt_from_the_record(ended, monkeypatch):
    """Parts skip the fsync (a crash of the machine may leave one empty); consolidation then rebuilds it."""
    import os

    run, trial_id, _ = ended
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    results.export_trial(run, trial_id)
    assert synced == []  # three parts, no fsync
    results.consolidate(run)
    assert len(synced) == 6  # the three result files are fsynced, and their directory after each rename
    before = {t: pd.read_parquet(run.join(f"{t}.parquet")) for t in COLUMNS}
    for table in COLUMNS:
        run.write_atomic(b"", results.PARTS, table, f"{trial_id}.arrow")
    results.consolidate(run)
    for table in COLUMNS:
        pd.testing.assert_frame_equal(pd.read_parquet(run.join(f"{table}.parquet")), before[table], check_exact=True)


def test_parts_are_arrow_files_and_win_over_a_parquet_part_an_earlier_version_left(ended):
    import pyarrow as pa

    run, trial_id, state = ended
    results.export_trial(run, trial_id)
    for table in COLUMNS:  # Arrow IPC files holding the trial's rows, in the schema
        part = pa.ipc.open_file(pa.BufferReader(run.read_bytes(results.PARTS, table, f"{trial_id}.arrow"))).read_all()
        assert part.schema.equals(results.SCHEMAS[table]) and len(part) == {"epochs": 5, "trials": 1}.get(
            table, len(state["evaluations"]))
    # a stale parquet part beside the Arrow one (e.g. from before `decaylab evaluate` rebuilt it) is not read
    stale = pandas_rows(state)["trials"].assign(best_epoch=1)
    run.write_atomic(results.pandas_parquet_bytes(stale), results.PARTS, "trials", f"{trial_id}.parquet")
    results.consolidate(run)
    assert results.part_ids(run, "trials") == [trial_id]
    trials = pd.read_parquet(run.join("trials.parquet"))
    assert len(trials) == 1 and trials["best_epoch"].iloc[0] == results.trial_row(state)["best_epoch"] != 1
    run.delete(results.PARTS, "trials", f"{trial_id}.parquet")
