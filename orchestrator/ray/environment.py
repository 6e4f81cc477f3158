"""The environment a Ray cluster decaylab starts reads when Ray is imported: set here, before that import
(this module does not import Ray).

A local cluster is this user's alone: token authentication with a token made for this run, in the
environment its processes inherit (never a file another user of a shared machine could read), and its
own temporary directory (mode 0700) instead of the machine-wide /tmp/ray that any user can pre-create.
A cluster joined by address keeps the user's own authentication settings.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import MutableMapping

_own_tmp: str | None = None  # the local cluster's own temporary directory, removed when it stops


def for_local_cluster(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set up `environ` for a local cluster; False when Ray was imported already (too late to take effect)."""
    global _own_tmp
    if "ray" in sys.modules:
        return False
    environ["RAY_AUTH_MODE"] = "token"
    if not environ.get("RAY_AUTH_TOKEN") and not environ.get("RAY_AUTH_TOKEN_PATH"):
        environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    if "RAY_TMPDIR" not in environ:
        _own_tmp = tempfile.mkdtemp(prefix="dl-")  # short: Ray's socket paths under it must stay < 108 bytes
        environ["RAY_TMPDIR"] = _own_tmp
    return True


def remove_own_tmp(environ: MutableMapping[str, str] = os.environ) -> None:
    """Remove the local cluster's temporary directory once its processes are gone."""
    global _own_tmp
    if _own_tmp is not None:
        shutil.rmtree(_own_tmp, ignore_errors=True)
        if environ.get("RAY_TMPDIR") == _own_tmp:
            del environ["RAY_TMPDIR"]
        _own_tmp = None
