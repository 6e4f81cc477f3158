"""What every test shares: nothing a test runs writes outside its temporary directories."""

from __future__ import annotations

import os
import tempfile

# `validate --estimate` keeps its measurements under XDG_CACHE_HOME: a temporary one for the whole session,
# inherited by the commands the tests run in subprocesses
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="decaylab-tests-cache-")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`-n 2 --dist loadgroup`): the tests that start a Ray cluster run one after another
    on one worker (two clusters at once would contend for the machine's cores and for their timing
    assertions); the other tests go by file, so that a module's expensive fixture is built once."""
    import pytest

    for item in items:
        group = "ray" if item.get_closest_marker("ray") else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
