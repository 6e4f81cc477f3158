"""`decaylab verdict TABLE.csv`: the report's verdicts for a hand-written table, and clear errors for bad ones."""

from __future__ import annotations

import json
import re

import pytest

from orchestrator.cli import main

# Eight seeds: awd is 2 points better on every seed, sad identical to the reference on every seed.
GOOD = "arm,seed,value\n" + "".join(
    f"wd,{s},{0.40 + 0.01 * s:.2f}\nawd,{s},{0.42 + 0.01 * s:.2f}\nsad,{s},{0.40 + 0.01 * s:.2f}\n" for s in range(8)
)


def test_a_hand_written_table_gets_its_verdicts_as_text_and_strict_json(tmp_path, capsys):
    table, out = tmp_path / "seeds.csv", tmp_path / "verdicts.json"
    table.write_text(GOOD)
    assert main(["verdict", str(table), "--reference", "wd", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "value: arm − wd, paired by seed" and lines[1].split()[:3] == ["verdict", "arm", "n"]
    assert lines[2].split()[:4] == ["better", "awd", "8", "+0.02"]  # p = 2/256 for both, max-T over 2: ≤ 0.05
    assert lines[3].split()[:3] == ["equivalent", "sad", "8"]
    assert len({re.match(r"\S+\s+", line).end() for line in lines[1:]}) == 1  # the columns are aligned
    data = json.loads(out.read_text(), parse_constant=lambda token: pytest.fail(f"non-standard JSON {token}"))
    rows = {row["arm"]: row for row in data["comparisons"]}
    assert data["reference"] == "wd" and data["adjust"] == "maxT" and data["min_effect"] == 0.01
    assert rows["awd"]["verdict"] == "better" and rows["awd"]["p_value"] == pytest.approx(2 / 256)
    assert rows["awd"]["ci_level"] == pytest.approx(1 - 2 * 6 / 256)  # k = ⌊0.05·256/2⌋ = 6 of 256 patterns
    assert rows["sad"]["sd_upper"] is None and rows["sad"]["seeds_needed"] is None  # NaN and <NA> → null


def test_groups_and_options_are_passed_through(tmp_path, capsys):
    table = tmp_path / "seeds.csv"
    table.write_text("noise,arm,seed,acc\n" + "".join(
        f"{n},wd,{s},0.5\n{n},awd,{s},{0.5 + 0.01 * (s % 3)}\n" for n in (0, 0.2) for s in range(6)
    ))
    args = ["verdict", str(table), "--reference", "wd", "--metric", "acc", "--by", "noise", "--adjust", "holm",
            "--alpha", "0.1", "--min-effect", "0.02"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("acc: arm − wd") and lines[1].split()[:3] == ["verdict", "noise", "arm"]
    assert [line.split()[1] for line in lines[2:]] == ["0.0", "0.2"]


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("arm,value\nwd,0.5\n", [], r"missing columns \['seed'\]"),
        ("arm,seed,value\nwd,0,0.5\nwd,0,0.6\nawd,0,0.5\n", [], r"share \(arm, seed\) = \('wd', 0\)"),
        ("arm,seed,value\nwd,0,0.5\nawd,0,high\n", [], r"column 'value' must hold finite numbers"),
        (GOOD, ["--min-effect", "2"], "min_effect must be a fraction"),
        (b"\xff\xfe\x00garbage\x00", [], "cannot be read as CSV"),
        ("", [], "cannot be read as CSV"),
    ],
    ids=["no seed column", "repeated row", "not a number", "effect in points", "binary", "empty"],
)
def test_bad_input_is_a_user_error_with_a_hint(tmp_path, capsys, content, args, message):
    table = tmp_path / "seeds.csv"
    table.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["verdict", str(table), "--reference", "wd", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"decaylab verdict: error: {table}: ") and "hint:" in err
    assert re.search(message, err), err
    assert "Traceback" not in err


def test_an_unknown_reference_or_a_missing_file_is_a_user_error(tmp_path, capsys):
    table = tmp_path / "seeds.csv"
    table.write_text(GOOD)
    assert main(["verdict", str(table), "--reference", "nope"]) == 2
    assert "reference 'nope' is not among the arms ['wd', 'awd', 'sad']" in capsys.readouterr().err
    assert main(["verdict", str(tmp_path / "absent.csv"), "--reference", "wd"]) == 2
    assert "absent.csv: no such file" in capsys.readouterr().err
