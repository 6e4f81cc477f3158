"""What every test shares: nothing a test runs writes outside its temporary directories."""

from __future__ import annotations

import os
import tempfile

# `validate --estimate` keeps its measurements under XDG_CACHE_HOME: a temporary one for the whole session,
# inherited by the commands the tests run in subprocesses
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="decaylab-tests-cache-")
