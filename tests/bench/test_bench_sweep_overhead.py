"""bench.sweep_overhead's split of the wall time into steady and one-off parts."""

from __future__ import annotations

import pandas as pd
import pytest

from bench import sweep_overhead as so


def closings(text: str) -> dict[str, float]:
    return {line.split(":")[0]: float(line.split(":")[1]) for line in text.splitlines()
            if line.startswith("sweep_")}


def test_sides_alike_give_ratios_of_one(capsys):
    slots = [[(60.0, 4.0), (58.0, 6.0)]]
    so.verdicts(8, slots, slots, 1.0)
    assert closings(capsys.readouterr().out) == {"sweep_overhead": 1.0, "sweep_steady": 1.0}


def test_the_steady_ratio_leaves_the_one_off_part_out(capsys):
    """8 trials on 2 slots (a slot's span 60 s, 2 s before and after); the sweep adds 6 s once and 5% to the span."""
    baseline = [[(60.0, 2.0), (60.0, 2.0)]]
    sweep = [[(63.0, 8.0), (63.0, 8.0)]]
    so.verdicts(8, sweep, baseline, 71.0 / 62.0)
    got = closings(capsys.readouterr().out)
    assert got["sweep_steady"] == pytest.approx(1.05, abs=1e-3)
    assert got["sweep_overhead"] == pytest.approx(71 / 62, abs=1e-3)


def test_a_sweeps_slots_are_its_workers_first_start_to_last_end():
    ray = pd.DataFrame({"pid": [1, 1, 2, 2], "began": [10.0, 30.0, 11.0, 29.0], "ended": [30.0, 50.0, 29.0, 52.0]})
    spans = sorted(so.sweep_slots({"wall": 60.0, "ray": ray}))
    assert spans == [(40.0, 20.0), (41.0, 19.0)]
