"""`python -m orchestrator.docs [--check] [--out DIR]`: write (or check) the generated reference pages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.docs import COMMAND, REFERENCE, pages


def stale(out: Path) -> list[str]:
    """The pages under `out` that differ from what would be written (or are missing)."""
    found = []
    for name, build in pages().items():
        path = out / name
        if not path.is_file() or path.read_text(encoding="utf-8") != build():
            found.append(name)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=COMMAND, description="write the generated reference pages")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page is out of date")
    p.add_argument("--out", type=Path, default=REFERENCE, help=f"directory of the pages (default {REFERENCE})")
    args = p.parse_args(argv)
    if args.check:
        names = stale(args.out)
        for name in names:
            print(f"{args.out / name}: out of date; run `{COMMAND}` (make docs)", file=sys.stderr)
        return 1 if names else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, build in pages().items():
        path = args.out / name
        text = build()
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"{path}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
