"""The command line: flag spellings, `--set` anywhere, bundled studies by name, the study schema, data
warnings, and commands that only read never importing torch or Ray."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from helpers.cli import heavy_imports
from helpers.sweep import REPO, write_study

from orchestrator.cli import build_parser, expand_sets, main
from orchestrator.study.catalog import bundled, study_file
from orchestrator.study.load import parse_yaml
from orchestrator.study.schema import study_schema


def test_set_takes_several_overrides_and_gives_the_positional_back():
    assert expand_sets(["validate", "--set", "a=1", "b=2", "s.yaml"]) == \
        ["validate", "--set", "a=1", "--set", "b=2", "s.yaml"]
    assert expand_sets(["sweep", "s.yaml", "--set", "a=1", "--storage", "x"]) == \
        ["sweep", "s.yaml", "--set", "a=1", "--storage", "x"]
    assert expand_sets(["train", "--set", "a=1", "--", "b=2"]) == ["train", "--set", "a=1", "--", "b=2"]


def test_validate_with_set_before_the_study(capsys):
    assert main(["validate", "--set", "train.epochs=3", "lr=[0.1]", "digits"]) == 0
    out = capsys.readouterr().out
    assert "12 trials" in out and "3 epochs each" in out and "16 confirmation trials" in out


def test_every_argument_has_help():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = [f"{name} {a.dest}" for name, sp in commands.items() for a in sp._actions
               if not a.help and not isinstance(a, argparse._HelpAction)]
    assert not missing, f"arguments without help: {missing}"


def test_the_report_directory_flag_parses_on_sweep_and_resume():
    parser = build_parser()
    assert parser.parse_args(["sweep", "s.yaml", "--report-dir", "r"]).report_dir == "r"
    assert parser.parse_args(["resume", "run", "--out", "r"]).report_dir == "r"  # the former spelling


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("decaylab ")


def test_bundled_studies_by_name():
    assert {"digits", "cifar10_preact18"} <= set(bundled())
    assert Path(study_file("digits")).read_text() == (REPO / "studies" / "digits.yaml").read_text()
    assert study_file("studies/digits.yaml") == "studies/digits.yaml"


def test_missing_dataset_is_a_warning_for_validate_and_an_error_for_sweep(tmp_path, capsys):
    study = write_study(tmp_path, data={"dataset": "cifar10", "root": str(tmp_path / "absent")})
    assert main(["validate", str(study)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "does not exist" in err
    assert "torchvision.datasets.CIFAR10(" in err and "download=True" in err  # the exact fetch command
    assert main(["sweep", str(study), "--storage", str(tmp_path / "results")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("path", sorted((REPO / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_the_schema_accepts_every_bundled_study(path):
    jsonschema.validate(parse_yaml(path.read_text(), str(path)), study_schema())


def test_the_schema_rejects_what_the_study_reader_rejects():
    schema = study_schema()
    good = {"methods": {"wd": {"kind": "fixed", "lambda": 5e-4}}, "lr": 0.1}  # grids: a scalar or a list
    jsonschema.validate(good, schema)
    for bad in ({**good, "trian": {}}, {**good, "lr": "fast"},
                {"methods": {"wd": {"kind": "fixed", "lambda_awd": [0.1]}}},
                {"methods": {"wd": {"kind": "nosuch"}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_schema_command_prints_json(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "decaylab study"


@pytest.mark.parametrize("argv", [("validate", "digits"), ("options",), ("schema",)])
def test_reading_commands_import_neither_torch_nor_ray(argv):
    assert heavy_imports(*argv) == (0, [])


@pytest.mark.slow
def test_run_after_heavy_imports_keeps_exit_handlers_output_and_status(tmp_path):
    """`decaylab` (`cli.run`) skips the interpreter's teardown once torch or Ray is loaded; what was
    registered to run at exit still runs, buffered output is not lost, and the exit status is main's."""
    code = ("import atexit, sys, torch; atexit.register(lambda: print('exit handler ran', file=sys.stderr)); "
            "from orchestrator.cli import run; print('buffered line', end=''); sys.argv = ['decaylab', *sys.argv[1:]]; "
            "run()")
    ok = subprocess.run([sys.executable, "-c", code, "options"], capture_output=True, text=True, cwd=REPO,
                        timeout=120)
    assert ok.returncode == 0 and "exit handler ran" in ok.stderr
    assert ok.stdout.startswith("buffered line") and "epochs" in ok.stdout  # the options table came through
    bad = subprocess.run([sys.executable, "-c", code, "validate", str(tmp_path / "missing.yaml")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and "exit handler ran" in bad.stderr and "error" in bad.stderr


@pytest.mark.slow
def test_run_waits_for_running_threads():
    """A non-daemon thread still running at the end of `main` is waited for, as the interpreter would."""
    code = ("import sys, threading, time, torch; from orchestrator import cli; "
            "late = threading.Thread(target=lambda: (time.sleep(0.5), print('thread done'))); "
            "cli.main = lambda: (late.start(), 0)[1]; "
            "cli.run()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0 and "thread done" in out.stdout
