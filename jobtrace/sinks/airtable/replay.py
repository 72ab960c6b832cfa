"""Deliver what earlier processes left in the journal: :func:`replay` (``jobtrace replay``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .journal import Journal
from .throttle import throttle_for
from .writer import Writer

__all__ = ["ReplayResult", "replay"]


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

    @property
    def ok(self) -> bool:
        """True when nothing this replay took on is left."""
        return self.remaining == 0

    def __str__(self) -> str:
        return (
            f"claimed {self.claimed}, delivered {self.delivered}, remaining {self.remaining}, "
            f"undeliverable {self.undeliverable} ({self.requests} requests)"
        )


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
    """
    from . import make_api

    journal = Journal(journal_path)
    try:
        if retry_undeliverable:
            journal.requeue_undeliverable(base_id)
        api = make_api(api_key, endpoint_url)
        writer = Writer(
            api,
            base_id,
            journal,
            throttle_for(str(api.endpoint_url), base_id, requests_per_second),
            rate_limit_penalty=rate_limit_penalty,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )
        writer.start()
        writer.close(timeout)
        stats = writer.stats
        _, undeliverable = journal.counts(base_id)
        return ReplayResult(
            claimed=stats.leftovers_claimed,
            delivered=stats.records_delivered,
            remaining=writer.backlog(),
            undeliverable=undeliverable,
            requests=stats.requests,
        )
    finally:
        journal.close()
