"""Suite-wide pytest configuration."""

import atexit
import os
import shutil
import tempfile

import pytest

from jobtrace.state import state_dir

# pytester runs pytest inside a test: it checks the jobtrace pytest plugin as a user's suite sees it.
pytest_plugins = ["pytester"]

# Run-ID claims and the request budget live in the state directory: the suite keeps its
# own, not the user's (a child process started by a test inherits it).
if "JOBTRACE_STATE_DIR" not in os.environ:
    _state = tempfile.mkdtemp(prefix="jobtrace-tests-state-")
    os.environ["JOBTRACE_STATE_DIR"] = _state
    atexit.register(shutil.rmtree, _state, True)


@pytest.fixture(autouse=True)
def _host_has_checked_no_base() -> None:
    """Each test starts on a host that has checked no base yet (a remembered schema check of an emulator
    that a later test's emulator reuses the port of would otherwise stand in for that test's own check)."""
    shutil.rmtree(state_dir() / "checked", ignore_errors=True)
