"""`decaylab export` and `trials.models.load_model` on the run directory `decaylab train` writes; the
best-tuned rule behind `--best`; `evaluate --full-test`'s settings."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from helpers.cli import heavy_imports
from helpers.sweep import REPO, write_study

from orchestrator.cli import main
from orchestrator.sweep.evaluate import settings_hash, whole_test_split
from trials import data as data_mod
from trials import selection
from trials.config import Attack, TrialConfig, resolved_eval_attack
from trials.evaluation import FINAL_SEED_OFFSET, correct_counts
from trials.models import load_model, sidecar_path

TRIAL = "wd-0.0005-lr0.05-s0"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The run directory of `decaylab train`: one trial, 2 epochs on 200 digits."""
    tmp = tmp_path_factory.mktemp("train")
    study = write_study(tmp, data={"dataset": "digits", "subset": 200}, train={"epochs": 2, "batch_size": 50},
                        methods={"wd": {"kind": "fixed", "lambda": [5.0e-4]}}, lr=[0.05],
                        eval={"val_examples": 60, "test_examples": 60, "train_examples": 60, "final_examples": 80})
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "train", str(study), "--out", str(tmp / "run")],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return tmp / "run"


@pytest.mark.slow
def test_status_and_report_read_the_output_of_train(trained):
    assert heavy_imports("status", str(trained)) == (0, [])
    code = ("import sys; from orchestrator.cli import report; import analysis.report; "
            "print([m for m in ('torch', 'ray') if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=120).stdout.strip() == "[]"


@pytest.mark.parametrize("checkpoint", ["best", "last"])
@pytest.mark.slow
def test_an_exported_model_reproduces_the_final_evaluation(trained, tmp_path, checkpoint):
    out = tmp_path / "model.pt"
    assert main(["export", str(trained), "--trial", TRIAL, "--checkpoint", checkpoint, "--out", str(out)]) == 0
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["input"] == {"shape": [1, 8, 8], "range": [0.0, 1.0],
                             "normalization": "inside the model (dataset mean and std)"}
    assert meta["threat_model"] == "Linf" and meta["eps"] == 0.25 and meta["checkpoint"] == checkpoint
    model = load_model(out)
    assert not model.training
    # the final evaluation's examples and attack streams, rebuilt from the sidecar alone
    cfg = TrialConfig.from_dict(meta["config"])
    data = data_mod.load(cfg.data, cfg.label_noise)
    examples = data.test.take(meta["accuracy"]["examples"])
    attack = resolved_eval_attack(cfg)
    fgsm = Attack("pgd", attack.eps, 1, attack.eps, random_start=False)
    gen = torch.Generator().manual_seed(cfg.data.split_seed + FINAL_SEED_OFFSET)
    counts = correct_counts(model, examples, [None, fgsm, attack], batch_size=cfg.eval.batch_size, generator=gen)
    measured = [c / len(examples) for c in counts.tolist()]
    assert meta["accuracy"]["examples"] == 80
    assert measured == [meta["accuracy"][k] for k in ("clean_acc", "fgsm_acc", "pgd_acc")]


def test_export_best_picks_the_arm_and_refuses_what_it_cannot(trained, tmp_path, capsys):
    assert main(["export", str(trained), "--best", "wd", "--out", str(tmp_path / "m.pt")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["trial_id"] == TRIAL
    assert main(["export", str(trained), "--best", "awd", "--out", str(tmp_path / "a.pt")]) == 2
    assert "the arms here: wd" in capsys.readouterr().err
    assert main(["export", str(trained), "--trial", "wd-1-lr1-s0", "--out", str(tmp_path / "b.pt")]) == 2
    assert main(["export", str(trained), "--trial", TRIAL, "--out", str(tmp_path / "b.json")]) == 2


@pytest.mark.parametrize(("change", "says"), [
    (lambda state: state.pop("best_model"), "it lacks best_model"),
    (lambda state: state.pop("status"), "keys missing"),  # the loader's own check
    (lambda state: state.update(model=[1, 2]), "are not mappings"),
])
def test_export_of_a_checkpoint_without_what_it_reads_is_a_clear_error(trained, tmp_path, capsys, change, says):
    """Before: `KeyError: 'best_model'` and a traceback."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (path,) = (run / "trials" / TRIAL).glob("checkpoint-*.pt")
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)
    before = sorted(p.name for p in (run / "trials" / TRIAL).iterdir())
    assert main(["export", str(run), "--trial", TRIAL, "--output", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "no usable final checkpoint" in err and says in err and "Traceback" not in err
    assert not (tmp_path / "m.pt").exists() and (run / "trials" / TRIAL / "result.json").exists()
    assert sorted(p.name for p in (run / "trials" / TRIAL).iterdir()) == before  # export only reads


def row(setting: str, lr: float, seed: int, score: float, status: str = "ok") -> dict:
    return {"trial_id": f"{setting}-{lr}-{seed}", "setting": setting, "lr": lr, "seed": seed, "score": score,
            "status": status}


def test_best_tuned_takes_the_best_seed_mean_then_the_best_seed():
    rows = [row("a", 0.1, 0, 0.50), row("a", 0.1, 1, 0.30),  # mean 0.40
            row("b", 0.1, 0, 0.41), row("b", 0.1, 1, 0.45),  # mean 0.43: the best configuration
            row("b", 0.2, 0, 0.60), row("b", 0.2, 1, 0.0, "diverged")]  # mean 0.30 (diverged counts 0)
    assert selection.best_tuned(rows)["trial_id"] == "b-0.1-1"
    # a configuration with a seed failed (or not finished) is not eligible: its mean is over fewer seeds
    partial = [row("a", 0.1, 0, math.nan, "failed"), row("a", 0.1, 1, 0.9), row("b", 0.1, 0, 0.2),
               row("b", 0.1, 1, 0.3)]
    assert selection.best_tuned(partial)["trial_id"] == "b-0.1-1"
    assert selection.best_tuned([row("a", 0.1, 1, 0.9)], seeds=[0, 1]) is None  # seed 0 never ran
    ties = [row("a", 0.1, 0, 0.5), row("a", 0.1, 1, 0.5), row("b", 0.1, 0, 0.5), row("b", 0.1, 1, 0.5)]
    assert selection.best_tuned(ties)["trial_id"] == "a-0.1-0"  # first configuration, smaller seed
    assert selection.best_tuned([row("a", 0.1, 0, 0.0, "diverged")]) is None


def test_full_test_evaluates_every_test_example():
    cfg = TrialConfig.from_dict({"study": "s", "point": {"method": "wd", "kind": "fixed", "params": {"lam": 0.0},
                                                         "lr": 0.1, "seed": 0},
                                 "eval": {"final_examples": 100, "autoattack": {"enabled": True, "examples": 50}}})
    whole = whole_test_split(cfg, 359)
    assert whole.eval.final_examples == whole.eval.autoattack.examples == 359
    section = cfg.eval.model_dump(mode="json")
    assert settings_hash(section, True) != settings_hash(section, False)  # a rerun with --full-test is new work
