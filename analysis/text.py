"""Safe text: user-supplied strings in Markdown, and the report's Markdown subset as HTML.

Trial ids, arm names, setting labels, error messages and the study description come from
files a person wrote, so before they enter report.md every newline is collapsed, every control
character and bidi override is shown as an escape (`\\x1b`, `\\u202e`: otherwise a terminal or a
browser would act on it, or reorder the text around it), and every character Markdown or HTML
would act on is backslash-escaped (CommonMark renders `\\<` as a literal `<`): a `|` cannot split
a table cell and `<script>` stays text. GitHub also turns bare addresses into links (`https://…`,
`www.…`, `a@b.c`): `md` breaks each of them so run text never becomes a live link. The report's own
Markdown uses only `**bold**`, `*italic*`, `` `code` `` and `[links](target)`; `inline_html` turns
that subset into HTML, escaping everything else.
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
)
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
# A relative path (`tables/x.csv`), an anchor or an http(s) address: the only link targets the report makes.
_SAFE_TARGET = re.compile(r"(?i)(https?://|#|(?![a-z][a-z0-9+.-]*:)[\w.-])")
# C0 and C1 controls (not tab and newline) and the bidi embeddings, overrides, isolates and marks.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# GitHub's autolinks: a scheme's `://` and `www.` are escaped; an e-mail address is split by an empty
# HTML comment (GitHub joins escaped characters back into the text before it looks for addresses).
_AUTOLINK = (
    (re.compile(r"://"), r"\\://"),
    (re.compile(r"(?i)\b(www)\."), r"\1\\."),
    (re.compile(r"@"), "@<!-- -->"),
)
NO_LINK = "<!-- -->"
# Placeholders for the fragments `inline_html` sets aside; NUL cannot occur in text after `visible`.
_TOKEN = "\x00{}\x00"
_TOKENS = re.compile("\x00(\\d+)\x00")


def one_line(text: object) -> str:
    """`text` as a single line: every run of whitespace (newlines included) becomes one space."""
    return " ".join(str(text).split())


def visible(text: object) -> str:
    """`text` with control characters and bidi controls shown as escapes ('\\x1b', '\\u202e'); tab and newline kept."""
    return _HIDDEN.sub(_escape_char, str(text))


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: object) -> str:
    """`text` on one line with every hidden character made visible: how run text is shown anywhere."""
    return visible(one_line(text))


def md(text: object) -> str:
    """A user-supplied string, safe inside Markdown text and table cells, and never a link."""
    out = _SPECIAL.sub(r"\\\1", shown(text))
    for pattern, replacement in _AUTOLINK:
        out = pattern.sub(replacement, out)
    return out


def md_code(text: object) -> str:
    """A user-supplied string as an inline code span (backticks cannot occur inside it)."""
    return "`" + shown(text).replace("`", "'") + "`"


def inline_html(markdown: str) -> str:
    """The report's inline Markdown as HTML; anything else is escaped and shown as text."""
    kept: list[str] = []  # HTML of code spans and escaped characters, put back at the end

    def keep(fragment: str) -> str:
        kept.append(fragment)
        return _TOKEN.format(len(kept) - 1)

    text = _CODE.sub(lambda m: keep(f"<code>{html.escape(m.group(1), quote=True)}</code>"), visible(markdown))
    text = _ESCAPED.sub(lambda m: keep(html.escape(m.group(1), quote=True)), text)
    out = html.escape(text.replace(NO_LINK, ""), quote=True)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    out = _LINK.sub(_link, out)
    return _TOKENS.sub(lambda m: kept[int(m.group(1))], out)


def _link(match: re.Match[str]) -> str:
    """An `<a>` for the report's own link; a target that is not a path, anchor or http(s) stays text."""
    label, target = match.groups()
    if not _SAFE_TARGET.match(html.unescape(target)):
        return match.group()
    return f'<a href="{target}">{label}</a>'


def cell_html(text: object) -> str:
    """A table cell's plain text as HTML."""
    return html.escape(shown(text), quote=True)
