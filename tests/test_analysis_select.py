"""Selection happens on validation only: the selected epoch, the best-tuned settings, exclusions."""

from __future__ import annotations

import analysis_fixtures as fx
import numpy as np
import pandas as pd
import pytest

from analysis import select


@pytest.fixture(scope="module")
def frames():
    return fx.build()


@pytest.fixture(scope="module")
def settings(frames):
    return select.setting_table(select.trial_outcomes(frames.epochs, frames.trials))


def _best_keys(best: pd.DataFrame, per_lr: bool = False) -> dict:
    if per_lr:
        return {(r.method, r.lr): r.hp for r in best.itertuples()}
    return {r.method: (r.hp, r.lr) for r in best.itertuples()}


def test_selected_epoch_is_first_of_tied_val_maxima(frames):
    best = select.selected_epochs(frames.epochs).set_index("trial_id")
    ok = frames.trials.loc[frames.trials["status"] == "ok", "trial_id"]
    assert (best.loc[ok, "best_epoch"] == 2).all()  # val [v-0.05, v, v]: epoch 2, not 3 (nor 1, test's pick)
    assert best.loc[fx.trial_id("awd", 0.02, 0.01, 1), "best_val_robust_acc"] == pytest.approx(0.49)


def test_nan_validation_epochs_are_skipped():
    epochs = pd.DataFrame(
        {
            "trial_id": ["a"] * 3 + ["b"] * 2,
            "epoch": [1, 2, 3, 1, 2],
            "val_robust_acc": [0.2, np.nan, 0.3] + [np.nan] * 2,
        }
    )
    best = select.selected_epochs(epochs)
    assert best["trial_id"].tolist() == ["a"]  # b has nothing evaluated: no selection
    assert best["best_epoch"].tolist() == [3]


def test_best_tuned_settings_match_hand_computation(settings):
    assert _best_keys(select.best_tuned(settings)) == fx.BEST
    per_lr = _best_keys(select.best_tuned(settings, per_lr=True), per_lr=True)
    assert per_lr == {(arm, lr): hp for arm, by_lr in fx.BEST_PER_LR.items() for lr, hp in by_lr.items()}


def test_reference_is_the_fixed_arm(settings):
    assert select.reference_arms(select.best_tuned(settings)).to_dict() == {0.0: "wd"}


def test_selection_ignores_test_columns(frames, settings):
    rng = np.random.default_rng(1)
    shuffled = frames.epochs.copy()
    for column in ["test_robust_acc", "test_clean_acc"]:
        shuffled[column] = rng.permutation(shuffled[column].to_numpy())
    again = select.setting_table(select.trial_outcomes(shuffled, frames.trials))
    pd.testing.assert_frame_equal(select.selected_epochs(shuffled), select.selected_epochs(frames.epochs))
    assert _best_keys(select.best_tuned(again)) == _best_keys(select.best_tuned(settings))
    assert _best_keys(select.best_tuned(again, True), True) == _best_keys(select.best_tuned(settings, True), True)
    pd.testing.assert_series_equal(again["score"], settings["score"])


def test_diverged_seed_counts_zero_and_all_diverged_setting_is_ineligible(settings):
    rows = settings[(settings["method"] == "wd") & (settings["lr"] == 1.0)].set_index("hp")
    assert rows.loc[1e-4, "n_diverged"] == 2 and not rows.loc[1e-4, "eligible"]
    assert rows.loc[1e-3, "score"] == pytest.approx((0.0 + 0.19) / 2)
    assert rows.loc[1e-3, "best_test_robust_acc_mean"] == pytest.approx(0.19)  # metrics: ok seeds only


def test_diverged_and_running_trials_never_supply_a_checkpoint():
    epochs, _ = fx.running_trial()
    frames = fx.build(extra_epochs=epochs)
    outcomes = select.trial_outcomes(frames.epochs, frames.trials)
    best = select.best_tuned(select.setting_table(outcomes))
    assert 0.05 not in best["hp"].tolist()  # the running trial's 0.99 val is not eligible
    running = outcomes.set_index("trial_id").loc[fx.trial_id("awd", 0.05, 0.01, 0)]
    assert running["status"] == "running" and np.isnan(running["score"])
    diverged = outcomes[outcomes["trial_id"].isin(fx.DIVERGED_IDS)]
    assert (diverged["score"] == 0).all() and (diverged["sens_robust"] == 0).all()
