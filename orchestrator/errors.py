"""User-facing errors: what was wrong, where, and what to do. The CLI prints them, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad study file, bad command line). Exit status 2."""

    exit_status = 2

    def __init__(self, where: str, reason: str, hint: str | None = None):
        self.where, self.reason, self.hint = where, reason, hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.where}: {self.reason}" if self.where else self.reason
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class RunError(UserError):
    """A runtime failure outside the user's input (storage not writable, trials failed). Exit 1."""

    exit_status = 1
