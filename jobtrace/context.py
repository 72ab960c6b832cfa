"""The run context: which job run and client run the current code belongs to.

Two ``contextvars`` carry it, so it follows the code into nested calls,
``await``, ``asyncio`` tasks (each task gets a copy) and ``asyncio.to_thread``.
Scopes are pushed by :mod:`jobtrace.instrument` and never stored on a shared
object: two overlapping calls of one decorated function each see their own run.

A process started by another one inherits the parent's run through the
environment (``JOBTRACE_RUN_ID``, ``JOBTRACE_CLIENT_ID``, see
:func:`jobtrace.child_env`): :func:`inherited_run` reads it once, on first use.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import InvalidClientIdError, InvalidRunIdError
from .process_state import state
from .run_ids import validate_client_id, validate_job_run_id

if TYPE_CHECKING:
    from .records import ClientRun, JobRun

__all__ = [
    "CLIENT_ID_ENV",
    "RUN_ID_ENV",
    "ClientScope",
    "JobScope",
    "ParentRun",
    "client_scope",
    "current_client_id",
    "current_run_id",
    "inherited_run",
    "job_scope",
    "read_parent_env",
]

RUN_ID_ENV = "JOBTRACE_RUN_ID"
CLIENT_ID_ENV = "JOBTRACE_CLIENT_ID"

logger = logging.getLogger("jobtrace")


class JobScope:
    """One entry into a job run. ``owner`` is False when the entry joined a run already active."""

    __slots__ = ("client_token", "handed_client", "owner", "run", "structlog_tokens", "token")

    def __init__(self, run: JobRun, owner: bool, handed_client: str | None = None) -> None:
        self.run = run
        self.owner = owner
        self.handed_client = handed_client
        """The client run another process handed over with the run (continued, never completed here)."""
        self.token: Token[JobScope | None] | None = None
        self.client_token: Token[ClientScope | None] | None = None
        self.structlog_tokens: Mapping[str, Any] | None = None


class ClientScope:
    """One entry into a client run. ``owner`` is False when it joined an active client run."""

    __slots__ = ("owner", "run", "structlog_tokens", "token")

    def __init__(self, run: ClientRun, owner: bool) -> None:
        self.run = run
        self.owner = owner
        self.token: Token[ClientScope | None] | None = None
        self.structlog_tokens: Mapping[str, Any] | None = None


job_scope: ContextVar[JobScope | None] = ContextVar("jobtrace_job", default=None)
client_scope: ContextVar[ClientScope | None] = ContextVar("jobtrace_client", default=None)


def current_run_id() -> str | None:
    """The run ID of the current run (job or client), or None outside any run."""
    client = client_scope.get()
    if client is not None:
        return client.run.run_id
    job = job_scope.get()
    return job.run.run_id if job is not None else None


def current_client_id() -> str | None:
    """The client ID of the current client run, or None outside one."""
    client = client_scope.get()
    return client.run.client_id if client is not None else None


class ParentRun(NamedTuple):
    """A run handed over by another process: its job run ID and, if any, the client run it was in."""

    run_id: str
    client_id: str | None = None


# Read once (kept in jobtrace.process_state): the environment does not change under a running
# process in any way jobtrace should follow, and tracked_job must not pay for a lookup per call.


def inherited_run() -> ParentRun | None:
    """The run this process inherited through ``JOBTRACE_RUN_ID``, or None (read once, then cached)."""
    if not state.parent_loaded:
        read_parent_env()
    return state.parent


def read_parent_env(environ: Mapping[str, str] | None = None) -> ParentRun | None:
    """(Re)read ``JOBTRACE_RUN_ID``/``JOBTRACE_CLIENT_ID`` from ``environ`` (default ``os.environ``).

    A malformed value is ignored with a warning (the process then runs as a
    job of its own): a child must not crash because of what its parent set.
    """
    env = os.environ if environ is None else environ
    parent: ParentRun | None = None
    run_id = env.get(RUN_ID_ENV)
    if run_id:
        try:
            parent = ParentRun(validate_job_run_id(run_id.strip()))
        except InvalidRunIdError as exc:
            _warn(f"jobtrace: ignoring {RUN_ID_ENV}: {exc}")
    client_id = env.get(CLIENT_ID_ENV)
    if parent is not None and client_id:
        try:
            parent = ParentRun(parent.run_id, validate_client_id(client_id))
        except InvalidClientIdError as exc:
            _warn(f"jobtrace: ignoring {CLIENT_ID_ENV}: {exc}")
    state.parent, state.parent_loaded = parent, True
    return parent


def _warn(message: str) -> None:
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
