"""The sink interface: where record changes go.

A sink has four verbs, called by jobtrace (never by the instrumented job):

``start(schema)``
    Once, when the sink is configured. Check the field mapping against the
    backend and raise ``ConfigurationError`` if it cannot work.
``write(change)``
    Accept one :class:`~jobtrace.changes.Change`. Called from any thread or
    event loop, often concurrently: it must be thread-safe and must return at
    once (no network I/O on the caller's thread; queue it instead).
``write_many(changes)`` (optional)
    Accept several changes at once, in order. The dispatcher hands a sink that
    overrides it each batch it took from its queue in one call (one lock, one
    wake-up of a writer thread); by default it calls ``write`` for each.
``flush(timeout)``
    Block until everything written so far is delivered, or ``timeout`` seconds
    pass. Return True when everything was delivered.
``close(timeout)``
    Flush, then release resources. Writes after close are errors.

And optional verbs:

``read(kind, run_id, client_id)``
    The record's current fields (Airtable names), or None if the sink cannot
    tell. Lets a resumed run continue its counters instead of restarting them.
``read_client_runs(run_id)``
    Every client record of a job run, or None if the sink cannot tell
    (``job.remaining()`` of a resumed run asks it).
``claim_run_id(run_id)``
    Called on the job's thread before a new job takes ``run_id``: False if the
    backend knows the ID is taken (by a job on another host), and the job
    takes the next free second instead. True by default.

A sink may raise from any verb; jobtrace catches it, logs it with the run ID,
counts it and goes on, unless ``configure(strict=True)``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..changes import Change
    from ..schema import Schema

__all__ = ["Sink"]


class Sink(abc.ABC):
    """Base class of every sink. Subclasses implement :meth:`write`; the rest is optional."""

    coalesces: bool = False
    """True for a sink that only needs each record's latest fields, not every transition (the
    MemorySink, the AirtableSink). When every configured sink says so, the dispatcher merges a
    batch's changes of one record into one Change (fields applied in order, later over earlier;
    the last change's event and time) before handing them over: less work per client run."""

    binds_structlog: bool = False
    """True for a sink whose output is structlog's (the LogSink): then ``configure()`` binds
    ``run_id``/``client_id`` in ``structlog.contextvars`` while a run is active, by default."""

    def start(self, schema: Schema) -> None:  # noqa: B027 - optional hook, no-op by default
        """Called once when configured; raise ``ConfigurationError`` if the schema cannot work."""

    @abc.abstractmethod
    def write(self, change: Change) -> None:
        """Accept one change. Thread-safe, non-blocking."""

    def write_many(self, changes: Sequence[Change]) -> None:
        """Accept several changes, in order (override for a cheaper batch; the default calls write)."""
        for change in changes:
            self.write(change)

    def flush(self, timeout: float = 10.0) -> bool:
        """Deliver everything written so far within ``timeout`` seconds; True if all was delivered."""
        return True

    def close(self, timeout: float = 10.0) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""

    def read(self, kind: str, run_id: str, client_id: str | None) -> Mapping[str, Any] | None:
        """The current fields of a record, or None when unknown or not supported."""
        return None

    def read_client_runs(self, run_id: str) -> list[Mapping[str, Any]] | None:
        """Every client record of job run ``run_id`` (resuming asks which clients are done); None: unsupported."""
        return None

    def claim_run_id(self, run_id: str) -> bool:
        """Claim a new job run ID; False if another job (elsewhere) has it. True by default."""
        return True

    def diagnostics(self) -> dict[str, Any]:
        """The sink's own counts for ``jobtrace.diagnostics()`` (nothing secret); empty by default."""
        return {}
