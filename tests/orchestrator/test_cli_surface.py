"""The command line's surface: a closed pipe, options that would be ignored, one meaning per flag, the
bundled studies, suggestions for mistyped options, --json output, packing trials on a node, `options`."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.sweep import REPO, write_study

from orchestrator.cli import build_parser, main, os_error
from orchestrator.cli.validate import idle_gpus
from orchestrator.study.catalog import bundled
from orchestrator.study.load import load_study
from orchestrator.sweep import estimate as estimate_mod


def run_main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse refuses a command line by exiting
        return int(e.code)


def strict_json(text: str):
    def refuse(constant: str):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


# --------------------------------------------------------------------------- 1. a closed pipe


@pytest.mark.parametrize("command", ["schema", "options"])
def test_a_reader_that_closes_the_pipe_early_is_not_an_error(command):
    """`decaylab schema | head -1`: the reader has gone before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = subprocess.run([sys.executable, "-m", "orchestrator.cli", command], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120)
    finally:
        os.close(write_end)
    assert (out.returncode, out.stderr) == (0, "")


def test_a_reader_that_takes_one_line_ends_it_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "schema"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert first == b"{\n" and proc.wait(timeout=120) == 0 and err == ""


def test_a_broken_pipe_elsewhere_is_an_error_but_never_a_lost_cluster(monkeypatch, capsys):
    args = argparse.Namespace(command="schema")
    assert "Ray" not in os_error(args, BrokenPipeError(32, "Broken pipe")).message

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("orchestrator.cli.reference.schema", broken)
    assert main(["schema"]) == 1  # stdout (captured here) is fine: the pipe was another
    err = capsys.readouterr().err
    assert "Broken pipe" in err and "Ray" not in err


# --------------------------------------------------------------------------- 2. options that would be ignored

IGNORED = {
    "report-dir-without-report": (["sweep", "digits", "--report-dir", "r"], ["--report-dir", "without --report"]),
    "out-without-report": (["sweep", "digits", "--out", "r"], ["--report-dir", "without --report"]),
    "force-without-report": (["resume", "{tmp}/run", "--force"], ["--force", "without --report"]),
    "confirm-report-dir": (["confirm", "{tmp}/run", "--report-dir", "r"], ["--report-dir"]),
    "mfu-without-estimate": (["validate", "digits", "--mfu", "0.5"], ["--mfu", "only applies to --estimate"]),
    "mfu-zero": (["validate", "digits", "--estimate", "--mfu", "0"], ["--mfu", "(0, 1]", "got 0"]),
    "mfu-above-one": (["validate", "digits", "--estimate", "--mfu", "1.5"], ["--mfu", "(0, 1]"]),
    "mfu-not-a-number": (["validate", "digits", "--estimate", "--mfu", "lots"], ["--mfu", "'lots'"]),
    "mfu-of-a-cpu-study": (["validate", "digits", "--estimate", "--mfu", "0.5"], ["--mfu", "trains on CPUs"]),
    "num-cpus-zero": (["sweep", "digits", "--num-cpus", "0"], ["--num-cpus", "must be ≥ 1"]),
    "seeds-zero": (["confirm", "{tmp}/run", "--seeds", "0"], ["--seeds", "must be ≥ 1"]),
    "gpus-per-node-alone": (["validate", "digits", "--gpus-per-node", "4"], ["--gpus-per-node", "--cpus-per-node"]),
    "cpus-per-node-alone": (["validate", "digits", "--cpus-per-node", "4"], ["--cpus-per-node", "--gpus-per-node"]),
    "gpus-per-node-zero": (["validate", "digits", "--gpus-per-node", "0", "--cpus-per-node", "4"],
                           ["--gpus-per-node", "must be ≥ 1"]),
    "num-cpus-with-address": (["sweep", "digits", "--num-cpus", "2", "--address", "127.0.0.1:1"],
                              ["--num-cpus", "--address names one"]),
    "dashboard-with-address": (["evaluate", "{tmp}/run", "--dashboard", "--address", "10.0.0.1:6379"],
                               ["--dashboard", "joins one"]),
    "dashboard-without-ray": (["sweep", "digits", "--executor", "local", "--dashboard"], ["--dashboard", "needs Ray"]),
    "num-cpus-without-ray": (["evaluate", "{tmp}/run", "--executor", "local", "--num-cpus", "1"],
                             ["--num-cpus", "--executor local runs one trial at a time"]),
}


@pytest.mark.parametrize("argv, says", IGNORED.values(), ids=IGNORED.keys())
def test_an_option_that_would_be_ignored_is_refused(argv, says, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a stray write (results/, reports/) would show
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert run_main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert all(text in err for text in says), err
    assert "Traceback" not in err and not list(tmp_path.iterdir())


def test_num_cpus_is_refused_when_ray_address_names_a_cluster(monkeypatch, capsys):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert run_main(["sweep", "digits", "--num-cpus", "2"]) == 2
    assert "RAY_ADDRESS names one" in capsys.readouterr().err


# --------------------------------------------------------------------------- 3. one meaning per flag


@pytest.mark.parametrize("argv, dest", [
    (["sweep", "s.yaml", "--report-dir", "d"], "report_dir"), (["resume", "r", "--out", "d"], "report_dir"),
    (["confirm", "r", "--report-dir", "d"], "report_dir"), (["report", "r", "--out", "d"], "report_dir"),
    (["compare", "a", "b", "--report-dir", "d"], "report_dir"),
    (["train", "s.yaml", "--run-dir", "d"], "run_dir"), (["train", "s.yaml", "--out", "d"], "run_dir"),
    (["export", "r", "--best", "wd", "-o", "d"], "output"), (["export", "r", "--best", "wd", "--out", "d"], "output"),
    (["verdict", "t.csv", "--reference", "wd", "--output", "d"], "output"),
])
def test_new_and_former_flag_spellings(argv, dest):
    assert getattr(build_parser().parse_args(argv), dest) == "d"


def test_the_former_out_is_not_shown_and_every_value_has_a_named_metavar():
    for name, sp in subcommands().items():
        assert not re.search(r"--out\b", sp.format_help()), name
        unnamed = [a.dest for a in sp._actions if a.nargs != 0 and a.help != argparse.SUPPRESS
                   and not a.choices and a.metavar is None]
        assert not unnamed, f"{name}: {unnamed} show argparse's upper-cased dest"


def test_export_still_requires_its_model_file(tmp_path, capsys):
    assert run_main(["export", str(tmp_path), "--best", "wd"]) == 2
    assert "-o/--output is required" in capsys.readouterr().err


# --------------------------------------------------------------------------- 4. bundled studies


def test_a_bundled_study_is_named_as_its_file_and_its_run_directory():
    from orchestrator.run.directory import run_dir_for

    for name, path in bundled().items():
        study = load_study(path, check_data=False)
        assert study.name == name == path.stem
        assert run_dir_for("results", study).location.endswith(f"results/{name}")


def test_studies_lists_every_bundled_study_without_timing_or_data(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no cached speed
    monkeypatch.setattr(estimate_mod, "seconds_per_forward", lambda *a: pytest.fail("timed training"))
    monkeypatch.setattr(estimate_mod.torch.cuda, "is_available", lambda: False)
    assert main(["studies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["STUDY", "DATASET", "NETWORK", "TRIALS", "EPOCHS", "COST"]
    rows = {line.split()[0]: line for line in lines[1:] if line.split() and line.split()[0] in bundled()}
    assert set(rows) == set(bundled())
    assert rows["cifar10_preact18"].split()[1:] == ["cifar10", "preact_resnet18", "108", "+", "20", "200", "30.8",
                                                    "GPU-h"]
    assert rows["digits"].split()[-1] == "—"  # a CPU study not timed on this machine


@pytest.mark.slow
def test_studies_gives_minutes_from_the_cached_speed(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    study = load_study(bundled()["digits"], check_data=False)
    cfg = estimate_mod.representative(study)
    key = estimate_mod.speed_key(cfg, "cpu", estimate_mod.threads(study))
    (tmp_path / "decaylab").mkdir()
    (tmp_path / "decaylab" / "speed.json").write_text(json.dumps({key: {"train_s": 1e-4, "eval_s": 1e-4}}))
    assert main(["studies"]) == 0
    digits = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("digits "))
    assert digits.endswith(" min")


def test_show_prints_the_study_file_and_suggests_a_name(capsys):
    assert main(["show", "cifar10_preact18"]) == 0
    text = capsys.readouterr().out
    assert text == (REPO / "studies" / "cifar10_preact18.yaml").read_text() and text.startswith("# ")
    assert main(["show", "cifar10_preact"]) == 2
    assert "did you mean `cifar10_preact18`?" in capsys.readouterr().err


def test_a_mistyped_study_name_gets_the_bundled_study_it_resembles(capsys):
    assert main(["validate", "cifar10_preact"]) == 2
    assert "did you mean `cifar10_preact18`?" in capsys.readouterr().err


# --------------------------------------------------------------------------- 5. mistyped options


def test_a_mistyped_option_is_refused_by_its_subcommand_with_a_suggestion(capsys):
    assert run_main(["sweep", "studies/digits.yaml", "--reprot"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized argument --reprot; did you mean --report?" in err
    assert "usage: decaylab sweep" in err


def test_an_unknown_option_without_a_likeness_gets_no_suggestion(capsys):
    assert run_main(["status", "run", "--zzz"]) == 2
    err = capsys.readouterr().err
    assert "usage: decaylab status" in err and "unrecognized argument --zzz" in err and "did you mean" not in err


# --------------------------------------------------------------------------- 6. --json


def test_validate_json(capsys):
    assert main(["validate", "digits", "--json"]) == 0
    doc = strict_json(capsys.readouterr().out)
    assert doc["ok"] is True and doc["study"] == "digits" and doc["search"] == "grid"
    assert (doc["trials"], doc["confirmation_trials"], doc["epochs"]) == (48, 16, 20)
    assert doc["estimate"] is None and isinstance(doc["warnings"], list)
    help_text = subcommands()["validate"].format_help()
    assert all(key in help_text for key in doc), "a --json field is not documented in `validate --help`"


def test_validate_json_with_the_estimate_and_a_warning(monkeypatch, capsys):
    monkeypatch.setattr(estimate_mod.torch.cuda, "is_available", lambda: False)  # the FLOP model, not a timing
    assert main(["validate", "cifar10_preact18", "--json", "--estimate", "--mfu", "0.36"]) == 0
    doc = strict_json(capsys.readouterr().out)
    assert doc["estimate"]["trials"] == 128 and doc["estimate"]["gpu_hours"] == pytest.approx(30.8, abs=0.1)
    assert any("data.root" in w for w in doc["warnings"])  # the dataset is not here


def test_validate_json_of_a_bad_study_says_why(tmp_path, capsys):
    study = write_study(tmp_path, train={"epochs": 0})
    assert main(["validate", str(study), "--json"]) == 2
    doc = strict_json(capsys.readouterr().out)
    assert doc["ok"] is False and "train.epochs" in doc["error"]["reason"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run directory of one finished trial (`decaylab train --run-dir`): 2 epochs on 200 digits."""
    tmp = tmp_path_factory.mktemp("train")
    study = write_study(tmp, data={"dataset": "digits", "subset": 200}, train={"epochs": 2, "batch_size": 50},
                        methods={"wd": {"kind": "fixed", "lambda": [5.0e-4]}}, lr=[0.05],
                        eval={"val_examples": 60, "test_examples": 60, "train_examples": 60, "final_examples": 80})
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "train", str(study), "--run-dir",
                          str(tmp / "run"), "--device", "cpu"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return tmp / "run"


@pytest.mark.slow
def test_status_json_says_what_the_text_says(trained, capsys):
    assert main(["status", str(trained)]) == 0
    text = capsys.readouterr().out
    assert main(["status", str(trained), "--json"]) == 0
    doc = strict_json(capsys.readouterr().out)
    assert doc["trials"] == 1 and doc["planned"] == 1 and doc["counts"]["ok"] == 1 and doc["progress"] == 1.0
    assert doc["study"] == "tiny" and doc["finished"] is True and doc["not_started"] == 0
    (best,) = doc["best"]
    assert best["arm"] == "wd" and f"val robust {best['val_robust_acc']:.3f}" in text
    help_text = subcommands()["status"].format_help()
    assert all(key in help_text for key in [*doc, *best]), "a --json field is not documented in `status --help`"


# --------------------------------------------------------------------------- 7. no command


def test_a_bare_decaylab_prints_its_usage_to_stderr(capsys):
    assert main([]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("usage: decaylab")


# --------------------------------------------------------------------------- 8. GPUs a node would leave idle


def test_validate_warns_when_trials_would_leave_gpus_idle(capsys):
    node = ["--gpus-per-node", "4", "--cpus-per-node", "16"]
    assert main(["validate", "cifar10_preact18", "--set", "resources.cpu=3", "resources.gpu=0.25", *node]) == 0
    err = capsys.readouterr().err
    assert "5 trials fit" in err and "1.25 of its 4 GPUs: 69% idle" in err and "resources.cpu ≤ 1" in err
    assert main(["validate", "cifar10_preact18", "--set", "resources.cpu=1", "resources.gpu=0.25", *node]) == 0
    assert "idle" not in capsys.readouterr().err


@pytest.mark.parametrize("cpu, gpu, says", [
    (1, 0.3, "GPU-bound"),  # three trials share a GPU, using 0.9 of it
    (1, 3, "a divisor of 4, e.g. 2"),
    (1, 0, "train on CPUs"),
    (32, 1, "no trial would start"),
    (4, 1, None),
    (2, 0.5, None),
])
def test_idle_gpus(cpu, gpu, says):
    study = load_study(bundled()["digits"], [f"resources.cpu={cpu}", f"resources.gpu={gpu}"], check_data=False)
    warning = idle_gpus(study, 4, 16)
    assert warning is None if says is None else says in warning


# --------------------------------------------------------------------------- 9. options


def test_options_filters_shows_types_and_choices_and_fits_the_terminal(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["options", "train"]) == 0
    lines = capsys.readouterr().out.splitlines()
    keys = [line.split(" = ")[0] for line in lines if not line.startswith(" ")]
    assert keys and all(k.startswith("train.") for k in keys) and "train.epochs" in keys
    schedule = next(line for line in lines if line.startswith("train.schedule "))
    assert "cosine, piecewise, constant" in schedule and "= cosine" in schedule
    assert "(integer)" in next(line for line in lines if line.startswith("train.epochs "))
    monkeypatch.setenv("COLUMNS", "200")  # wider terminals still get lines that read well
    assert main(["options"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 100


def test_options_of_an_unknown_section_suggests_one(capsys):
    assert main(["options", "trian"]) == 2
    assert "did you mean `train`?" in capsys.readouterr().err


def test_a_bundled_study_shown_is_a_study_file_the_reader_takes(tmp_path, capsys):
    assert main(["show", "digits"]) == 0
    path = Path(tmp_path / "my.yaml")
    path.write_text(capsys.readouterr().out)
    assert yaml.safe_load(path.read_text())["name"] == "digits"
    assert main(["validate", str(path)]) == 0
