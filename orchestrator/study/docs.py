"""The study-file reference, generated from the schema: `decaylab options` and README.md
(`python -m orchestrator.study.docs README.md`)."""

from __future__ import annotations

import re
import sys
import typing
from pathlib import Path
from typing import Any

import yaml

from orchestrator.study.errors import join
from orchestrator.study.schema import Study
from trials import arms
from trials.config import Section

BEGIN, END = "<!-- options:begin -->", "<!-- options:end -->"


def documented_options() -> list[tuple[str, str, str]]:
    """(dotted key, default, doc) for every study-file option, for `decaylab options` and the README."""
    rows: list[tuple[str, str, str]] = []

    def walk(model: type[Section], prefix: str) -> None:
        for name, f in model.model_fields.items():
            key = join(prefix, f.alias or name)
            default = f.get_default(call_default_factory=True)
            if isinstance(default, Section):
                walk(type(default), key)
                continue
            rows.append((key, "required" if f.is_required() else _yaml_text(default), f.description or ""))
            if (optional := optional_section(f.annotation)) is not None:  # e.g. train.ema: null, or its keys
                walk(optional, key)
            if name == "methods":
                for cls in arms.grid_classes():
                    kind = cls.model_fields["kind"].annotation.__args__[0]
                    for h in [*cls.hyperparameters(), *cls.NON_GRID_FIELDS]:
                        hf = cls.model_fields[h]
                        default = hf.get_default(call_default_factory=True)
                        rows.append((f"methods.<arm>.{cls.study_key(h)} (kind: {kind})",
                                     "required" if default is None else _yaml_text(default), hf.description or ""))

    walk(Study, "")
    return rows


def optional_section(annotation: Any) -> type[Section] | None:
    """The section class of a `Section | None` field (documented key by key), else None."""
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, Section):
            return arg
    return None


def _yaml_text(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    plain = list(value) if isinstance(value, tuple) else value
    return yaml.safe_dump(plain, default_flow_style=True).strip().removesuffix("...").strip()


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
