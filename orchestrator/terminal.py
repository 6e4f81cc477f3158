"""Text from files shown on a terminal, or written to `sweep.log`, which a terminal shows later.

Trial ids, arm and setting names, error messages, a manifest's fields and a lock's holder are read from
files anyone may have written. An escape sequence in them would act on the terminal that shows them:
clear the screen (`ESC [2J`), set its title (OSC 0), write the clipboard (OSC 52) or hide text (`\\r`).
`visible` shows every C0 and C1 control character but the newline, and the bidi controls that would
reorder the text around them, as an escape (`\\x1b`, `\\u202e`). The report has its own (`analysis.text`).
"""

from __future__ import annotations

import logging
import re

# C0 controls but the newline, DEL, C1 controls, and the bidi embeddings, overrides, isolates and marks
_HIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object) -> str:
    """`text` with every control character (the newline kept) shown as an escape."""
    return _HIDDEN.sub(_escape, str(text))


class VisibleLog(logging.Filter):
    """Makes a log record's message visible (`visible`) before a handler prints it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = visible(record.getMessage()), None
        return True
