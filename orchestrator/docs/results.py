"""docs/reference/results.md: the run directory and the columns of its three result files, from the result
schema (`trials/schema.py`: the dtypes from its tables, each column's meaning from the comment beside it)."""

from __future__ import annotations

import inspect
import re

from orchestrator.docs import header
from orchestrator.docs.cli import cell
from trials import arms, schema

KEY = re.compile(r'^\s*"(?P<name>\w+)":\s*"\w+",\s*(?:#\s?(?P<doc>.*))?$')
TABLE = re.compile(r"^(?P<name>[A-Z_]+):\s*Final\[?.*=\s*\{\s*$")
COMMENT = re.compile(r"^\s*#\s?(?P<doc>.*)$")

RUN_DIR = """\
A run directory is `<storage>/<study name>` (default storage `results/`; `s3://` and `gs://` URIs work
through pyarrow). It holds:

* `trials/<trial id>/`: each trial's own record, the source of truth: one `epoch-NNNN.json` per epoch and its
  two newest `checkpoint-NNNN.pt` while it runs; `result.json` (every row, the final evaluations, the
  summary) and its final checkpoint when it ends; `error.json` for a failed trial; `evaluation.json` after
  `decaylab evaluate`.
* `epochs.parquet`, `trials.parquet`, `evaluations.parquet`: the result files below, consolidated from
  per-trial parts (`parts/<table>/<trial id>.arrow`) at the end of every sweep and before every report.
* `manifest.json` (the resolved study, git commit, package versions, hardware, start and end times),
  `study.yaml` (what `resume` runs), `sweep.log`, and Ray Tune's experiment directories `sweep-NNN/`.

Every file is written atomically (a temporary file, then a rename). Checkpoints are read with
`torch.load(weights_only=True)` and nothing Ray pickled is ever read back, so a run directory from someone else
cannot run code on your machine. Accuracies are fractions in [0, 1]; a value that does not apply (another
arm's hyperparameter, a metric not measured) is NaN, or `<NA>` for text.
"""

TABLES = [
    ("epochs.parquet", "one row per (trial, epoch)", schema.EPOCH_METRICS, "EPOCH_METRICS"),
    ("trials.parquet", "one row per trial", schema.TRIAL_METRICS, "TRIAL_METRICS"),
    ("evaluations.parquet", "the final evaluation: one row per (finished trial, checkpoint, pruning sparsity), "
     "in fp32, clean, FGSM, the study's attack and (when enabled) AutoAttack on the same seeded test examples",
     {k: v for k, v in schema.EVAL_COLUMNS.items() if k not in schema.CONFIG_COLUMNS}, "EVAL_COLUMNS"),
]


def page() -> str:
    docs = column_docs(inspect.getsource(schema))
    lines = [header("Results", "the result schema (`trials/schema.py`)"), RUN_DIR,
             "## Configuration columns", "",
             "Every row of every result file starts with its trial's configuration:", "",
             *table(schema.CONFIG_COLUMNS, docs["CONFIG_COLUMNS"] | hyperparameter_docs()), ""]
    for file, what, columns, name in TABLES:
        lines += [f"## {file}", "", f"{what[0].upper()}{what[1:]}: the configuration columns, then", "",
                  *table(columns, docs[name]), ""]
    statuses = ", ".join(f"`{s}`" for s in schema.STATUSES)
    lines += [f"A trial's `status` is one of {statuses}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def table(columns: dict[str, str], docs: dict[str, str]) -> list[str]:
    undocumented = [c for c in columns if not docs.get(c)]
    if undocumented:
        raise ValueError(f"trials/schema.py: columns without a comment saying what they hold: {undocumented}")
    return ["| column | type | meaning |", "|---|---|---|",
            *(f"| `{c}` | {dtype} | {cell(docs[c])} |" for c, dtype in columns.items())]


def column_docs(source: str) -> dict[str, dict[str, str]]:
    """Table name → column → the comment beside it, with the comment lines that continue it."""
    docs: dict[str, dict[str, str]] = {}
    current, last = None, None
    for line in source.splitlines():
        if m := TABLE.match(line):
            current, last = docs.setdefault(m["name"], {}), None
        elif current is not None and (m := KEY.match(line)):
            last = m["name"] if m["doc"] else None
            current[m["name"]] = m["doc"] or ""
        elif current is not None and last is not None and (m := COMMENT.match(line)):
            current[last] += " " + m["doc"]
        else:
            last = None
            if line.startswith("}"):
                current = None
    return docs


def hyperparameter_docs() -> dict[str, str]:
    """Each hyperparameter column: what it is, from the arms that have it."""
    docs: dict[str, str] = {}
    for kind in arms.KINDS:
        cls = arms.grid_class(kind)
        for name in cls.hyperparameters():
            spelled = cls.study_key(name)
            key = f" (`{spelled}` in the study file)" if spelled != name else ""
            docs.setdefault(name, "")
            docs[name] += f"{'; ' if docs[name] else ''}{kind}{key}: {cls.model_fields[name].description}"
    return {name: f"{doc}; NaN (<NA>) in other arms' rows" for name, doc in docs.items()}
