"""The study files in studies/: each validates, states its trial count and command, and — for the
paper reproductions — holds the paper's settings; slow: each GPU study trains one epoch on tiny
data in its dataset's on-disk format, and the CPU studies sweep through Ray into a report.

The data roots of the paper studies (data/cifar10, ...) do not exist here, so every check points
`data.root` at a temporary directory holding a few images in the dataset's real file format.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.datasets import (
    gray_images,
    rgb_images,
    write_cifar10,
    write_cifar100,
    write_flowers102,
    write_mnist_style,
    write_svhn,
    write_tiny_imagenet,
)
from helpers.sweep import REPO, decaylab

from orchestrator.cli import main
from orchestrator.study.load import load_study, parse_yaml
from orchestrator.study.plan import confirmation_seeds, expand_grid
from orchestrator.study.schema import Study
from trials.config import resolved_eval_attack, resolved_train_attack

STUDIES = REPO / "studies"

# Every study file and its exact number of grid trials (the tuning stage; a confirmation adds its own).
TRIALS = {
    "digits.yaml": 48,
    "digits_label_noise.yaml": 24,
    "digits_pruning.yaml": 8,
    "cifar10_preact18.yaml": 108,
    "cifar100_preact18.yaml": 108,
    "cifar10_wrn28_10.yaml": 108,
    "svhn_preact18.yaml": 108,
    "fashion_mnist.yaml": 108,
    "tiny_imagenet_preact18.yaml": 108,
    "digits_arms.yaml": 36,
    "cifar10_arms_preact18.yaml": 51,
    "cifar100_wrn28_10.yaml": 108,
    "flowers102_preact18.yaml": 108,
    "cifar10_label_noise_preact18.yaml": 36,
    "cifar10_rice_preact18.yaml": 6,
    "digits_overfit.yaml": 8,
}
# The paper reproductions (GPU studies): file → (dataset, model.arch).
PAPER = {
    "cifar10_preact18.yaml": ("cifar10", "preact_resnet18"),
    "cifar100_preact18.yaml": ("cifar100", "preact_resnet18"),
    "cifar10_wrn28_10.yaml": ("cifar10", "wide_resnet"),
    "svhn_preact18.yaml": ("svhn", "preact_resnet18"),
    "fashion_mnist.yaml": ("fashion_mnist", "preact_resnet18"),
    "tiny_imagenet_preact18.yaml": ("image_folder", "preact_resnet18"),
    "cifar100_wrn28_10.yaml": ("cifar100", "wide_resnet"),
    "flowers102_preact18.yaml": ("flowers102", "preact_resnet18"),
}
# Every other GPU study (not a reproduction of one paper setting): file → (dataset, model.arch).
GPU_STUDIES = {**PAPER, "cifar10_arms_preact18.yaml": ("cifar10", "preact_resnet18"),
               "cifar10_label_noise_preact18.yaml": ("cifar10", "preact_resnet18"),
               "cifar10_rice_preact18.yaml": ("cifar10", "preact_resnet18")}
CPU_STUDIES = ("digits_label_noise.yaml", "digits_pruning.yaml")

LAMBDA_GRID = (1e-4, 2e-4, 5e-4, 1e-3, 5e-3)
LAMBDA_AWD_GRID = (0.01, 0.016, 0.022, 0.03)
LR_GRID = (0.05, 0.1, 0.2, 0.4)
EPS = {"fashion_mnist": (0.1, 0.025)}  # (ε, PGD step); every other paper study: 8/255, 2/255
TINY_IMAGENET_CLASSES = ["n01443537", "n01629819", "n01641577"]
TEST_SIZES = {"cifar10": 10_000, "cifar100": 10_000, "svhn": 26_032, "fashion_mnist": 10_000, "image_folder": 10_000,
              "flowers102": 6_149}
# AutoAttack on fewer than the whole test split, where it would cost several times the rest of the study
AUTOATTACK_EXAMPLES = {"flowers102": 2_000}


def test_every_study_file_is_listed():
    assert sorted(p.name for p in STUDIES.glob("*.yaml")) == sorted(TRIALS)


@pytest.mark.parametrize("name", sorted(TRIALS))
def test_a_bundled_study_has_one_spelling_its_file_stem(name):
    """What a user types, the `name:` and the run directory (<storage>/<name>) are one word."""
    assert parse_yaml((STUDIES / name).read_text(), name)["name"] == Path(name).stem


# ------------------------------------------------------------------------------ tiny data


def write_dataset(dataset: str, root: Path, monkeypatch=None) -> Path:
    """A few images of `dataset` in its on-disk format under `root`: 20 training images (2 per
    class; image_folder: 10 per class of 3 classes, enough for a validation split) and 10 test images.
    Returns `root`."""
    y_train, y_test = np.arange(20) % 10, np.arange(10)
    if dataset == "cifar10":
        write_cifar10(root, rgb_images(20, 0), y_train, rgb_images(10, 1), y_test, monkeypatch)
    elif dataset == "cifar100":
        labels = np.linspace(0, 99, 10).astype(int)  # 10 of the 100 classes, 0 and 99 included
        write_cifar100(root, rgb_images(20, 0), labels[y_train], rgb_images(10, 1), labels[y_test], monkeypatch)
    elif dataset == "svhn":
        write_svhn(root, rgb_images(20, 0), y_train + 1, rgb_images(10, 1), y_test + 1, monkeypatch)  # 1..10
    elif dataset == "fashion_mnist":
        write_mnist_style(root, "FashionMNIST", gray_images(20, 0), y_train, gray_images(10, 1), y_test)
    elif dataset == "image_folder":
        write_tiny_imagenet(root, TINY_IMAGENET_CLASSES, train_per_class=10, val_per_class=2)
    elif dataset == "flowers102":
        labels = np.arange(30) % 10
        write_flowers102(root, labels, {"trnid": list(range(1, 11)), "valid": list(range(11, 21)),
                                        "tstid": list(range(21, 31))})
    else:
        raise ValueError(dataset)
    return root


def study_dataset(name: str) -> str:
    raw = parse_yaml((STUDIES / name).read_text(), name)
    return (raw.get("data") or {}).get("dataset", "digits")


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    """dataset → a directory with its tiny files (no MD5 patching: validation checks paths only)."""
    base = tmp_path_factory.mktemp("data")
    return {d: write_dataset(d, base / d) for d in {ds for ds, _ in PAPER.values()}}


def root_sets(name: str, roots: dict[str, Path]) -> list[str]:
    dataset = study_dataset(name)
    return [] if dataset == "digits" else [f"data.root={roots[dataset]}"]


def load(name: str, roots: dict[str, Path]) -> Study:
    return load_study(STUDIES / name, root_sets(name, roots))


# ------------------------------------------------------------------------------ fast checks


@pytest.mark.parametrize("name", sorted(TRIALS))
def test_study_passes_validate_with_its_trial_count(name, roots, capsys):
    sets = root_sets(name, roots)
    status = main(["validate", str(STUDIES / name), *(["--set", *sets] if sets else [])])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert f"ok — study '{load(name, roots).name}', {TRIALS[name]} trials" in out.out
    assert len(expand_grid(load(name, roots))) == TRIALS[name]


@pytest.mark.parametrize("name", sorted(set(TRIALS) - {"digits.yaml"}))
def test_study_header_says_what_it_reproduces_its_trial_count_and_command(name, roots):
    text = (STUDIES / name).read_text()
    header = "\n".join(line for line in text.splitlines()[:40] if line.startswith("#"))
    assert text.startswith("#"), "the file must open with its header comment"
    count = re.search(r"Trials:[^\n]*?= (\d+)", header)
    assert count and int(count.group(1)) == TRIALS[name], "header must state `Trials: ... = N`"
    assert f"decaylab sweep studies/{name}" in header
    assert re.search(r"Ghiasi|paper|AWD", header), "header must say what it reproduces"


def test_the_default_study_confirms_on_enough_fresh_seeds_with_an_lr_grid_that_brackets():
    study = load_study(STUDIES / "digits.yaml")
    assert len(study.seeds) == 3 and len(confirmation_seeds(study)) >= 8 and len(study.lr) >= 4


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_study_has_the_paper_settings(name, roots):
    s = load(name, roots)
    dataset, arch = PAPER[name]
    assert (s.data.dataset, s.model.arch) == (dataset, arch)
    if arch == "wide_resnet":
        assert (s.model.depth, s.model.width) == (28, 10)
    eps, step = EPS.get(dataset, (8 / 255, 2 / 255))
    tr = s.attack.train
    assert (tr.kind, tr.steps) == ("pgd", 7)
    assert math.isclose(tr.eps, eps, rel_tol=1e-12) and math.isclose(tr.step_size, step, rel_tol=1e-12)
    ev = s.attack.eval
    assert (ev.kind, ev.steps, ev.eps, ev.step_size) == ("pgd", 10, None, None), "PGD-10, inherited ε, default step"
    (cfg, *_) = expand_grid(s)
    resolved = resolved_eval_attack(cfg)
    assert math.isclose(resolved.eps, eps, rel_tol=1e-12) and math.isclose(resolved.step_size, step, rel_tol=1e-9)
    assert math.isclose(resolved_train_attack(cfg).step_size, step, rel_tol=1e-12)
    t = s.train
    assert (t.epochs, t.schedule, t.batch_size, t.momentum, t.precision) == (200, "cosine", 128, 0.9, "auto")
    assert s.data.val_fraction == 0.1 and s.data.label_noise == (0.0,) and s.data.augment
    assert {name: (a.kind, a.points()) for name, a in s.arms.items()} == {
        "wd": ("fixed", [{"lam": v} for v in LAMBDA_GRID]),
        "awd": ("adaptive", [{"lambda_awd": v, "avg": 0.1} for v in LAMBDA_AWD_GRID])}  # Algorithm 1's 0.1
    if dataset == "svhn":  # Rice et al.'s SVHN lr 0.01 and a factor-2 grid around it (see the file)
        assert s.lr == (0.005, 0.01, 0.02, 0.04)
    else:
        assert s.lr == LR_GRID
    assert len(s.seeds) >= 3 and s.search.kind == "grid"
    assert len(confirmation_seeds(s)) >= 10, "a verdict needs fresh seeds: at least 10"
    aa = s.eval.autoattack
    assert aa.enabled and aa.version == "standard"
    assert s.eval.final_examples is None, "the final evaluation: whole test set"
    assert aa.examples >= AUTOATTACK_EXAMPLES.get(dataset, TEST_SIZES[dataset]), "AutoAttack: whole test set"
    assert s.eval.every == 1 and s.eval.test_examples is not None
    assert 0 < s.resources.gpu <= 1 and 2 <= s.resources.cpu <= 4
    assert s.resources.cpu / s.resources.gpu <= 16, "the trials sharing one GPU fit a 16-core H100 node"
    raw_root = parse_yaml((STUDIES / name).read_text(), name)["data"]["root"]
    assert raw_root.startswith("data/"), "a conventional relative path, overridden here"
    if dataset == "image_folder":
        assert s.data.image_size == 64


def test_the_rice_calibration_study_is_rice_et_al_and_declares_their_numbers(roots):
    s = load("cifar10_rice_preact18.yaml", roots)
    tr, t = s.attack.train, s.train
    assert (s.data.dataset, s.model.arch, tr.kind, tr.steps) == ("cifar10", "preact_resnet18", "pgd", 10)
    assert math.isclose(tr.eps, 8 / 255) and math.isclose(tr.step_size, 2 / 255)
    assert (t.epochs, t.schedule, t.milestones, t.batch_size, t.momentum) == (200, "piecewise", (0.5, 0.75), 128, 0.9)
    assert {n: a.points() for n, a in s.arms.items()} == {"wd": [{"lam": 5e-4}]} and s.lr == (0.1,)
    assert len(s.seeds) >= 6, "six seeds: the smallest sample with a 95%-level sign-flip interval"
    assert [(r.arm, r.checkpoint, r.metric, r.value) for r in s.reference_results] == [
        ("wd", "best", "pgd_acc", 0.5349), ("wd", "last", "pgd_acc", 0.4559)]


def test_the_cifar_label_noise_study_selects_as_a_user_would_and_confirms_at_each_rate(roots):
    s = load("cifar10_label_noise_preact18.yaml", roots)
    assert s.data.label_noise == (0.2, 0.4) and s.data.val_label_noise == "same"
    assert s.eval.train_examples is not None, "memorisation of the flipped labels is measured"
    assert len(confirmation_seeds(s)) >= 10 and {a.kind for a in s.arms.values()} == {"fixed", "adaptive"}


def test_cpu_studies_are_small(roots):
    for name in CPU_STUDIES:
        s = load(name, roots)
        assert s.data.dataset == "digits" and s.model.arch == "small_cnn" and s.train.batch_size == 32
        assert len(expand_grid(s)) <= 24 and s.resources.gpu == 0
    noise = load("digits_label_noise.yaml", roots)
    assert noise.data.label_noise == (0.0, 0.2, 0.4)
    assert noise.attack.train.kind == "none"
    assert noise.attack.eval.kind == "pgd" and noise.attack.eval.eps is not None
    pruning = load("digits_pruning.yaml", roots)
    assert pruning.eval.pruning.enabled and pruning.eval.pruning.sparsity == (0, 0.3, 0.5, 0.7, 0.8, 0.9)
    assert pruning.eval.autoattack.enabled and pruning.eval.autoattack.examples == 200


# ------------------------------------------------------------------------------ slow: one epoch


def one_epoch_sets(root: Path, dataset: str) -> list[str]:
    """Everything shrunk but the network: one training image per class (all 20 written files for
    CIFAR-100, whose subset may not be smaller than its 100 classes), 2 val/test/final-evaluation images,
    PGD-2 for evaluation."""
    subset = "null" if dataset in ("cifar100", "flowers102") else "10"
    return [f"data.root={root}", "train.epochs=1", "eval.autoattack.enabled=false", "data.val_fraction=0.5",
            f"data.subset={subset}", "eval.val_examples=2", "eval.test_examples=2", "eval.train_examples=2",
            "eval.final_examples=2", "eval.pruning.examples=2", "attack.eval.steps=2"]


# Networks shrunk here (a CPU epoch of WRN-28-10 or of PreAct-18 at 64×64 takes tens of seconds): the study's
# own settings are what the case checks; the full networks' sizes are checked in tests/trials/test_arm_contract.py
SHRUNK = {"cifar100_wrn28_10.yaml": ["model.depth=10", "model.width=1"],
          "cifar10_wrn28_10.yaml": ["model.depth=10", "model.width=1"],
          "flowers102_preact18.yaml": ["data.image_size=32"], "tiny_imagenet_preact18.yaml": ["data.image_size=32"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GPU_STUDIES))
def test_gpu_study_trains_one_epoch_on_tiny_data(name, tmp_path, monkeypatch, capsys):
    dataset, arch = GPU_STUDIES[name]
    root = write_dataset(dataset, tmp_path / "data", monkeypatch)  # monkeypatch: torchvision's MD5s
    out_dir = tmp_path / "out"
    # in this process (not a subprocess) so that the MD5 patches apply; main() is the CLI itself
    status = main(["train", str(STUDIES / name), "--device", "cpu", "--run-dir", str(out_dir),
                   "--set", *one_epoch_sets(root, dataset), *SHRUNK.get(name, [])])
    out = capsys.readouterr()
    assert status == 0, out.err[-3000:]
    assert f"{arch} on {dataset}, 1 epochs" in out.err
    assert re.search(r"^epoch +1/1 · loss \d", out.out, re.M), out.out
    rows = pd.read_parquet(out_dir / "epochs.parquet")
    assert len(rows) == 1 and rows["status"].tolist() == ["ok"] and rows["epoch"].tolist() == [1]
    assert math.isfinite(rows["train_loss"][0]) and 0 <= rows["val_robust_acc"][0] <= 1
    evals = pd.read_parquet(out_dir / "evaluations.parquet")
    assert set(evals["checkpoint"]) == {"best", "last"} and set(evals["examples"]) == {2}
    study = load_study(STUDIES / name, [f"data.root={root}"])
    want = set(study.eval.pruning.sparsity) | {0.0} if study.eval.pruning.enabled else {0.0}
    assert set(evals["sparsity"]) == want


# ------------------------------------------------------------------------------ slow: CPU sweeps


SHRINK = ["train.epochs=2", "seeds=[0]", "methods.wd.lambda=[5.0e-4]", "methods.awd.lambda_awd=[0.02]",
          "data.subset=300", "eval.val_examples=100", "eval.test_examples=100", "eval.train_examples=100"]


@pytest.mark.slow
def test_pruning_study_sweeps_into_a_report_with_pruning(tmp_path):
    out = decaylab("sweep", STUDIES / "digits_pruning.yaml", "--storage", tmp_path / "results",
                   "--executor", "local", "--set", *SHRINK, "eval.autoattack.examples=20", timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "results" / "digits_pruning"
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == 2 and set(trials["status"]) == {"ok"}
    assert trials["autoattack_best"].notna().all() and trials["autoattack_last"].notna().all()
    evals = pd.read_parquet(run / "evaluations.parquet")
    assert sorted(evals["sparsity"].unique()) == [0, 0.3, 0.5, 0.7, 0.8, 0.9]
    report = decaylab("report", run, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Pruning" in text and "Accuracy of the best checkpoint vs sparsity" in text
    assert (tmp_path / "report" / "figures" / "pruning.png").is_file()
    assert (tmp_path / "report" / "tables" / "pruning.csv").is_file()


@pytest.mark.slow
def test_label_noise_study_sweeps_into_a_report_with_label_noise(tmp_path):
    out = decaylab("sweep", STUDIES / "digits_label_noise.yaml", "--storage", tmp_path / "results",
                   "--executor", "local", "--set", *SHRINK, "data.label_noise=[0.0,0.4]", timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "results" / "digits_label_noise"
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) == 4 and set(trials["status"]) == {"ok"}
    assert sorted(trials["label_noise"].unique()) == [0.0, 0.4]
    report = decaylab("report", run, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Label noise" in text and "Best-tuned arms per noise rate" in text
    assert "### Label noise 40%" in text  # every section split per noise level
    assert (tmp_path / "report" / "figures" / "label_noise_memorisation.png").is_file()
    assert (tmp_path / "report" / "tables" / "label_noise.csv").is_file()
