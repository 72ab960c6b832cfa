"""Where jobtrace keeps its local state on a host: the journal, run-ID claims, the request budget, passed schema checks.

``$JOBTRACE_STATE_DIR``; else the directory of ``$JOBTRACE_JOURNAL``; else
``$XDG_STATE_HOME/jobtrace`` (``~/.local/state/jobtrace``). Every jobtrace
process of a user on a host finds the same directory, which is what lets them
coordinate without a server.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["state_dir"]


def state_dir() -> Path:
    """The local state directory (not created here)."""
    explicit = os.environ.get("JOBTRACE_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    journal = os.environ.get("JOBTRACE_JOURNAL")
    if journal:
        return Path(journal).expanduser().parent
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "jobtrace"
