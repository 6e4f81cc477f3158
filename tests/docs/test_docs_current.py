"""The generated reference pages under docs/reference/ are what `python -m orchestrator.docs` writes now: a
command, option, study key, result column or environment variable added to the code fails here until the pages
are regenerated (`make docs`)."""

from __future__ import annotations

import pytest

from orchestrator.docs import COMMAND, REFERENCE, pages


@pytest.mark.parametrize("name", list(pages()))
def test_the_generated_page_is_current(name):
    path = REFERENCE / name
    assert path.is_file(), f"{path} is missing: run `{COMMAND}` (make docs)"
    assert path.read_text(encoding="utf-8") == pages()[name](), f"{path} is out of date: run `{COMMAND}` (make docs)"


def test_the_check_names_a_stale_page(tmp_path, capsys):
    from orchestrator.docs.__main__ import main

    assert main(["--out", str(tmp_path)]) == 0
    (tmp_path / "cli.md").write_text("stale\n", encoding="utf-8")
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert "cli.md: out of date" in capsys.readouterr().err


def test_every_command_and_study_key_is_on_its_page():
    from orchestrator.cli import build_parser
    from orchestrator.docs.cli import subcommands
    from orchestrator.study.docs import options

    cli, study = pages()["cli.md"](), pages()["study-file.md"]()
    assert all(f"## decaylab {name}" in cli for name in subcommands(build_parser()))
    assert all(f"| `{o.key}` |" in study for o in options())
    assert "`fgsm_rs`" in study and "`trades`" in study  # a Literal's allowed values
