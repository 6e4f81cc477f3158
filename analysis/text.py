"""Safe text: user-supplied strings in Markdown, and the report's Markdown subset as HTML.

Trial ids, arm names, setting labels, error messages and the study description come from
files a person wrote, so before they enter report.md every newline is collapsed and every
character Markdown or HTML would act on is backslash-escaped (CommonMark renders `\\<` as a
literal `<`): a `|` cannot split a table cell and `<script>` stays text. The report's own
Markdown uses only `**bold**`, `*italic*`, `` `code` `` and `[links](target)`; `inline_html`
turns that subset into HTML, escaping everything else.
"""

from __future__ import annotations

import html
import re

_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~#])")
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash before any ASCII punctuation
_CODE = re.compile(r"`([^`]+)`")
_INLINE = (
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
)
_TOKEN = "\x00{}\x00"


def one_line(text: object) -> str:
    """`text` as a single line: every run of whitespace (newlines included) becomes one space."""
    return " ".join(str(text).split())


def md(text: object) -> str:
    """A user-supplied string, safe inside Markdown text and table cells."""
    return _SPECIAL.sub(r"\\\1", one_line(text))


def md_code(text: object) -> str:
    """A user-supplied string as an inline code span (backticks cannot occur inside it)."""
    return "`" + one_line(text).replace("`", "'") + "`"


def inline_html(markdown: str) -> str:
    """The report's inline Markdown as HTML; anything else is escaped and shown as text."""
    kept: list[str] = []  # HTML of code spans and escaped characters, put back at the end

    def keep(fragment: str) -> str:
        kept.append(fragment)
        return _TOKEN.format(len(kept) - 1)

    text = _CODE.sub(lambda m: keep(f"<code>{html.escape(m.group(1), quote=True)}</code>"), markdown)
    text = _ESCAPED.sub(lambda m: keep(html.escape(m.group(1), quote=True)), text)
    out = html.escape(text, quote=True)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], out)


def cell_html(text: object) -> str:
    """A table cell's plain text as HTML."""
    return html.escape(one_line(text), quote=True)
