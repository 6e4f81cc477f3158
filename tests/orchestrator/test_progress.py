"""The sweep's live line: its time left is paced by the trials' work since the first trial started."""

from __future__ import annotations

import io

import pytest

from orchestrator.sweep import live as progress_mod
from orchestrator.sweep.live import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress_mod.time, "monotonic", c)
    return c


def test_no_time_left_is_shown_before_any_trial_has_trained(clock):
    p = Progress(total=10, stream=io.StringIO())
    clock.now += 30  # Ray's start-up and the estimate
    assert p.eta(0) is None and "left" not in p.line()
    p.trial_started("a")
    clock.now += 5
    assert p.eta(0) is None  # started, no epoch reported yet


def test_time_left_counts_running_trials_epochs_and_leaves_out_the_start_up(clock):
    p = Progress(total=10, stream=io.StringIO())
    clock.now += 30  # start-up: not part of the pace
    p.trial_started("a")
    p.trial_started("b")
    for epoch in range(1, 6):
        clock.now += 2
        p.result("a", "wd", 0.3, epoch=epoch, epochs=10)
        p.result("b", "wd", 0.3, epoch=epoch, epochs=10)
    # one trial's work in 10 s on the two slots; 8 trials waiting, two halves left: 9 trials' work → 90 s
    assert p.eta(0) == pytest.approx(90.0)
    assert "~1m30s left" in p.line()
    for epoch in range(6, 11):
        clock.now += 2
        p.result("a", "wd", 0.4, epoch=epoch, epochs=10)
        p.result("b", "wd", 0.4, epoch=epoch, epochs=10)
    p.finished("a", "ok")
    p.finished("b", "ok")
    assert p.eta(2) == pytest.approx(80.0)  # 2 trials in 20 s, 8 left


def test_a_resumed_trial_s_earlier_epochs_do_not_speed_up_the_pace(clock):
    p = Progress(total=4, already_done=1, stream=io.StringIO())
    p.trial_started("a")
    clock.now += 10
    p.result("a", "wd", 0.3, epoch=9, epochs=10)  # resumed from epoch 8: one epoch trained here
    # a tenth of a trial in 10 s; two trials waiting and a tenth of this one left
    assert p.eta(1) == pytest.approx(10 / 0.1 * 2.1)
    clock.now += 10
    p.result("a", "wd", 0.3, epoch=10, epochs=10)
    p.finished("a", "ok")
    assert p.work == pytest.approx(0.2)
    assert p.eta(2) == pytest.approx(20 / 0.2 * 2)


def test_the_line_says_finishing_when_only_the_last_epochs_report_is_in(clock):
    p = Progress(total=1, stream=io.StringIO())
    p.trial_started("a")
    clock.now += 10
    p.result("a", "wd", 0.3, epoch=10, epochs=10)
    assert p.line().endswith("finishing")
