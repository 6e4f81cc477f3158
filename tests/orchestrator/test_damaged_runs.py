"""Damaged run directories: any content of any file gives a clear message or a repair, never a traceback.

One small run directory is made once (a real `decaylab train` run, no Ray) and completed by hand
with a running trial (epoch rows), a failed one (error.json) and an evaluation record. Each case
damages one file of a fresh copy — truncated, emptied, binary, a directory in its place, or one
JSON value swapped for a value of another type — and runs `status`, `resume`, `evaluate` and (for
the result files) `report` on it in this process, with Ray replaced by a stub that refuses to start.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.ray import cluster

BASE = {
    "name": "damaged",
    "data": {"dataset": "digits", "subset": 100},
    "train": {"epochs": 2, "batch_size": 50},
    "attack": {"train": {"kind": "pgd", "eps": 0.25, "steps": 1, "step_size": 0.25},
               "eval": {"kind": "pgd", "steps": 1}},
    "eval": {"val_examples": 40, "test_examples": 40, "train_examples": 40, "final_examples": 40},
    "methods": {"wd": {"kind": "fixed", "lambda": [0.0]}},
    "lr": [0.05],
}
DONE, RUNNING, FAILED = "wd-0-lr0.05-s0", "wd-0-lr0.05-s1", "wd-0-lr0.05-s2"
SWAPS = ["two", None, [1]]  # a string, nothing, a list: what a hand edit or another program leaves
PATHLIKE = "../../../evil"  # for names, which become paths
ROW_KEYS = ["epoch", "trial_id", "method", "setting", "lr", "seed", "val_robust_acc", "status"]
STRUCTURAL = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "binary": lambda p: p.write_bytes(bytes(range(256)) * 4),
    "directory": lambda p: (p.unlink(), p.mkdir(), (p / "x").write_text("x")),
}


class WouldStartRay(BaseException):
    """Raised instead of starting Ray: the command got past every check of the run directory."""


def cli(argv: list) -> tuple[int | str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status: int | str = main([str(a) for a in argv])
        except WouldStartRay:
            status = "ray"
    return status, out.getvalue() + err.getvalue()


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("damaged")
    study = base / "study.yaml"
    study.write_text(yaml.safe_dump(BASE))
    run = base / "run"
    status, text = cli(["train", study, "--out", run, "--device", "cpu"])
    assert status == 0, text
    result = json.loads((run / "trials" / DONE / "result.json").read_text())
    running = run / "trials" / RUNNING
    running.mkdir()
    for row in result["rows"]:
        row = {**row, "trial_id": RUNNING, "seed": 1, "status": "running"}
        (running / f"epoch-{row['epoch']:04d}.json").write_text(json.dumps(row))
    config = json.loads(json.dumps(result["config"]))
    config["point"]["seed"] = 2
    (run / "trials" / FAILED).mkdir()
    (run / "trials" / FAILED / "error.json").write_text(json.dumps(
        {"trial_id": FAILED, "error": "RuntimeError: boom", "config": config}))
    (run / "trials" / DONE / "evaluation.json").write_text(json.dumps(
        {"trial_id": DONE, "settings": "x", "rows": result["evaluations"]}))
    return run


def files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())


def swaps(run: Path, name: str) -> list[tuple[str, object]]:
    """(key, value) pairs to swap into a JSON file: its top-level keys, and a row's keys."""
    data = json.loads((run / name).read_text())
    keys = ROW_KEYS if "/epoch-" in name else list(data)
    if name.endswith("result.json"):
        keys += ["rows.0.epoch", "rows.0.trial_id", "rows.0.val_robust_acc", "evaluations.0.checkpoint"]
    return [(k, v) for k in keys for v in [*SWAPS, *([PATHLIKE] if k.endswith(("trial_id", "study")) else [])]]


def swap(path: Path, key: str, value: object) -> None:
    data = json.loads(path.read_text())
    node, *parents = data, *key.split(".")[:-1]
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = key.split(".")[-1]
    node[int(last) if isinstance(node, list) else last] = value
    path.write_text(json.dumps(data))


def read_only_report(run_dir, out=None, **kwargs) -> Path:
    """What `report` does with the run directory — read the result files — without drawing the report
    (one real report of a damaged run is in test_faults)."""
    from analysis.load import load_run

    load_run(Path(run_dir))
    return Path(out or "report")


def check_commands(run: Path, damaged: str, monkeypatch, report: bool) -> None:
    import analysis.report

    def refuse(*args, **kwargs):
        raise WouldStartRay

    monkeypatch.setattr(cluster, "connect", refuse)
    monkeypatch.setattr(analysis.report, "write_report", read_only_report)
    outside = files(run.parent)
    commands = [["status", run], ["resume", run], ["evaluate", run, "--set", "eval.final_examples=20"]]
    if report:
        commands.append(["report", run, "--out", run.parent / "report"])
    for argv in commands:
        status, text = cli(argv)
        assert status in (0, 1, 2, "ray"), f"{argv[0]} with {damaged} damaged: exit {status}\n{text}"
        assert "Traceback" not in text
        if status in (1, 2):
            assert "hint:" in text or "decaylab status" in text, f"{argv[0]} with {damaged}: no clear message:\n{text}"
    new = set(files(run.parent)) - set(outside)
    assert not [f for f in new if not f.startswith((run.name + "/", "report/"))], new
    assert not list(run.parent.parent.rglob("evil"))


FILES = ["study.yaml", "manifest.json", "epochs.parquet", "trials.parquet", "evaluations.parquet",
         f"parts/epochs/{DONE}.arrow", f"parts/trials/{DONE}.arrow", f"trials/{DONE}/result.json",
         f"trials/{DONE}/checkpoint-0002.pt", f"trials/{DONE}/evaluation.json", f"trials/{RUNNING}/epoch-0001.json",
         f"trials/{RUNNING}/epoch-0002.json", f"trials/{FAILED}/error.json"]


@pytest.mark.parametrize("name", FILES)
def test_a_damaged_file_gives_a_message_or_a_repair_never_a_traceback(base_run, tmp_path, monkeypatch, name):
    for kind, damage in STRUCTURAL.items():
        run = tmp_path / kind / "run"
        shutil.copytree(base_run, run)
        damage(run / name)
        check_commands(run, f"{name} ({kind})", monkeypatch, report=not name.startswith("trials/"))


@pytest.mark.slow  # a few hundred cases: minutes on two cores
@pytest.mark.parametrize("name", [f for f in FILES if f.endswith(".json")])
def test_type_swapped_json_values_give_a_message_or_a_repair(base_run, tmp_path, monkeypatch, name):
    for i, (key, value) in enumerate(swaps(base_run, name)):
        run = tmp_path / str(i) / "run"
        shutil.copytree(base_run, run)
        swap(run / name, key, value)
        check_commands(run, f"{name} ({key}: {value!r})", monkeypatch, report=False)
