"""`write_report` end to end: files, HTML, wording of small runs, escaping, output safety, damaged inputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from helpers import analysis as fx

from analysis import report as report_module
from analysis.findings import findings
from analysis.load import ResultsError, load_run
from analysis.output import RECORD, OutputError
from analysis.pipeline import analyse
from analysis.report import write_report
from bench.synthetic import grid, make_results, manifest, write_results, write_run_dir

REPO = Path(__file__).resolve().parents[2]
FIGURES = {
    "lr_sensitivity",
    "lr_sensitivity_settings",
    "lr_heatmaps",
    "tuning_budget",
    "importance",
    "pareto",
    "robust_overfitting",
    "lambda_trajectory",
    "norms",
}
TABLES = {
    "selection_left_out",
    "comparison",
    "headline_test",
    "lr_robustness_test",
    "secondary",
    "sensitivity",
    "tuning_budget",
    "importance",
    "pareto",
    "configurations",
    "trials_unfinished",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("complete")
    return write_report(fx.write_run(root / "run", planned=50, partial=True), root / "out")


@pytest.fixture(scope="module")
def text(report) -> str:
    return report.read_text()


def _flatten(items) -> str:
    return " ".join(item if isinstance(item, str) else " ".join([item[0], *item[1]]) for item in items)


@pytest.mark.slow
def test_every_figure_is_png_and_pdf_and_embedded(report, text):
    pngs = {p.stem for p in (report.parent / "figures").glob("*.png")}
    assert pngs == FIGURES
    for stem in pngs:
        png, pdf = report.parent / "figures" / f"{stem}.png", report.parent / "figures" / f"{stem}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
        assert f"](figures/{stem}.png)" in text


def test_every_table_has_md_csv_tex_and_is_inline(report, text):
    tables = report.parent / "tables"
    assert {p.stem for p in tables.iterdir()} == TABLES
    for stem in TABLES:
        assert all((tables / f"{stem}.{ext}").stat().st_size > 0 for ext in ("md", "csv", "tex"))
        header = (tables / f"{stem}.md").read_text().splitlines()[2]
        assert header in text


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tags: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.scripts += tag == "script"
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def test_html_report_is_self_contained_and_embeds_every_figure(report, text):
    page = _Page()
    page.feed((report.parent / "report.html").read_text())
    page.close()
    figures = re.findall(r"!\[[^\]]*\]\(figures/([^)]+)\.png\)", text)
    assert len(page.images) == len(figures) == len(FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.tags.count("table") == len(re.findall(r"^\|---", text, flags=re.M))
    assert page.scripts == 1  # the table sorter; nothing is fetched from the network
    assert "http://" not in (report.parent / "report.html").read_text().replace("http://www.w3.org", "")


def test_header_and_status(text):
    lines = text.splitlines()
    assert lines[2] == "**partial: 48 of 50 trials finished (42 ok, 6 diverged, 1 failed, 1 running)**"
    assert "finished not finished" not in text
    assert "- 6 epochs, cosine lr schedule." in text
    assert "Validation labels: **same** as training" in text


def test_comparison_table_shows_the_final_evaluation_and_flags_divergence(report, text):
    csv = pd.read_csv(report.parent / "tables" / "comparison.csv").set_index("method")
    assert csv.loc["awd", "best_pgd_acc_mean"] == pytest.approx(0.465)
    assert csv.loc["wd", "examples_mean"] == fx.EXAMPLES
    configs = (report.parent / "tables" / "configurations.md").read_text()
    assert "| 3 (3 diverged, counted 0) |" in configs
    assert "binomial standard error" in text and "per-epoch PGD on `eval.test_examples`" in text


def test_the_rules_are_written_for_readers(text):
    rules = text.split("## How to read this report")[1].split("\n## ")[0]
    assert "Rules (the report repeats them)" not in text
    assert not re.search(r"analysis\.(select|compare|sensitivity)|trials\.selection|\w+\(\)", rules)
    assert "Headline = confirmation" in rules and "cross-fitted" in rules and "sign-flip" in rules
    assert "peak-normalised" in rules and "never by whether two intervals overlap" in rules
    for gone in ("bootstrap from", "detectable", "observed difference with power"):
        assert gone not in rules


def test_summary_json_is_written_beside_the_report(report):
    data = json.loads((report.parent / "summary.json").read_text())
    assert data["levels"]["0"]["headline"]["awd"]["n"] == 3


def _small_run(path: Path, seeds, epochs: int) -> Path:
    arms = {"wd": grid("fixed", lam=(0.0, 5e-4)), "awd": grid("adaptive", lambda_awd=(0.01,))}
    return write_run_dir(path, arms=arms, lrs=(0.05, 0.2), seeds=seeds, epochs=epochs)


def test_two_seeds_say_too_few_seeds_and_how_many_are_needed(tmp_path):
    a = analyse(load_run(_small_run(tmp_path / "run", (0, 1), 8)))
    text = _flatten(findings(a, 0.0))
    assert not a.smoke_test
    assert "**too few seeds** (exploratory, cross-fitted over 2 tuning seeds; seeds only varied;" in text
    assert "with 2 paired seeds the smallest p this test can give is 0.5, above the per-test level 0.025" in text
    assert re.search(r"about \d+ seeds would give power 0.8 to detect 1 point \(conservative sd\)", text)
    assert "better" not in text and "worse" not in text and "detectable" not in text


def test_one_seed_and_two_epochs_is_a_smoke_test(tmp_path):
    a = analyse(load_run(_small_run(tmp_path / "run", (0,), 2)))
    text = _flatten(findings(a, 0.0))
    assert a.smoke_reasons == ["1 seed", "2 epochs"]
    assert text.startswith("**Smoke test** (1 seed, 2 epochs)") and "not evidence" in text
    assert "cross-fitting needs at least two tuning seeds" in text and "as a description" in text.lower()
    assert "**smoke test**: no claim either way." in text and "better" not in text


def _hostile_run(path: Path) -> Path:
    results = make_results(
        arms={"wd": grid("fixed", lam=(5e-4,)), "awd": grid("adaptive", lambda_awd=(0.02,))},
        lrs=(0.05,),
        seeds=(0, 1),
        epochs=3,
        failed=[("awd", "λ_awd=0.02", 0.05, 1)],
    )
    bad_id = "awd|x\n<script>alert(1)</script>"
    for frame in (results.epochs, results.trials, results.evaluations):
        frame.loc[frame["trial_id"] == "awd-0.02-lr0.05-s1", "trial_id"] = bad_id
    results.trials.loc[results.trials["trial_id"] == bad_id, "error"] = "boom | bang\n<script>x</script>"
    data = manifest(results, description="A | B\n<script>alert('d')</script> *bold*")
    write_results(path, results, data)
    return path


@pytest.mark.slow
def test_user_strings_are_escaped_in_markdown_and_html(tmp_path):
    report = write_report(_hostile_run(tmp_path / "run"), tmp_path / "out")
    text = report.read_text()
    assert "<script>" not in text and "</script>" not in text
    assert "\\<script\\>alert('d')\\</script\\>" in text and "A \\| B" in text
    rows = [line for line in text.splitlines() if "awd\\|x" in line]
    assert rows and all(row.count(" | ") == rows[0].count(" | ") for row in rows)
    table = text.split("**Trials that diverged")[1].split("\n\n")[1].splitlines()
    assert len({line.count("|") - line.count("\\|") for line in table}) == 1  # no row split by a `|` or newline
    html = (report.parent / "report.html").read_text()
    assert html.count("<script>") == 1 and "&lt;script&gt;alert(&#x27;d&#x27;)&lt;/script&gt;" in html
    tex = (report.parent / "tables" / "trials_unfinished.tex").read_text()
    assert "<script>" not in tex and r"awd\textbar{}x \textless{}script\textgreater{}" in tex


@pytest.fixture
def quick(monkeypatch):
    """Only the header section: the output-directory rules do not depend on the sections."""
    monkeypatch.setattr(report_module, "SECTIONS", [report_module.SECTIONS[0], report_module.SECTIONS[3]])


@pytest.mark.slow
def test_out_with_foreign_files_is_refused_and_forced_writes_keep_them(tmp_path, quick):
    run = fx.write_run(tmp_path / "run")
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    foreign = [out / "notes.txt", out / "figures" / "mine.png", out / "report.md.bak"]
    for path in foreign:
        path.write_text("keep me")
    with pytest.raises(OutputError, match=r"out: directory is not empty .* --force"):
        write_report(run, out)
    assert all(path.read_text() == "keep me" for path in foreign)
    write_report(run, out, force=True)
    write_report(run, out)  # now it holds a report of its own: no force needed
    assert all(path.read_text() == "keep me" for path in foreign)
    assert (out / "report.md").exists() and (out / RECORD).exists()


@pytest.mark.slow
def test_a_rerun_removes_only_the_files_of_the_previous_report(tmp_path, quick):
    run, out = fx.write_run(tmp_path / "run"), tmp_path / "out"
    write_report(run, out)
    stale = out / "tables" / "old_table.csv"
    stale.parent.mkdir(exist_ok=True)
    stale.write_text("x")
    record = json.loads((out / RECORD).read_text())
    record["files"] += ["tables/old_table.csv", "../outside.txt"]
    (out / RECORD).write_text(json.dumps(record))
    outside = tmp_path / "outside.txt"
    outside.write_text("not the report's")
    write_report(run, out)
    assert not stale.exists() and outside.read_text() == "not the report's"


@pytest.mark.parametrize("name", ["../x", "/abs/path", "a/b", ".."])
def test_a_study_name_that_is_not_one_directory_is_refused(tmp_path, monkeypatch, name):
    run = fx.write_run(tmp_path / "run")
    data = json.loads((run / "manifest.json").read_text())
    data["study"] = name
    (run / "manifest.json").write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ResultsError, match=r"manifest\.json: study name .* cannot name a report directory"):
        write_report(run)
    assert not (tmp_path / "reports").exists() and not Path("/abs").exists()


@pytest.mark.slow
def test_default_out_dir_and_identical_reruns(tmp_path, monkeypatch, quick):
    run = fx.write_run(tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    first = write_report(run)
    assert first == Path("reports") / fx.STUDY / "report.md"
    before = {p: p.read_bytes() for p in first.parent.rglob("*") if p.is_file()}
    write_report(run)
    assert before == {p: p.read_bytes() for p in first.parent.rglob("*") if p.is_file()}


def _damage(run: Path, how: str) -> str:
    if how == "truncated":
        data = (run / "trials.parquet").read_bytes()
        (run / "trials.parquet").write_bytes(data[: len(data) // 2])
        return r"trials\.parquet: not a readable parquet file"
    if how == "dtype":
        epochs = pd.read_parquet(run / "epochs.parquet")
        epochs["epoch"] = "one"
        epochs.to_parquet(run / "epochs.parquet")
        return r"epochs\.parquet: a column has the wrong type"
    if how == "manifest":
        data = json.loads((run / "manifest.json").read_text())
        data["trials_planned"] = "two"
        (run / "manifest.json").write_text(json.dumps(data))
        return r'manifest\.json: field trials_planned is "two"; expected an integer or null'
    if how == "missing":
        pd.read_parquet(run / "epochs.parquet").drop(columns="val_robust_acc").to_parquet(run / "epochs.parquet")
        return r"epochs\.parquet: missing column\(s\) 'val_robust_acc'"
    trials = pd.read_parquet(run / "trials.parquet")
    trials.loc[0, "status"] = "exploded"
    trials.to_parquet(run / "trials.parquet")
    return r"trials\.parquet: column 'status' has 'exploded'"


@pytest.mark.parametrize("how", ["truncated", "dtype", "manifest", "missing", "status"])
def test_damaged_inputs_raise_results_error_naming_the_file(tmp_path, how):
    run = fx.write_run(tmp_path / "run")
    pattern = _damage(run, how)
    with pytest.raises(ResultsError, match=pattern):
        write_report(run, tmp_path / "out")


def test_without_manifest_the_planned_count_is_unknown(tmp_path):
    run = load_run(fx.write_run(tmp_path / "run", with_manifest=False))
    assert run.study == fx.STUDY
    assert analyse(run).progress.line().endswith("no manifest, so the planned count is unknown)")


def test_importing_report_does_not_import_torch_or_ray():
    code = "import sys, analysis.report; print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
