"""The run context: which job run and client run the current code belongs to.

Two ``contextvars`` carry it, so it follows the code into nested calls,
``await``, ``asyncio`` tasks (each task gets a copy) and ``asyncio.to_thread``.
Scopes are pushed by :mod:`jobtrace.instrument` and never stored on a shared
object: two overlapping calls of one decorated function each see their own run.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import ClientRun, JobRun

__all__ = [
    "ClientScope",
    "JobScope",
    "client_scope",
    "current_client_id",
    "current_run_id",
    "job_scope",
]


class JobScope:
    """One entry into a job run. ``owner`` is False when the entry joined a run already active."""

    __slots__ = ("client_token", "owner", "run", "structlog_tokens", "token")

    def __init__(self, run: JobRun, owner: bool) -> None:
        self.run = run
        self.owner = owner
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
