"""CHANGELOG.md's newest version is the version pyproject.toml declares."""

from __future__ import annotations

import re

from helpers.docs import REPO


def test_the_changelog_names_the_packaged_version():
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(encoding="utf-8"), re.M)[1]
    headings = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (REPO / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert headings, "CHANGELOG.md has no `## [X.Y.Z]` section"
    assert headings[0] == version, f"CHANGELOG.md's newest section is {headings[0]}, pyproject.toml says {version}"
    assert headings == sorted(headings, key=lambda v: tuple(map(int, v.split("."))), reverse=True)
