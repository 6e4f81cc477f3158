"""Bundled study files: `studies/*.yaml`, installed with the package, usable by name (`decaylab sweep digits`)."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from orchestrator.errors import UserError


def bundled() -> dict[str, Path]:
    """Name → path of every bundled study file."""
    base = resources.files("orchestrator.studies")
    return {p.name.removesuffix(".yaml"): Path(str(p)) for p in base.iterdir() if p.name.endswith(".yaml")}


def study_file(arg: str) -> str:
    """`arg` when it names a file (or looks like a path); else the bundled study of that name."""
    path = Path(arg)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return arg
    studies = bundled()
    if arg in studies:
        return str(studies[arg])
    close = difflib.get_close_matches(arg, list(studies), n=1)
    raise UserError(arg, "no such study file, and no bundled study of that name",
                    (f"did you mean `{close[0]}`? " if close else "") +
                    f"give a YAML file, or one of: {', '.join(sorted(studies))}")
