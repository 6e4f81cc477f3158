"""Study files → Study: grid expansion, overrides, types, and the messages of rejected input."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from orchestrator.errors import UserError
from orchestrator.study.docs import arm_options, options
from orchestrator.study.load import apply_overrides, load_study, single_trial, study_from_dict
from orchestrator.study.plan import expand_grid
from trials import arms

BASE = {
    "name": "g",
    "methods": {"wd": {"kind": "fixed", "lambda": [0.0, 5e-4, 5e-3]},
                "awd": {"kind": "adaptive", "lambda_awd": [0.01, 0.02]}},
    "lr": [0.01, 0.05],
    "seeds": [0, 1, 2],
}


def test_grid_is_each_arm_times_its_own_grid_times_lr_times_seeds():
    trials = expand_grid(study_from_dict(BASE, "t"))
    assert len(trials) == (3 + 2) * 2 * 3
    fixed = [t for t in trials if t.kind == "fixed"]
    adaptive = [t for t in trials if t.kind == "adaptive"]
    # grids never cross: fixed trials carry λ only, adaptive trials λ_awd only
    assert all(set(t.params) == {"lam"} and t.arm == "wd" for t in fixed)
    assert all(set(t.params) == {"lambda_awd", "avg"} and t.arm == "awd" for t in adaptive)
    assert sorted({t.params["lam"] for t in fixed}) == [0.0, 5e-4, 5e-3]
    assert sorted({t.params["lambda_awd"] for t in adaptive}) == [0.01, 0.02]
    points = {(t.arm, tuple(t.params.items()), t.lr, t.seed) for t in trials}
    assert len(points) == len(trials)
    assert len({t.trial_id for t in trials}) == len(trials)
    # seeds are a shared axis: every (arm, value, lr) has exactly the study's seeds (paired trials)
    for t in trials:
        assert {u.seed for u in trials if (u.arm, u.params, u.lr) == (t.arm, t.params, t.lr)} == {0, 1, 2}


def test_label_noise_list_is_a_grid_axis():
    study = study_from_dict({**BASE, "data": {"label_noise": [0.0, 0.2, 0.4]}}, "t")
    trials = expand_grid(study)
    assert len(trials) == 5 * 2 * 3 * 3
    assert {t.label_noise for t in trials} == {0.0, 0.2, 0.4}
    assert all("-n0.2" in t.trial_id for t in trials if t.label_noise == 0.2)


def test_overrides_use_dotted_keys_and_yaml_values(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: o\nmethods: {wd: {kind: fixed, lambda: [1e-4]}}\n")  # 1e-4 without a dot
    study = load_study(path, ["train.epochs=5", "lr=[0.1, 0.2]", "seeds=[3]", "attack.train.eps=0.1"])
    assert study.train.epochs == 5 and study.lr == (0.1, 0.2) and study.seeds == (3,)
    assert study.attack.train.eps == 0.1
    assert study.arms["wd"].lam == (1e-4,)


@pytest.mark.parametrize("override, key", [
    ("train.epochs=abc", "train.epochs"),
    ("train.epochs=0", "train.epochs"),
    ("lr=[-0.1]", "lr: value -0.1 must be a finite number > 0"),
    ("attack.train.eps=1.5", "attack.train.eps"),
    ("data.val_fraction=1.0", "data.val_fraction"),
    ("seeds=[1.5]", "seeds[0]"),
    ("train.epoch=3", "train.epoch"),
])
def test_bad_overrides_name_the_key(tmp_path, override, key):
    path = tmp_path / "s.yaml"
    path.write_text("name: o\nmethods: {wd: {kind: fixed, lambda: [1e-4]}}\n")
    with pytest.raises(UserError) as err:
        load_study(path, [override])
    assert key in err.value.message and str(path) in err.value.message
    assert f"--set {override.split('=')[0]}" in err.value.message  # says where the value came from


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(UserError) as err:
        study_from_dict({**BASE, "trian": {"epochs": 3}}, "f.yaml")
    assert "did you mean `train`" in err.value.message


def test_fixed_arm_given_lambda_awd_is_rejected_with_the_fix():
    raw = {**BASE, "methods": {"wd": {"kind": "fixed", "lambda_awd": [0.02]}}}
    with pytest.raises(UserError) as err:
        study_from_dict(raw, "f.yaml")
    assert "methods.wd.lambda_awd" in err.value.message and "`lambda`" in err.value.message


def test_duplicated_arm_names_are_rejected(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("methods:\n  wd: {kind: fixed, lambda: [0.0]}\n  wd: {kind: fixed, lambda: [0.1]}\n")
    with pytest.raises(UserError) as err:
        load_study(path)
    assert "line 3" in err.value.message and "'wd' appears twice" in err.value.message


def test_nan_values_are_rejected():
    with pytest.raises(UserError, match="lr"):
        study_from_dict({**BASE, "lr": [math.nan]}, "f.yaml")


def test_single_trial_picks_one_grid_point(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: o\nmethods: {wd: {kind: fixed, lambda: [1e-4]},\n"
                    "          awd: {kind: adaptive, lambda_awd: [0.01]}}\n")
    _, cfg = single_trial(path, ["method=awd", "lambda_awd=0.03", "lr=0.07", "seed=4", "train.epochs=2"])
    assert (cfg.arm, cfg.kind, cfg.lr, cfg.seed) == ("awd", "adaptive", 0.07, 4)
    assert cfg.params == {"lambda_awd": 0.03, "avg": 0.1}
    assert cfg.train.epochs == 2
    with pytest.raises(UserError, match="takes `lambda_awd`"):
        single_trial(path, ["method=awd", "lam=0.1"])


def test_every_option_is_documented():
    rows = [*options(), *(o for kind in arms.KINDS for o in arm_options(kind))]
    keys = {o.key for o in rows}
    assert {"train.epochs", "data.label_noise", "attack.train.eps", "eval.autoattack.examples",
            "eval.pruning.sparsity", "search.n_trials", "resources.gpu", "train.decay", "lambda_awd"} <= keys
    assert all(o.doc for o in rows)
    assert {"pgd", "fgsm_rs", "none"} == set(next(o for o in rows if o.key == "attack.train.kind").allowed)


def test_apply_overrides_does_not_touch_the_input():
    raw = {"train": {"epochs": 3}}
    apply_overrides(raw, ["train.epochs=5"])
    assert raw == {"train": {"epochs": 3}}


def test_validate_command_exit_status_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nmethods: {wd: {kind: fixed, lambda: []}}\n")
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "validate", str(bad)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert "methods.wd.lambda" in out.stderr and "empty" in out.stderr
    assert "Traceback" not in out.stderr
    good = subprocess.run([sys.executable, "-m", "orchestrator.cli", "validate", "studies/digits.yaml"],
                          capture_output=True, text=True, timeout=120)
    assert good.returncode == 0 and "ok" in good.stdout
