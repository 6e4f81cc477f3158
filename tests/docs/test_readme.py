"""README.md stays a first page: short, the two make commands on it, and no link into nothing."""

from __future__ import annotations

import re

import pytest
from helpers.docs import REPO, links, pages

README = REPO / "README.md"
LIMIT = 12 * 1024  # bytes: what a reader takes in before the docs take over


def test_the_readme_is_short_and_names_the_make_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode()) <= LIMIT, f"README.md is {len(text.encode()):,} bytes; move detail into docs/"
    for command in ("make sweep", "make test", "make test-fast"):
        assert command in text
    first_screen = "\n".join(text.splitlines()[:60])
    assert "make sweep" in first_screen and "make test" in first_screen


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file(page):
    broken = []
    for line, target, marker in links(page):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        if (page.parent / target.split("#")[0]).exists():
            continue
        if marker and marker.startswith("placeholder:"):
            continue  # a file the maintainer adds, said so above the link
        broken.append(f"{page.relative_to(REPO)}:{line}: {target}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_page_points_at_files_users_do_not_have(page):
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text and "/work/" not in text


def test_the_expected_result_is_what_its_record_gives():
    from orchestrator.docs import expected

    assert expected.main(["--check"]) == 0, "run `make readme-result` after `make sweep`"
    rec, name = expected.current_record()
    text = README.read_text(encoding="utf-8")
    assert f"]({name})" in text and rec["verdicts"][0] in text
    assert (REPO / "docs" / "img" / "lr_sensitivity.png").is_file()


REPORT = """# decaylab report: toy

## Summary of findings

- **awd vs wd**
  - *Headline* (PGD-10 accuracy ...): awd 45.6% vs wd 45.3%. **inconclusive** (confirmation on 8 fresh seeds)
  - *Across the lr grid* (4 lrs): **too few seeds**
- **rw vs wd**
  - *Headline* (PGD-10 accuracy ...): rw 40.0% vs wd 45.3%. **worse** (confirmation on 8 fresh seeds)

## How to read this report

- *Headline* of nothing: not a finding
"""


def test_a_record_quotes_the_report_headlines_and_the_run_files(tmp_path):
    import json

    from orchestrator.docs import expected

    run, report = tmp_path / "run", tmp_path / "report"
    run.mkdir()
    report.mkdir()
    (run / "manifest.json").write_text(json.dumps({
        "study": "toy", "started": "2026-01-01T10:00:00+00:00", "finished": "2026-01-01T10:12:30+00:00",
        "git_commit": "0123456789abcdef", "versions": {"decaylab": "9.9"}, "trials_planned": 4,
        "hardware": {"cpus": 2, "gpus": [], "platform": "Linux"}}))
    (report / "summary.json").write_text(json.dumps({
        "metric": "pgd_acc", "status": {"counts": {"ok": 3, "diverged": 1, "failed": 0}},
        "levels": {"0": {"selected": {"wd": {"setting": "λ=0.005", "lr": 0.1, "best": {"pgd_acc": {"mean": 0.4}}}},
                         "headline": {"awd": {"verdict": "inconclusive", "n": 8, "p_adjusted": 0.9}}}}}))
    (report / "report.md").write_text(REPORT)
    rec = expected.record(run, report)
    assert rec["minutes"] == 12.5 and rec["trials"] == {"planned": 4, "ok": 3, "diverged": 1, "failed": 0}
    assert rec["verdicts"] == [
        "**awd vs wd**: *Headline* (PGD-10 accuracy ...): awd 45.6% vs wd 45.3%. **inconclusive** "
        "(confirmation on 8 fresh seeds)",
        "**rw vs wd**: *Headline* (PGD-10 accuracy ...): rw 40.0% vs wd 45.3%. **worse** "
        "(confirmation on 8 fresh seeds)"]
    assert rec["headline"]["awd"]["verdict"] == "inconclusive" and rec["selected"]["wd"]["accuracy"]["mean"] == 0.4
    text = expected.block(rec, "docs/results/toy.json")
    assert "took **12.5 minutes**" in text and "3 ok, 1 diverged" in text and "commit 0123456" in text
    assert expected.readme_with("a\n<!-- expected result: old -->\nold\n<!-- end of the expected result -->\nb",
                                text) == f"a\n{text}\nb"
    (run / "manifest.json").write_text(json.dumps({"study": "toy", "started": "2026-01-01T10:00:00+00:00"}))
    with pytest.raises(SystemExit, match="has not finished"):
        expected.record(run, report)
