"""The report as a list of blocks, rendered twice: report.md and a self-contained report.html.

Text blocks hold the report's Markdown subset (user strings already escaped with
`analysis.text.md`); tables hold plain cell strings, escaped by each renderer. The HTML page
embeds every figure as a base64 PNG and sorts a table when a header is clicked (a few lines of
inline JavaScript), with no network access, so a report can be mailed or opened from cluster
storage.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from analysis.tables import INLINE_ROWS, Table, to_markdown
from analysis.text import cell_html, inline_html, md, shown


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


Item = str | tuple[str, list[str]]  # a bullet, or a bullet with sub-bullets


@dataclass(frozen=True)
class Bullets:
    items: list[Item]


@dataclass(frozen=True)
class TableBlock:
    table: Table


@dataclass(frozen=True)
class FigureBlock:
    name: str  # figures/<name>.png and .pdf
    caption: str
    png: Path


Block = Heading | Para | Bullets | TableBlock | FigureBlock


def to_markdown_text(blocks: list[Block]) -> str:
    return "\n".join(_markdown(block).rstrip() + "\n" for block in blocks)


def _markdown(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Para):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(_markdown_item(item) for item in block.items)
    if isinstance(block, TableBlock):
        t = block.table
        links = " · ".join(f"[{ext}](tables/{t.name}.{ext})" for ext in ("csv", "tex", "md"))
        note = f"\n\n*{md(t.note)}*" if t.note else ""
        return f"**{md(t.title)}**\n\n{to_markdown(t.display, INLINE_ROWS)}{note}\n\n{links}"
    caption = block.caption
    return f"![{caption}](figures/{block.name}.png)\n\n*{caption}* ([PDF](figures/{block.name}.pdf))"


def _markdown_item(item: Item) -> str:
    if isinstance(item, str):
        return f"- {item}"
    head, subitems = item
    return "\n".join([f"- {head}", *(f"  - {sub}" for sub in subitems)])


def _html_item(item: Item) -> str:
    if isinstance(item, str):
        return f"<li>{inline_html(item)}</li>"
    head, subitems = item
    return f"<li>{inline_html(head)}<ul>{''.join(_html_item(sub) for sub in subitems)}</ul></li>"


def to_html(blocks: list[Block], title: str) -> str:
    body = "\n".join(_html(block) for block in blocks)
    return _PAGE.format(title=html.escape(shown(title)), style=_STYLE, body=body, script=_SCRIPT)


def _html(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{inline_html(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f"<p>{inline_html(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(_html_item(item) for item in block.items) + "</ul>"
    if isinstance(block, TableBlock):
        return _table_html(block.table)
    data = base64.b64encode(block.png.read_bytes()).decode("ascii")
    caption = inline_html(block.caption)
    alt = html.escape(shown(block.caption))
    return (
        f'<figure id="fig-{html.escape(block.name)}"><img src="data:image/png;base64,{data}" alt="{alt}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{cell_html(c)}</th>" for c in table.display.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{cell_html(v)}</td>" for v in row) + "</tr>"
        for row in table.display.astype(str).itertuples(index=False, name=None)
    )
    note = f'<p class="note">{cell_html(table.note)}</p>' if table.note else ""
    return (
        f'<p class="title"><strong>{cell_html(table.title)}</strong></p>'
        f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{note}'
    )


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.45rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; cursor: pointer; user-select: none; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
figure { margin: 1rem 0; } img { max-width: 100%; height: auto; }
figcaption, .note { font-size: 0.85rem; color: #444; }
code { background: #f5f5f5; padding: 0 0.2rem; }
"""

# Click a header to sort by that column; numbers (the leading number of a cell) sort numerically.
_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], rows = Array.from(body.rows);
    var asc = !th.classList.contains("asc");
    th.parentNode.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
    th.classList.add(asc ? "asc" : "desc");
    function key(row) {
      var text = row.cells[col].textContent.trim(), num = parseFloat(text.replace("\\u2212", "-"));
      return isNaN(num) ? text.toLowerCase() : num;
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b), order;
      if (typeof x === typeof y) { order = x < y ? -1 : x > y ? 1 : 0; }
      else { order = typeof x === "number" ? -1 : 1; }
      return asc ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
{body}
<script>{script}</script>
</body>
</html>
"""
