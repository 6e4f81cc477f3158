"""`write_report` end to end on the hand-built run: files, embedding, LaTeX, partial runs, errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import analysis_fixtures as fx
import pandas as pd
import pytest

from analysis.load import ResultsError, load_run
from analysis.pipeline import analyse
from analysis.report import write_report

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return fx.write_run(tmp_path_factory.mktemp("complete") / "run")


@pytest.fixture(scope="module")
def report(run_dir) -> Path:
    return write_report(run_dir, run_dir.parent / "out")


@pytest.fixture(scope="module")
def text(report) -> str:
    return report.read_text()


def test_every_figure_is_written_as_png_and_pdf_and_embedded(report, text):
    figures = report.parent / "figures"
    pngs = sorted(figures.glob("*.png"))
    expected = {"lr_sensitivity", "lr_sensitivity_settings", "lr_heatmaps", "robust_overfitting", "norms"}
    assert expected | {"lambda_trajectory"} == {p.stem for p in pngs}
    for png in pngs:
        pdf = png.with_suffix(".pdf")
        assert png.stat().st_size > 1000 and pdf.stat().st_size > 1000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
        assert f"](figures/{png.name})" in text
    embedded = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", text)
    assert all((report.parent / path).is_file() for path in embedded)


def test_every_table_has_md_csv_tex_and_is_inline(report, text):
    tables = report.parent / "tables"
    stems = {p.stem for p in tables.iterdir()}
    assert {"comparison", "paired", "sensitivity", "configurations", "trials_unfinished"} == stems
    for stem in stems:
        assert all((tables / f"{stem}.{ext}").stat().st_size > 0 for ext in ("md", "csv", "tex"))
        header = (tables / f"{stem}.md").read_text().splitlines()[2]
        assert header in text  # the table's header row appears inline in report.md


def test_latex_comparison_is_well_formed(report):
    tex = (report.parent / "tables" / "comparison.tex").read_text()
    begins, ends = re.findall(r"\\begin\{(\w+)\}", tex), re.findall(r"\\end\{(\w+)\}", tex)
    assert begins == ["table", "tabular"] and ends == ["tabular", "table"]
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    assert len(body) == 2  # one data row per arm
    columns = tex.split("\\begin{tabular}{")[1].split("}")[0]
    assert all(row.count(" & ") == len(columns) - 1 for row in body)
    assert "_" not in tex.replace(r"\_", "") and "%" not in tex.replace(r"\%", "")
    assert r"$\lambda$\_awd=0.02" in tex and r"$\pm$" in tex


def test_csv_keeps_fractions_and_display_shows_percent(report, text):
    csv = pd.read_csv(report.parent / "tables" / "comparison.csv").set_index("method")
    assert csv.loc["awd", "best_test_robust_acc_mean"] == pytest.approx(0.45)
    assert "45.0 ± 7.1" in text and "42.0 ± 1.4" in text


def test_summary_states_the_numbers(text):
    summary = text.split("## Summary of findings")[1].split("\n## ")[0]
    assert "45.0% ± 7.1 PGD test accuracy" in summary and "42.0% ± 1.4 for wd" in summary
    assert "+7.1% relative" in summary
    assert "Paired over 6 (lr, seed) pairs" in summary and "4/1/1 wins/ties/losses" in summary
    assert "mean +10.8 points" in summary
    assert "3 of 12 wd trials diverged (lr 1)" in summary


def test_complete_run_says_complete_and_lists_diverged_trials(text):
    assert "**complete: 24 of 24 trials finished (21 ok, 3 diverged)**" in text
    trials = text.split("## Trials")[1].split("\n## ")[0]
    for trial_id in fx.DIVERGED_IDS:
        assert re.search(rf"\| {re.escape(trial_id)} \| diverged \|[^\n]*\| 2 \|", trials)


def test_partial_run_is_reported_as_partial(tmp_path):
    run = fx.write_run(tmp_path / "run", planned=30, partial=True)
    text = write_report(run, tmp_path / "out").read_text()
    assert (
        text.splitlines()[2]
        == "**partial: 24 of 30 trials finished (21 ok, 3 diverged, 1 failed, 1 running, 4 not started)**"
    )
    assert "out of memory" in text and "| running |" in text


def test_without_manifest_the_planned_count_is_unknown(tmp_path):
    run = load_run(fx.write_run(tmp_path / "run", with_manifest=False))
    line = analyse(run).progress.line()
    assert run.study == fx.STUDY
    assert (
        line == "complete: 24 of 24 trials finished (21 ok, 3 diverged, no manifest, so the planned count is unknown)"
    )


def test_default_out_dir_and_identical_reruns(tmp_path, monkeypatch, run_dir, report):
    monkeypatch.chdir(tmp_path)
    again = write_report(run_dir)
    assert again == Path("reports") / fx.STUDY / "report.md"
    files = sorted(path.relative_to(report.parent) for path in report.parent.rglob("*.*"))
    assert files == sorted(path.relative_to(again.parent) for path in again.parent.rglob("*.*"))
    for path in files:
        assert (report.parent / path).read_bytes() == (again.parent / path).read_bytes(), path


def test_missing_column_names_file_and_column(tmp_path):
    run = fx.write_run(tmp_path / "run")
    epochs = pd.read_parquet(run / "epochs.parquet").drop(columns="val_robust_acc")
    epochs.to_parquet(run / "epochs.parquet")
    with pytest.raises(ResultsError, match=r"epochs\.parquet: missing column\(s\) 'val_robust_acc'"):
        load_run(run)


def test_unknown_status_is_rejected(tmp_path):
    run = fx.write_run(tmp_path / "run")
    trials = pd.read_parquet(run / "trials.parquet")
    trials.loc[0, "status"] = "exploded"
    trials.to_parquet(run / "trials.parquet")
    with pytest.raises(ResultsError, match=r"trials\.parquet: column 'status' has 'exploded'"):
        load_run(run)


def test_importing_report_does_not_import_torch_or_ray():
    code = "import sys, analysis.report; print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
