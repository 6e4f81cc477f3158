"""Every YAML block of README.md and docs/ is a study file the loader accepts (no check of this machine's data),
unless a marker above it says why not (`<!-- invalid: … -->`) or that it is a few keys (`<!-- fragment -->`,
checked merged into the default study)."""

from __future__ import annotations

import pytest
from helpers.docs import REPO, all_blocks, pages

from orchestrator.study.load import parse_yaml, study_from_dict

BLOCKS = all_blocks(pages(), "yaml", "yml")


def merged(base: dict, keys: dict) -> dict:
    out = dict(base)
    for k, v in keys.items():
        out[k] = merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def test_the_docs_hold_study_files():
    assert sum(1 for b in BLOCKS if not b.marker or not b.marker.startswith("invalid:")) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_a_yaml_block_is_a_valid_study(block):
    marker = block.marker or ""
    if marker.startswith("invalid:"):
        assert marker.split(":", 1)[1].strip(), f"{block.where}: say why the block is not a study file"
        return
    raw = parse_yaml(block.text, block.where)
    assert isinstance(raw, dict), f"{block.where}: not a mapping"
    if marker == "fragment":
        default = REPO / "studies" / "digits.yaml"
        raw = merged(parse_yaml(default.read_text(encoding="utf-8"), str(default)), raw)
    else:
        assert not marker or marker.startswith("file:"), f"{block.where}: unknown marker {marker!r}"
    study_from_dict(raw, block.where, check_data=False)
