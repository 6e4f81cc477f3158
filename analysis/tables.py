"""Tables as Markdown, CSV and LaTeX, and the number formats they share.

A `Table` carries two frames: `data` (machine-readable, accuracies as fractions; written to
CSV) and `display` (strings, accuracies as percentages with one decimal; written to Markdown
and LaTeX), so a reader and a script each get the form they need.

Text in a CSV cell may come from a run directory (arm names, settings, error messages), and a
spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula: such text cells (and
those starting with a tab or carriage return) get a leading `'`, as OWASP advises for CSV
injection, and a carriage return inside text cannot start a row of its own. Numbers, negative
ones included, are written as numbers.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import output
from analysis.text import md, shown

INLINE_ROWS = 200  # longer tables are cut in report.md; the files keep every row
CI_NOTE = "± = half-width of the 95% t-interval over seeds"

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "|": r"\textbar{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
_LATEX_SYMBOLS = {
    "λ": r"$\lambda$",
    "±": r"$\pm$",
    "‖": r"$\|$",
    "−": "$-$",
    "–": "--",
    "×": r"$\times$",
    "…": r"\dots{}",
}


# Spreadsheets also read the full-width forms of these as formula starts in some locales.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


@dataclass(frozen=True)
class Table:
    name: str  # file stem under tables/
    title: str
    data: pd.DataFrame
    display: pd.DataFrame
    note: str = ""


def fixed(value: float, digits: int = 1) -> str:
    """`value` with `digits` decimals and a true minus sign, never '−0.0' (a tiny negative gap reads as a real one)."""
    return f"{round(value, digits) + 0.0:.{digits}f}".replace("-", "−")


def pct(value: float) -> str:
    """A fraction as a percentage with one decimal ('63.1'); '–' for NaN."""
    return "–" if missing(value) else fixed(100 * value)


def pct_pm(mean: float, half: float) -> str:
    """'63.1 ± 1.2' (percent; ± a CI half-width); the ± part is dropped when it is NaN (one seed)."""
    if missing(mean):
        return "–"
    return pct(mean) if missing(half) else f"{pct(mean)} ± {fixed(100 * half)}"


def num_pm(mean: float, half: float, digits: int = 2) -> str:
    """'12.34 ± 0.56' for unitless numbers (weight norms, epochs)."""
    if missing(mean):
        return "–"
    return fixed(mean, digits) if missing(half) else f"{fixed(mean, digits)} ± {fixed(half, digits)}"


def pts(value: float) -> str:
    """A difference of fractions in signed percentage points ('+1.3', '−0.5'); '–' for NaN."""
    if missing(value):
        return "–"
    text = fixed(100 * value)
    return text if text.startswith("−") else f"+{text}"


def interval(low: float, high: float) -> str:
    """A CI of a difference of fractions in signed points ('[−1.2, +0.5]'); '–' when undefined."""
    if missing(low) or missing(high):
        return "–"
    return f"[{pts(low)}, {pts(high)}]"


def p_text(p: float) -> str:
    """A p-value with two significant digits ('0.25', '0.0039')."""
    return "–" if missing(p) else f"{p:.2g}"


def missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def to_markdown(frame: pd.DataFrame, max_rows: int | None = None) -> str:
    """A GitHub-flavoured Markdown table of `frame`'s cells as strings, each escaped (`analysis.text.md`)."""
    shown = frame if max_rows is None else frame.head(max_rows)
    cells = shown.astype(str).map(md)
    lines = ["| " + " | ".join(md(c) for c in frame.columns) + " |", "|" + "---|" * frame.shape[1]]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False, name=None)]
    if max_rows is not None and len(frame) > max_rows:
        lines.append(f"\n*{len(frame) - max_rows} more rows in the CSV file.*")
    return "\n".join(lines)


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters and spell the Unicode symbols the tables use."""
    out = "".join(_LATEX_SPECIALS.get(char, char) for char in shown(text))
    for symbol, latex in _LATEX_SYMBOLS.items():
        out = out.replace(symbol, latex)
    return out


def to_latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table: one row per row of `frame`, every cell escaped."""
    header = " & ".join(latex_escape(column) for column in frame.columns) + r" \\"
    body = [" & ".join(latex_escape(cell) for cell in row) + r" \\" for row in frame.astype(str).values]
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(caption)}}}",
            rf"\label{{tab:{label}}}",
            r"\begin{tabular}{" + "l" * min(frame.shape[1], 2) + "r" * max(frame.shape[1] - 2, 0) + "}",
            r"\toprule",
            header,
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    )


def csv_cell(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula, with a leading `'`; anything else as it is.

    A carriage return in text becomes a newline: the CSV writer quotes a cell with a newline, but
    not one with a bare carriage return, which a reader takes as the end of a row (so text could
    start a row of its own, formula included).
    """
    if not isinstance(value, str):
        return value
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + text if value.startswith(FORMULA_STARTS) else text


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every text cell and header passed through `csv_cell`; numeric columns untouched."""
    out = frame.copy()
    for i in range(frame.shape[1]):
        values = frame.iloc[:, i]
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values)):
            out.isetitem(i, values.astype(object).map(csv_cell))
    out.columns = [csv_cell(column) for column in frame.columns]
    return out


def to_csv(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    csv_safe(frame).to_csv(buffer, index=False, float_format="%.6g", lineterminator="\n")
    return buffer.getvalue()


def write_table(table: Table, tables_dir: Path) -> list[Path]:
    """Write `<name>.md`, `.csv` and `.tex` under `tables_dir`, each atomically; return their paths."""
    output.ensure_dir(tables_dir)
    label = table.name.replace("_", "-")
    # All three are made before any is written, so a table that cannot be formatted leaves no file.
    files = {
        tables_dir / f"{table.name}.md": f"**{md(table.title)}**\n\n{to_markdown(table.display)}\n",
        tables_dir / f"{table.name}.csv": to_csv(table.data),
        tables_dir / f"{table.name}.tex": to_latex(table.display, table.title, label),
    }
    for path, text in files.items():
        # Atomic without a sync each: a table lost to a crash is rebuilt by running the report again.
        output.write_atomic(path, text, durable=False)
    return list(files)
