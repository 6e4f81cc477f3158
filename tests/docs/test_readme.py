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
