"""The statuses jobtrace sets, and which exception ends a run with which.

A leaf module (it imports nothing of jobtrace), so sinks and the schema check
can use the statuses without importing the records machinery.
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = ["FAILED_STATUSES", "TERMINAL_STATUSES", "Status", "status_for_exception"]


class Status:
    """The statuses jobtrace sets. A base may add its own (e.g. ``No Leads To Score``)."""

    RUNNING: Final = "Running"
    COMPLETED: Final = "Completed"
    COMPLETED_WITH_ERRORS: Final = "Completed with Errors"
    FAILED: Final = "Failed"
    CANCELLED: Final = "Cancelled"
    INTERRUPTED: Final = "Interrupted"


#: A client run that ended in one of these counts in ``Clients Failed``.
FAILED_STATUSES: Final = frozenset({Status.FAILED, Status.CANCELLED, Status.INTERRUPTED})

#: The statuses jobtrace ends a run with.
TERMINAL_STATUSES: Final = frozenset(
    {Status.COMPLETED, Status.COMPLETED_WITH_ERRORS, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED}
)


def status_for_exception(exc: BaseException | None, stopping: bool = False) -> str | None:
    """The terminal status an exception implies, or None for a normal exit.

    ``stopping``: the process is stopping (SIGTERM, Ctrl-C, interpreter exit;
    :func:`jobtrace.lifecycle.stopping`). ``asyncio.run`` cancels its tasks on
    Ctrl-C and at shutdown, so a cancellation then is the process stopping
    (``Interrupted``), not a task cancelled while the process goes on (``Cancelled``).
    """
    if exc is None:
        return None
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return Status.INTERRUPTED if stopping else Status.CANCELLED
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return Status.INTERRUPTED
    return Status.FAILED
