"""Running the command line in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import yaml

from helpers.sweep import REPO


def heavy_imports(*argv: str) -> tuple[int, list[str]]:
    """Run `decaylab ARGV` in a fresh interpreter; its exit status and which of torch/ray it imported."""
    code = ("import sys; from orchestrator.cli import main; rc = main(sys.argv[1:]); "
            "print('HEAVY', [m for m in ('torch', 'ray') if m in sys.modules], file=sys.stderr); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    line = next(ln for ln in out.stderr.splitlines() if ln.startswith("HEAVY"))
    return out.returncode, yaml.safe_load(line.removeprefix("HEAVY "))
