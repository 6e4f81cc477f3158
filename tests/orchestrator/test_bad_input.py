"""Malformed study files and command lines: exit 2 (1 for runtime failures), a message naming the
file or key with a hint, no traceback, and nothing started or written.

Most cases call `orchestrator.cli.main` in this process (fast); a few run the real command in a
subprocess to prove that no traceback reaches the terminal.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import ray
import torch
import yaml
from helpers.sweep import REPO, TINY, cli_env

from orchestrator.cli import main

GOOD = {**TINY, "name": "bad", "lr": [0.05], "methods": {"wd": {"kind": "fixed", "lambda": [0.0]}}}


def study_text(**changes) -> str:
    """The good tiny study with top-level keys replaced (None deletes the key), as YAML."""
    body = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    return yaml.safe_dump(body, sort_keys=False)


def with_section(section: str, **changes) -> str:
    return study_text(**{section: {**GOOD.get(section, {}), **changes}})


@dataclass
class Case:
    """One bad input. `files` are written under the test's directory ({tmp}); `says` must all appear
    in stderr; `hint` is the text of the suggested fix ("hint:" for decaylab's own messages)."""

    argv: list[str]
    status: int
    says: list[str]
    files: dict[str, str | bytes] = field(default_factory=dict)
    hint: str = "hint:"


def study_case(text: str | bytes, says: list[str], hint: str = "hint:", command: str = "validate") -> Case:
    argv = [command, "{tmp}/study.yaml"] + (["--storage", "{tmp}/storage"] if command == "sweep" else [])
    return Case(argv, 2, ["{tmp}/study.yaml", *says], {"study.yaml": text}, hint)


RUN_STUDY = yaml.safe_dump(GOOD, sort_keys=False)  # a run directory's resolved study
LAUGHS = "name: x\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))

CASES = {
    # ------------------------------------------------------------------ YAML itself
    "yaml-unclosed-bracket": study_case("name: x\nlr: [0.1, 0.2\nseeds: [0]\n", ["not valid YAML", "line"],
                                        "check indentation"),
    "yaml-tab-indent": study_case("name: x\ntrain:\n\tepochs: 3\n", ["not valid YAML", "line 3"]),
    "yaml-not-a-mapping": study_case("- name: x\n- lr: 0.1\n", ["must be a mapping"], "name:"),
    "yaml-not-utf8": study_case(b"\xff\xfe\x00name: x\x80\n", ["cannot read the study file"], "UTF-8"),
    "yaml-duplicate-top-key": study_case(study_text() + "lr: [0.1]\n", ["key 'lr' appears twice", "line"]),
    "yaml-python-object-tag": study_case("!!python/object/apply:os.system ['touch {tmp}/pwned']\n",
                                         ["not valid YAML", "python/object"], "remove the `!!` tag"),
    "empty-file": study_case("", ["methods: no arms given"], "kind: fixed"),
    # ------------------------------------------------------------------ keys
    "unknown-top-key": study_case(study_text(trian={"epochs": 3}), ["trian: unknown key"], "did you mean `train`"),
    "unknown-nested-key": study_case(with_section("train", epoch=3), ["train.epoch: unknown key"],
                                     "did you mean `train.epochs`"),
    "unknown-dataset": study_case(with_section("data", dataset="cifar11"), ["data.dataset", "'cifar11'"],
                                  "did you mean `cifar10`"),
    "arm-kind-typo": study_case(study_text(methods={"wd": {"kind": "fixd", "lambda": [0.0]}}),
                                ["methods.wd.kind"], "did you mean `fixed`"),
    "arm-unknown-key": study_case(study_text(methods={"wd": {"kind": "fixed", "lambda": [0.0], "lamda": [1]}}),
                                  ["methods.wd.lamda: unknown key"], "did you mean `methods.wd.lambda`"),
    # ------------------------------------------------------------------ types
    "epochs-not-integer": study_case(with_section("train", epochs="three"),
                                     ["train.epochs: expected an integer", "'three'"]),
    "augment-not-bool": study_case(with_section("data", augment="sure"), ["data.augment: expected true or false"]),
    "lr-not-number": study_case(study_text(lr=["fast"]), ["lr[0]: expected a number"]),
    "seeds-not-integer": study_case(study_text(seeds=[1.5]), ["seeds[0]: expected an integer", "1.5"]),
    "section-not-mapping": study_case(study_text(train=5), ["train: expected a mapping"]),
    # ------------------------------------------------------------------ values
    "lr-negative": study_case(study_text(lr=[-0.1]), ["lr: value -0.1 must be a finite number > 0"]),
    "lr-nan": study_case(study_text(lr=[float("nan")]), ["lr[0]: NaN is not a usable value"], "give a number"),
    "lr-inf": study_case(study_text(lr=[float("inf")]), ["lr: value inf must be a finite number > 0"]),
    "lambda-inf": study_case(study_text(methods={"wd": {"kind": "fixed", "lambda": [float("inf")]}}),
                             ["methods.wd.lambda[0]", "finite number ≥ 0"]),
    "lambda-negative": study_case(study_text(methods={"wd": {"kind": "fixed", "lambda": [-1e-4]}}),
                                  ["methods.wd.lambda[0]", "≥ 0"]),
    "lambda-awd-zero": study_case(study_text(methods={"awd": {"kind": "adaptive", "lambda_awd": [0.0]}}),
                                  ["methods.awd.lambda_awd[0]", "> 0"]),
    "epochs-zero": study_case(with_section("train", epochs=0), ["train.epochs: must be ≥ 1"]),
    "batch-size-negative": study_case(with_section("train", batch_size=-64), ["train.batch_size: must be ≥ 1"]),
    "eps-above-one": study_case(study_text(attack={"train": {"kind": "pgd", "eps": 1.5, "steps": 2}}),
                                ["attack.train.eps", "(0, 1]", "1.5"]),
    "val-fraction-one": study_case(with_section("data", val_fraction=1.0), ["data.val_fraction", "[0, 1)"]),
    "cpu-zero": study_case(with_section("resources", cpu=0), ["resources.cpu", "> 0"]),
    "study-name-with-slash": study_case(study_text(name="a/b"), ["name: must be letters"]),
    "empty-lambda-grid": study_case(study_text(methods={"wd": {"kind": "fixed", "lambda": []}}),
                                    ["methods.wd.lambda: the grid is empty"], "at least one value"),
    "empty-lr-grid": study_case(study_text(lr=[]), ["lr: must not be empty"]),
    "no-arms": study_case(study_text(methods=None), ["methods: no arms given"]),
    "repeated-lr": study_case(study_text(lr=[0.1, 0.1]), ["lr: repeated values"], "once"),
    "duplicated-arm-names": study_case(study_text(methods=None) + "methods:\n  wd: {kind: fixed, lambda: [0.0]}\n"
                                       "  wd: {kind: fixed, lambda: [0.1]}\n", ["'wd' appears twice"], "once"),
    "fixed-arm-given-lambda-awd": study_case(study_text(methods={"wd": {"kind": "fixed", "lambda_awd": [0.02]}}),
                                             ["methods.wd.lambda_awd", "takes `lambda`"], "rename the key"),
    "eval-eps-missing": study_case(study_text(attack={"train": {"kind": "none"}, "eval": {"kind": "pgd"}}),
                                   ["attack.eval.eps: missing"], "give ε"),
    "optuna-range-inverted": study_case(study_text(search={"kind": "optuna", "space": {
        "lr": {"low": 0.5, "high": 0.1}}}), ["search.space.lr: low (0.5) must be below high (0.1)"], ""),
    "optuna-space-unknown": study_case(study_text(search={"kind": "optuna", "space": {
        "momentum": {"low": 0.5, "high": 0.9}}}), ["search.space.momentum: not a tunable parameter"], "lr, wd.lambda"),
    "scheduled-schedule-key-not-a-name": study_case(study_text(methods={"sc": {
        "kind": "scheduled", "schedule": ["a"], "schedules": {"a": [0.1], "b/../c": [0.2]}}}),
        ["methods.sc.schedules", "must be a name of letters"], ""),
    "reference-result-unknown-arm": study_case(study_text(reference_results=[
        {"source": "paper", "arm": "awdd", "value": 0.5}]), ["reference_results[0].arm: 'awdd' is not an arm"], ""),
    "reference-result-percent": study_case(study_text(reference_results=[
        {"source": "paper", "arm": "wd", "value": 53.5}]), ["reference_results", "accuracy in [0, 1]"], ""),
    # ------------------------------------------------------------------ data on disk
    # a dataset not fetched yet: `validate` only warns (tests/test_cli.py), `sweep` refuses
    "dataset-root-missing": study_case(with_section("data", dataset="mnist", root="{tmp}/no-such-dir"),
                                       ["data.root", "no-such-dir does not exist"], "data.download: true", "sweep"),
    "dataset-root-required": study_case(with_section("data", dataset="cifar10"), ["data.root: required"],
                                        "hint:"),
    "image-folder-without-train": Case(["sweep", "{tmp}/study.yaml"], 2, ["data.root", "imgs/train does not exist"],
                                       {"study.yaml": with_section("data", dataset="image_folder", root="{tmp}/imgs"),
                                        "imgs/val/cls/README": "not an image"}, "<root>/train/<class>"),
    "sweep-checks-before-anything": study_case(with_section("train", epochs=-1), ["train.epochs: must be ≥ 1"],
                                               command="sweep"),
    # ------------------------------------------------------------------ files and directories
    "study-file-missing": Case(["validate", "{tmp}/nope.yaml"], 2, ["{tmp}/nope.yaml: no such study file"]),
    "sweep-study-file-missing": Case(["sweep", "{tmp}/nope.yaml", "--storage", "{tmp}/storage"], 2,
                                     ["no such study file"]),
    "study-path-is-a-directory": Case(["validate", "{tmp}/adir"], 2, ["{tmp}/adir: a directory, not a study file"],
                                      {"adir/x": ""}),
    "status-not-a-run": Case(["status", "{tmp}/notrun"], 2, ["{tmp}/notrun", "not a decaylab run directory"],
                             {"notrun/readme.txt": "hello"}, "decaylab sweep"),
    "status-no-such-dir": Case(["status", "{tmp}/missing"], 2, ["{tmp}/missing: no such run directory"]),
    "status-run-dir-is-a-file": Case(["status", "{tmp}/afile"], 2, ["{tmp}/afile", "not a decaylab run"],
                                     {"afile": "x"}),
    "resume-not-a-run": Case(["resume", "{tmp}/notrun"], 2, ["not a decaylab run directory"],
                             {"notrun/readme.txt": "hello"}),
    "report-not-a-run": Case(["report", "{tmp}/notrun"], 2, ["not a decaylab run directory"],
                             {"notrun/readme.txt": "hello"}),
    "evaluate-not-a-run": Case(["evaluate", "{tmp}/notrun"], 2, ["not a decaylab run directory"],
                               {"notrun/readme.txt": "hello"}),
    "report-before-any-result": Case(["report", "{tmp}/run"], 2, ["no results yet"], {"run/study.yaml": RUN_STUDY},
                                     "decaylab resume"),
    "run-study-file-damaged": Case(["status", "{tmp}/run"], 2, ["run/study.yaml", "damaged"],
                                   {"run/study.yaml": "name: [unclosed\n"}, "manifest.json"),
    "run-study-file-python-tag": Case(["resume", "{tmp}/run"], 2, ["run/study.yaml", "damaged"],
                                      {"run/study.yaml": "!!python/object/apply:os.system ['touch {tmp}/pwned']\n"},
                                      "manifest.json"),
    "storage-under-a-regular-file": Case(["sweep", "{tmp}/study.yaml", "--storage", "{tmp}/afile/storage"], 1,
                                         ["{tmp}/afile/storage/bad", "not writable"],
                                         {"study.yaml": study_text(), "afile": "x"}, "another --storage"),
    # ------------------------------------------------------------------ command lines
    "address-nobody-answers": Case(["sweep", "{tmp}/study.yaml", "--storage", "{tmp}/storage", "--address",
                                    "127.0.0.1:1"], 1, ["--address 127.0.0.1:1", "no Ray cluster answers there"],
                                   {"study.yaml": study_text()}, "ray status --address 127.0.0.1:1"),
    "address-malformed": Case(["sweep", "{tmp}/study.yaml", "--storage", "{tmp}/storage", "--address", "headnode"],
                              2, ["--address headnode", "not a Ray address"], {"study.yaml": study_text()},
                              "host:port"),
    "set-without-equals": Case(["validate", "{tmp}/study.yaml", "--set", "train.epochs"], 2,
                               ["--set train.epochs: expected key=value"], {"study.yaml": study_text()},
                               "e.g. --set train.epochs=5"),
    "set-unknown-key": Case(["validate", "{tmp}/study.yaml", "--set", "train.epoch=3"], 2,
                            ["train.epoch: unknown key", "(from --set train.epoch)"], {"study.yaml": study_text()},
                            "did you mean `train.epochs`"),
    "set-bad-value": Case(["sweep", "{tmp}/study.yaml", "--storage", "{tmp}/storage", "--set", "lr=[0.1"], 2,
                          ["--set lr", "not valid YAML"], {"study.yaml": study_text()}),
    "set-into-a-value": Case(["validate", "{tmp}/study.yaml", "--set", "lr.low=0.1"], 2,
                             ["--set lr.low", "'lr' is not a section"], {"study.yaml": study_text()}, ""),
    "set-wrong-type": Case(["validate", "{tmp}/study.yaml", "--set", "train.epochs=abc"], 2,
                           ["train.epochs: expected an integer", "(from --set train.epochs)"],
                           {"study.yaml": study_text()}, ""),
    "evaluate-set-non-eval-key": Case(["evaluate", "{tmp}/run", "--set", "train.epochs=5"], 2,
                                      ["--set train.epochs=5", "this command takes only eval"],
                                      {"run/study.yaml": RUN_STUDY}, "eval.autoattack.enabled=true"),
    "train-unknown-arm": Case(["train", "{tmp}/study.yaml", "--set", "method=wdd"], 2,
                              ["--set method=wdd", "no such arm"], {"study.yaml": study_text()}, "did you mean `wd`"),
    "train-adaptive-given-lam": Case(["train", "{tmp}/study.yaml", "--set", "method=awd", "lam=0.1"], 2,
                                     ["--set lam", "takes `lambda_awd`"],
                                     {"study.yaml": study_text(methods={"awd": {"kind": "adaptive",
                                                                               "lambda_awd": [0.02]}})}, ""),
    "gpu-on-a-cpu-only-machine": Case(["sweep", "{tmp}/study.yaml", "--storage", "{tmp}/storage", "--device", "gpu"],
                                      2, ["--device gpu", "no CUDA GPU"], {"study.yaml": study_text()},
                                      "--device cpu"),
    "unknown-command": Case(["sweeep", "x.yaml"], 2, ["invalid choice: 'sweeep'"], hint="usage: decaylab"),
    "unknown-option": Case(["validate", "{tmp}/study.yaml", "--stroage", "x"], 2, ["unrecognized arguments"],
                           {"study.yaml": study_text()}, "usage: decaylab validate"),
    "device-not-a-choice": Case(["sweep", "{tmp}/study.yaml", "--device", "tpu"], 2, ["--device", "'tpu'"],
                                {"study.yaml": study_text()}, "choose from"),
    "num-cpus-not-a-number": Case(["sweep", "{tmp}/study.yaml", "--num-cpus", "two"], 2, ["--num-cpus", "'two'"],
                                  {"study.yaml": study_text()}, "usage: decaylab"),
    "missing-argument": Case(["status"], 2, ["required: RUN_DIR"], hint="usage: decaylab status"),
    # ------------------------------------------------------------------ hostile YAML
    "yaml-billion-laughs": study_case(LAUGHS, ["refused", "more than 100,000 values"], "aliases"),
    "yaml-recursive-alias": study_case("name: x\nlr: &a [*a]\n", ["refused", "recursive alias"], "aliases"),
    "yaml-deep-nesting": study_case("lr: " + "[" * 5000 + "]" * 5000 + "\n", ["refused", "nested more than 32"],
                                    "aliases"),
    "yaml-huge-number": study_case("seeds: [" + "9" * 5000 + "]\n", ["refused", "a number of 5000 digits"]),
    "yaml-non-string-key": study_case("1: x\n", ["the key 1 is not a string"], "quote the key"),
    "yaml-complex-key": study_case("? [a, b]\n: x\n", ["a key is a list or a mapping"], "quote the key"),
    "yaml-binary-tag": study_case("name: !!binary aGVsbG8=\n", ["binary"], "remove the `!!` tag"),
    "yaml-zero-padded-seed": study_case(study_text(seeds=None) + "seeds: [007]\n", ["'007' is a zero-padded number"],
                                        "without leading zeros"),
    "yaml-yes-for-a-bool": study_case(study_text(data=None) + "data: {dataset: digits, augment: yes}\n",
                                      ["data.augment: expected true or false", "'yes'"], "true or false"),
    "yaml-too-large": study_case("# " + "x" * (1 << 20) + "\n", ["too large for a study file"]),
    "yaml-control-characters": study_case("name: x\x00\n", ["not valid YAML"], "binary data"),
    # ------------------------------------------------------------------ would fail every trial
    "seed-above-2-63": study_case(study_text(seeds=[2**64]), ["seeds[0]", "[0, 2**63 − 1]"]),
    "split-seed-negative": study_case(with_section("data", split_seed=-1), ["data.split_seed", "[0, 2**63 − 1]"]),
    "test-fraction-one": study_case(with_section("data", test_fraction=1.0),
                                    ["data.test_fraction", "leaving none to train on"], "below 1"),
    "val-fraction-zero": study_case(with_section("data", val_fraction=0.0),
                                    ["data.val_fraction", "validation split empty"], "0.1"),
    "splits-leave-no-training": study_case(with_section("data", test_fraction=0.99, val_fraction=0.9),
                                           ["data.val_fraction", "leaves no training examples"]),
    "subset-below-classes": study_case(with_section("data", subset=5), ["data.subset: 5 is fewer than the 10"],
                                       "at least 10"),
    "subset-above-training-split": study_case(with_section("data", subset=5000), ["data.subset", "more than"],
                                              "at most"),
    "gpu-fraction-above-one": study_case(with_section("resources", gpu=1.5), ["resources.gpu", "must be whole"],
                                         "0.5"),
    "max-failures-forever": study_case(with_section("resources", max_failures=-1),
                                       ["resources.max_failures: must be ≥ 0"], "number of retries"),
    "seeds-per-trial-above-seeds": study_case(study_text(search={"kind": "optuna", "seeds_per_trial": 3}),
                                              ["search.seeds_per_trial: 3 is more than the 1 seeds"]),
    "optuna-journal-missing-dir": study_case(study_text(search={"kind": "optuna", "storage": "{tmp}/no/j.log"}),
                                             ["search.storage", "no does not exist"], "mkdir -p"),
    "grid-too-large": study_case(study_text(lr=[0.001 * (i + 1) for i in range(101)], seeds=list(range(100))),
                                 ["the grid has 10,100 trials"], "--allow-large-grid"),
    "sweep-grid-too-large": study_case(study_text(lr=[0.001 * (i + 1) for i in range(101)], seeds=list(range(100))),
                                       ["the grid has 10,100 trials"], "--allow-large-grid", command="sweep"),
    "sweep-cpu-above-machine": study_case(with_section("resources", cpu=4096), ["resources.cpu", "4096 CPUs",
                                          "this machine has at most"], "--set resources.cpu", command="sweep"),
    "sweep-gpu-absent": study_case(with_section("resources", gpu=0.5), ["resources.gpu", "has no GPU"],
                                   "--device cpu", command="sweep"),
    "train-lam-negative": Case(["train", "{tmp}/study.yaml", "--set", "lam=-0.5"], 2, ["lambda", "≥ 0"],
                               {"study.yaml": study_text()}),
    "train-gpu-on-a-cpu-only-machine": Case(["train", "{tmp}/study.yaml", "--device", "gpu"], 2,
                                            ["--device gpu", "no CUDA GPU"], {"study.yaml": study_text()},
                                            "--device cpu"),
    "storage-scheme-unsupported": Case(["sweep", "{tmp}/study.yaml", "--storage", "ftp://host/results"], 2,
                                       ["ftp:// is not supported"], {"study.yaml": study_text()}, "s3://"),
    # ------------------------------------------------------------------ damaged run directories
    "run-study-file-binary": Case(["status", "{tmp}/run"], 2, ["run/study.yaml", "damaged"],
                                  {"run/study.yaml": bytes(range(256))}, "manifest.json"),
    "run-study-file-truncated": Case(["resume", "{tmp}/run"], 2, ["run/study.yaml", "damaged"],
                                     {"run/study.yaml": RUN_STUDY[: RUN_STUDY.index("methods:")]}, "manifest.json"),
    "run-study-file-is-a-directory": Case(["status", "{tmp}/run"], 2, ["run/study.yaml"],
                                          {"run/study.yaml/x": "x"}, "manifest.json"),
    # ------------------------------------------------------------------ control characters (no string takes one)
    "data-root-nul": study_case(with_section("data", dataset="mnist", root="/data/\x00mnist"),
                                ["data.root: contains the control character \\x00"], "one line of plain text"),
    "mlflow-uri-nul": study_case(study_text(tracking={"mlflow": {"uri": "sqlite:///runs\x00.db"}}),
                                 ["tracking.mlflow.uri: contains the control character \\x00"]),
    "optuna-storage-nul": study_case(study_text(search={"kind": "optuna", "storage": "j\x00.journal"}),
                                     ["search.storage: contains the control character \\x00"]),
    "description-escape-sequence": study_case(study_text(description="ok\nthen \x1b]0;title\x07"),
                                              ["description: contains the control character \\x1b"],
                                              "line breaks only"),
    "arm-names-differ-only-in-case": study_case(study_text(methods={"wd": {"kind": "fixed", "lambda": [0.0]},
                                                                    "WD": {"kind": "fixed", "lambda": [0.1]}}),
                                                ["methods.WD: differs from arm 'wd' only in case"], "more than case"),
    # ------------------------------------------------------------------ upper bounds (and never a traceback)
    "estimate-width-huge": Case(["validate", "{tmp}/study.yaml", "--estimate"], 2, ["model.width: must be ≤ 64"],
                                {"study.yaml": study_text(model={"arch": "wide_resnet", "depth": 28, "width": 10**9})},
                                ""),
    "estimate-epochs-huge": Case(["validate", "{tmp}/study.yaml", "--estimate"], 2, ["train.epochs: must be ≤ 10,000"],
                                 {"study.yaml": with_section("train", epochs=10**39)}, ""),
    "depth-above-bound": study_case(study_text(model={"arch": "wide_resnet", "depth": 10_000, "width": 1}),
                                    ["model.depth", "at most 200"], ""),
    "batch-size-above-bound": study_case(with_section("train", batch_size=10**7),
                                         ["train.batch_size: must be ≤ 65,536"], ""),
    "final-examples-above-bound": study_case(with_section("eval", final_examples=10**8),
                                             ["eval.final_examples: must be > 0 and ≤ 10,000,000"], ""),
    "torch-threads-above-bound": study_case(with_section("resources", torch_threads=10**6),
                                            ["resources.torch_threads: must be ≤ 1,024"], ""),
    "cpu-above-bound": study_case(with_section("resources", cpu=1e9), ["resources.cpu: must be ≤ 65,536"], ""),
    "optuna-n-trials-above-bound": study_case(study_text(search={"kind": "optuna", "n_trials": 10**6}),
                                              ["search.n_trials: must be ≤ 100,000"], ""),
    "confirm-seeds-above-bound": study_case(study_text(confirm={"seeds": 10**12}), ["confirm.seeds", "≤ 10,000"], ""),
    "grid-axis-too-long": study_case(study_text(lr=[(i + 1) / 100_000 for i in range(10_001)]),
                                     ["lr: has 10,001 values, at most 10,000"], "give fewer values"),
    "grid-above-the-ceiling-even-when-allowed": Case(
        ["validate", "{tmp}/study.yaml", "--allow-large-grid"], 2,
        ["the study has 1,001,000 trials", "(1,000,000, even with --allow-large-grid)"],
        {"study.yaml": study_text(lr=[(i + 1) / 10_000 for i in range(1001)], seeds=list(range(1000)))},
        "split the study"),
}


def fill(text: str, tmp: Path) -> str:
    return text.replace("{tmp}", str(tmp))


def write_files(tmp: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(fill(content, tmp))


def listing(tmp: Path) -> set[str]:
    return {str(p.relative_to(tmp)) for p in tmp.rglob("*")}


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if anything tries to start (or join) Ray."""

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for an input that should have been rejected")

    monkeypatch.setattr(ray, "init", refuse)
    yield
    assert not ray.is_initialized()


def run_main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse rejects a command line by exiting
        return int(e.code)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_rejected_with_a_hint_and_starts_nothing(case: Case, tmp_path, capsys, no_ray, monkeypatch):
    if (case.argv[-1:] == ["gpu"] or "has no GPU" in case.says) and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.chdir(tmp_path)  # a stray relative write (results/, reports/) would show up in the listing
    write_files(tmp_path, case.files)
    before = listing(tmp_path)
    status = run_main([fill(a, tmp_path) for a in case.argv])
    out = capsys.readouterr()
    err = out.err
    assert status == case.status, err
    assert "Traceback" not in err + out.out
    for text in case.says:
        assert fill(text, tmp_path) in err, f"{text!r} not in:\n{err}"
    assert case.hint in err, f"no hint {case.hint!r} in:\n{err}"
    assert err.count("\n") <= 4 or "usage:" in err, f"more than a short message:\n{err}"
    assert listing(tmp_path) == before, "a rejected input wrote files (run directory, report, marker)"
    assert not (tmp_path / "pwned").exists()


def test_there_are_enough_cases():
    assert len(CASES) >= 100


def test_hostile_yaml_is_refused_in_well_under_a_second(tmp_path):
    from orchestrator.errors import UserError
    from orchestrator.study.load import load_study

    for text in (LAUGHS, "a: &a [*a]\n", "[" * 100_000 + "]" * 100_000):
        (tmp_path / "s.yaml").write_text(text)
        start = time.monotonic()
        with pytest.raises(UserError):
            load_study(tmp_path / "s.yaml")
        assert time.monotonic() - start < 1.0


def test_yaml_1_2_scalars_and_merge_keys(tmp_path):
    """`on`/`yes` are strings (an arm may be called `on`), merge keys work, 5e-4 is a number."""
    from orchestrator.study.load import load_study

    (tmp_path / "s.yaml").write_text(study_text(methods=None, attack=None) + textwrap.dedent("""\
        methods:
          on: {kind: fixed, lambda: [5e-4]}
        attack:
          train: &pgd {kind: pgd, eps: 0.25, steps: 2, step_size: 0.15}
          eval: {<<: *pgd, steps: 3}
        """))
    study = load_study(tmp_path / "s.yaml")
    assert list(study.arms) == ["on"] and study.arms["on"].lam == (5e-4,)
    assert study.attack.eval.eps == 0.25 and study.attack.eval.steps == 3


@pytest.mark.slow
def test_fuzzed_study_files_never_give_a_traceback(tmp_path):
    """Random bytes, random YAML-ish text and a good study with values swapped for other types: every
    one is a study or a UserError, never another exception."""
    import random

    from orchestrator.errors import UserError
    from orchestrator.study.load import load_study

    rng = random.Random(0)
    chars = "[]{}:,-&*!|>'\"#%@` \n\t?<=~0123456789.eE+abnoytrufl"
    texts = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200))) for _ in range(300)]
    texts += ["".join(rng.choice(chars) for _ in range(rng.randint(0, 80))).encode() for _ in range(1500)]
    values = ["x", -1, 0, 1.5, 10**30, 1e308, None, True, [], [1, "a"], {}, {"a": 1}, float("nan")]
    for key in GOOD:
        for value in values:
            texts.append(yaml.safe_dump({**GOOD, key: value}).encode())
            if isinstance(GOOD[key], dict):
                for sub in GOOD[key]:
                    texts.append(yaml.safe_dump({**GOOD, key: {**GOOD[key], sub: value}}).encode())
    path = tmp_path / "s.yaml"
    for text in texts:
        path.write_bytes(text)
        with contextlib.suppress(UserError):
            load_study(path)


def test_an_existing_run_is_not_touched_by_a_rejected_sweep(tmp_path, capsys, no_ray):
    """A bad --set on a sweep into an existing run directory changes nothing there."""
    write_files(tmp_path, {"study.yaml": study_text(), "storage/bad/study.yaml": RUN_STUDY})
    before = (tmp_path / "storage/bad/study.yaml").read_bytes()
    status = run_main(["sweep", str(tmp_path / "study.yaml"), "--storage", str(tmp_path / "storage"),
                       "--set", "attack.train.eps=2"])
    assert status == 2 and "attack.train.eps" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "storage/bad").iterdir()) == ["study.yaml"]
    assert (tmp_path / "storage/bad/study.yaml").read_bytes() == before


# ------------------------------------------------------------------ the real command, in a subprocess

SUBPROCESS_CASES = {
    "yaml-python-object-tag": (["validate", "{tmp}/study.yaml"],
                               {"study.yaml": "!!python/object/apply:os.system ['touch {tmp}/pwned']\n"}, 2),
    "yaml-not-utf8": (["validate", "{tmp}/study.yaml"], {"study.yaml": b"\xff\xfe garbage \x80"}, 2),
    "damaged-run-study": (["status", "{tmp}/run"], {"run/study.yaml": "name: [unclosed\n"}, 2),
    "storage-not-writable": (["sweep", "{tmp}/study.yaml", "--storage", "{tmp}/afile/s"],
                             {"study.yaml": study_text(), "afile": "x"}, 1),
}


@pytest.mark.parametrize("argv, files, status", SUBPROCESS_CASES.values(), ids=SUBPROCESS_CASES.keys())
def test_no_traceback_reaches_the_terminal(tmp_path, argv, files, status):
    write_files(tmp_path, files)
    before = listing(tmp_path)
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", *[fill(a, tmp_path) for a in argv]],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**cli_env(), "PYTHONPATH": str(REPO)})
    assert out.returncode == status, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.startswith(f"decaylab {argv[0]}: error: ") and "hint:" in out.stderr
    assert listing(tmp_path) == before and not (tmp_path / "pwned").exists()


def test_study_files_are_parsed_with_a_safe_loader(tmp_path):
    """Even a tag that would run code when loaded unsafely is refused before it can do anything."""
    from orchestrator.errors import UserError
    from orchestrator.study.load import load_study

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: evil
        methods: !!python/object/apply:os.system ["touch {marker}"]
        """))
    with pytest.raises(UserError) as err:
        load_study(path)
    assert err.value.exit_status == 2 and "python/object" in err.value.message
    assert not marker.exists()


def test_a_download_without_a_network_is_refused_with_the_command_to_fetch_elsewhere(tmp_path, capsys, no_ray,
                                                                                    monkeypatch):
    from orchestrator.study import checks as feasibility

    monkeypatch.setattr(feasibility, "reachable", lambda host, port: False)  # no traffic leaves the test
    write_files(tmp_path, {"study.yaml": with_section("data", dataset="mnist", root=str(tmp_path / "data"),
                                                      download=True)})
    for command in (["validate"], ["sweep", "--storage", str(tmp_path / "storage")]):
        status = run_main([command[0], str(tmp_path / "study.yaml"), *command[1:]])
        err = capsys.readouterr().err
        assert status == 2 and "data.download" in err and "cannot be reached" in err, err
        assert "torchvision.datasets.MNIST(" in err and "download=True" in err  # the command to run elsewhere
    assert not (tmp_path / "storage").exists()


def test_a_sampler_whose_package_is_missing_is_refused_with_the_pip_command(tmp_path, capsys, no_ray, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cmaes" else find_spec(name, *a))
    write_files(tmp_path, {"study.yaml": study_text(search={"kind": "optuna", "sampler": "cmaes"})})
    status = run_main(["validate", str(tmp_path / "study.yaml")])
    err = capsys.readouterr().err
    assert status == 2 and "search.sampler: cmaes needs the package(s) cmaes" in err and "pip install cmaes" in err
