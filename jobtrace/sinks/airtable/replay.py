"""Deliver what earlier processes left in the journal: :func:`replay` (``jobtrace replay``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ...delivery.journal import Journal, JournalError
from .throttle import throttle_for

__all__ = ["JournalError", "ReplayResult", "replay"]


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did."""

    claimed: int
    """Records found in the journal left by processes that are gone."""
    delivered: int
    """Records written to Airtable (upserts; delivering one twice still leaves one record)."""
    remaining: int
    """Records still in the journal for this base afterwards (Airtable unreachable, timeout)."""
    undeliverable: int
    """Records or fields Airtable refused, kept in the journal (see ``retry_undeliverable``)."""
    requests: int
    """API requests made."""
    closed: int = 0
    """Runs a dead process left ``Running``, ended as ``Interrupted`` after its changes were delivered."""
    live_rows: int = 0
    """Rows of this base not taken: their owner is a live process (it delivers them itself)."""
    other_bases: int = 0
    """Rows of other bases in the journal, not taken (replay those with their base's ID)."""

    @property
    def ok(self) -> bool:
        """True when nothing this replay took on is left."""
        return self.remaining == 0

    def __str__(self) -> str:
        text = (
            f"claimed {self.claimed}, delivered {self.delivered}, remaining {self.remaining}, "
            f"undeliverable {self.undeliverable}, dead runs closed {self.closed} ({self.requests} requests)"
        )
        if self.live_rows:
            text += f"; not taken: {self.live_rows} row(s) owned by a live process"
        if self.other_bases:
            text += f"; not taken: {self.other_bases} row(s) of other bases"
        return text


def replay(
    api_key: str,
    base_id: str,
    journal_path: str | os.PathLike[str] | None = None,
    endpoint_url: str | None = None,
    timeout: float = 120.0,
    *,
    retry_undeliverable: bool = False,
    requests_per_second: float = 5.0,
    rate_limit_penalty: float = 30.0,
    backoff_initial: float = 0.5,
    backoff_max: float = 30.0,
) -> ReplayResult:
    """Deliver the journal's leftovers for ``base_id`` within ``timeout`` seconds.

    Takes only rows whose owner is gone (a closed sink, a dead process), never
    those of a job still running. Each record is upserted on its key fields, so
    replaying after a partial delivery, or twice, leaves one record each.
    ``retry_undeliverable=True`` first puts back what Airtable refused earlier
    (after the base was fixed). Whatever is not delivered in time stays in the
    journal. The API key is used for the requests only; it is never stored.
    Then the runs dead processes left ``Running`` are ended as ``Interrupted``
    (:mod:`.dead_runs`). Raises :class:`JournalError` when the journal cannot
    be opened, is not a file or is not a SQLite database.
    """
    from . import delivery_engine, make_api
    from .dead_runs import close_dead_runs

    deadline = time.monotonic() + timeout
    journal = Journal(journal_path, strict=True)
    try:
        if retry_undeliverable:
            journal.requeue_undeliverable(base_id)
        api = make_api(api_key, endpoint_url)
        budget = throttle_for(str(api.endpoint_url), base_id, requests_per_second)
        engine = delivery_engine(
            api,
            base_id,
            journal,
            budget,
            rate_limit_penalty=rate_limit_penalty,
            backoff=(backoff_initial, backoff_max),
        )
        closed = 0
        if engine.wait_ready(max(0.0, deadline - time.monotonic())):
            read_api = make_api(api_key, endpoint_url)
            done = close_dead_runs(read_api, base_id, engine, journal, budget, deadline)
            closed = done.closed
        live_rows, other_bases = journal.skipped(base_id, engine.owner)
        engine.close(max(0.0, deadline - time.monotonic()))
        stats = engine.stats
        _, undeliverable = journal.counts(base_id)
        return ReplayResult(
            claimed=stats.leftovers_claimed,
            delivered=max(0, stats.records_delivered - closed),  # the leftovers; the closings are `closed`
            remaining=engine.backlog,
            undeliverable=undeliverable,
            requests=stats.requests,
            closed=closed,
            live_rows=live_rows,
            other_bases=other_bases,
        )
    finally:
        journal.close()
