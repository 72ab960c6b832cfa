"""Suite-wide pytest configuration."""

import atexit
import os
import shutil
import tempfile

# pytester runs pytest inside a test: it checks the jobtrace pytest plugin as a user's suite sees it.
pytest_plugins = ["pytester"]

# Run-ID claims and the request budget live in the state directory: the suite keeps its
# own, not the user's (a child process started by a test inherits it).
if "JOBTRACE_STATE_DIR" not in os.environ:
    _state = tempfile.mkdtemp(prefix="jobtrace-tests-state-")
    os.environ["JOBTRACE_STATE_DIR"] = _state
    atexit.register(shutil.rmtree, _state, True)
