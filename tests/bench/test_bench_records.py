"""The benchmark records and the page generated from them: verdicts, the record file, BENCHMARKS.md up to date."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from bench import record, report, run_all
from bench.record import FIGURES, MODULES

MACHINE = {"cpu": "Test CPU", "cores": 2, "memory_gib": 8.0, "gpu": None, "platform": "Linux", "python": "3.11.0",
           "torch": "2.0", "ray": "2.0"}
# what each module's run printed: (closing lines, seconds, exit status)
FAKE_RUN = {
    "awd_overhead": ({"awd_overhead": "awd_overhead: 1.010"}, 120.0, 0),
    "attack_cost": ({"attack_cost": "attack_cost: 1.200"}, 60.0, 0),
    "trainer_vs_reference": ({"trainer_vs_reference": "trainer_vs_reference: 1.652"}, 200.0, 0),
    "records_scaling": ({"checkpoint_growth": "checkpoint_growth: 1.0000", "export_growth": "export_growth: 0.98"},
                        90.0, 0),
    "cli_startup": ({"cli_startup": "cli_startup: 0.44"}, 40.0, 0),
    "sweep_overhead": ({"sweep_overhead": "sweep_overhead: 1.145"}, 300.0, 1),  # crashed after one figure
    "orchestration_scaling": ({"orchestration_vs_ray": "orchestration_vs_ray: 1.08",
                               "orchestration_growth": "orchestration_growth: 0.49",
                               "report_million_rows": "report_million_rows: 23.1"}, 420.0, 0),
    "report_speed": ({"report_speed": "report_speed: 4.20 s for 100000 epoch rows"}, 30.0, 0),
    "gpu_check": ({f.name: f"{f.name}: skipped (no CUDA)" for f in FIGURES if f.module == "gpu_check"}, 3.0, 0),
}


def fake_record(when: datetime, commit: str = "abc1234", dirty: bool = False) -> dict:
    return record.build(figures=run_all.figures(FAKE_RUN), started=when, duration_s=1263.0, commit_=(commit, dirty),
                        machine_=MACHINE)


@pytest.mark.parametrize(("line", "status", "expected"), [
    ("awd_overhead: 1.010", 0, (1.01, "PASS")),
    ("awd_overhead: 1.031", 0, (1.031, "MISS")),
    ("awd_overhead: 1.010", 1, (None, "ERROR")),
    ("awd_overhead: nan", 0, (None, "ERROR")),
    ("awd_overhead: skipped (no CUDA)", 0, (None, "SKIP")),
    (None, 0, (None, "ERROR")),
])
def test_verdicts_against_a_target(line, status, expected):
    assert record.verdict(FIGURES[0], line, status) == expected


def test_a_figure_without_a_target_is_info_and_a_lower_bound_passes_above_it():
    info = next(f for f in FIGURES if f.name == "sweep_overhead")
    assert record.verdict(info, "sweep_overhead: 1.300", 0) == (1.3, "INFO")
    at_least = next(f for f in FIGURES if f.name == "trainer_vs_reference")
    assert record.verdict(at_least, "trainer_vs_reference: 1.29", 0) == (1.29, "MISS")
    assert record.verdict(at_least, "trainer_vs_reference: 1.30", 0) == (1.3, "PASS")


def test_the_targets_are_the_real_work_ratios_and_the_cpu_orchestration_has_none():
    targets = {f.name: f.target for f in FIGURES if f.target}
    assert targets == {"awd_overhead": ("<=", 1.03), "attack_cost": ("<=", 1.15),
                       "trainer_vs_reference": (">=", 1.3), "checkpoint_growth": ("<=", 1.01),
                       "export_growth": ("<=", 1.2), "cli_startup": ("<=", 1.0)}
    assert set(MODULES) == set(FAKE_RUN)
    for module in MODULES:
        assert (record.REPO / "bench" / f"{module}.py").is_file()


def test_a_record_round_trips_through_its_file_and_the_page(tmp_path):
    when = datetime(2027, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    path = record.write(fake_record(when), tmp_path)
    assert path.name == "2027-01-02T030405Z-abc1234.json"
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file left behind"
    with pytest.raises(FileExistsError):
        record.write(fake_record(when), tmp_path)

    (back,) = record.read_all(tmp_path)
    assert back == json.loads(json.dumps(fake_record(when)))
    assert back["date"] == "2027-01-02T03:04:05Z" and back["commit"] == "abc1234" and back["dirty"] is False
    by_name = {f["name"]: f for f in back["figures"]}
    assert [f["name"] for f in back["figures"]] == [f.name for f in FIGURES]
    assert by_name["awd_overhead"] == {"name": "awd_overhead", "value": 1.01, "unit": "ratio",
                                       "target": {"op": "<=", "bound": 1.03}, "verdict": "PASS",
                                       "module": "awd_overhead", "module_seconds": 120.0,
                                       "line": "awd_overhead: 1.010"}
    assert by_name["attack_cost"]["verdict"] == "MISS"
    assert by_name["sweep_overhead"]["verdict"] == "ERROR" and by_name["sweep_steady"]["line"] is None
    assert by_name["report_speed"] == {**by_name["report_speed"], "value": 4.2, "unit": "seconds", "verdict": "INFO"}
    assert by_name["gpu_check"]["verdict"] == "SKIP" and by_name["gpu_check"]["value"] is None

    page = report.render(record.read_all(tmp_path))
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in page.splitlines() if line.startswith("| [`")}
    assert rows["[`awd_overhead`](#awd_overhead)"] == [
        FIGURES[0].compares, "≤ 1.03", "1.01", "PASS", "1.01–1.01 (n=1)", "Test CPU, 2 cores, no GPU",
        "abc1234, 2027-01-02"]
    assert rows["[`gpu_check`](#gpu_check)"][2:4] == ["skipped", "SKIP"]
    assert rows["[`sweep_steady`](#sweep_overhead)"][2:4] == ["did not run", "ERROR"]
    assert report.NO_RUN not in page


def test_the_spread_covers_the_runs_on_the_latest_machine(tmp_path):
    first = fake_record(datetime(2027, 1, 1, tzinfo=timezone.utc), "aaaaaaa")
    second = fake_record(datetime(2027, 1, 2, tzinfo=timezone.utc), "bbbbbbb", dirty=True)
    other = fake_record(datetime(2026, 12, 31, tzinfo=timezone.utc), "ccccccc")
    other["machine"] = {**MACHINE, "cpu": "Another CPU"}
    for rec, value in ((first, 1.005), (second, 1.02), (other, 0.5)):
        rec["figures"][0]["value"] = value
        record.write(rec, tmp_path)
    page = report.render(record.read_all(tmp_path))
    row = next(line for line in page.splitlines() if line.startswith("| [`awd_overhead`]"))
    assert "| 1.02 | PASS | 1.005–1.02 (n=2) |" in row and "bbbbbbb (dirty), 2027-01-02" in row


def test_a_page_without_records_says_so_for_every_benchmark(tmp_path):
    page = report.render([])
    rows = [line for line in page.splitlines() if line.startswith("| [`")]
    assert len(rows) == len(FIGURES) and all(report.NO_RUN in row for row in rows)
    for module in MODULES:
        assert f"\n## {module}\n" in page


def test_a_damaged_record_is_named(tmp_path):
    (tmp_path / "2027-01-01T000000Z-abc1234.json").write_text('{"schema": 1}')
    with pytest.raises(ValueError, match=r"2027-01-01T000000Z-abc1234\.json"):
        record.read_all(tmp_path)


def test_benchmarks_md_is_up_to_date():
    """BENCHMARKS.md is generated: `.venv/bin/python -m bench.report` rewrites it."""
    assert report.main(["--check"]) == 0, "BENCHMARKS.md is stale: run `.venv/bin/python -m bench.report`"


def test_check_fails_on_a_stale_page(tmp_path):
    page = tmp_path / "BENCHMARKS.md"
    page.write_text("# Benchmarks\n\nedited by hand\n")
    assert report.main(["--check", "--page", str(page)]) == 1
    assert report.main(["--page", str(page)]) == 0
    assert report.main(["--check", "--page", str(page)]) == 0
