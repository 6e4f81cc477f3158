"""Keep README.md's study-file reference in step with the code: `python -m orchestrator.docs`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from orchestrator.spec import documented_options

BEGIN, END = "<!-- options:begin -->", "<!-- options:end -->"


def options_markdown() -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, doc in documented_options():
        lines.append(f"| `{key}` | `{default}` | {doc.replace('|', '/')} |")
    return "\n".join(lines)


def with_options(readme: str) -> str:
    block = f"{BEGIN}\n{options_markdown()}\n{END}"
    return re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, readme, flags=re.S)


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(with_options(path.read_text()))
    print(f"{path}: study-file reference updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
