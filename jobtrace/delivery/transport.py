"""The transport interface: what a backend must do for the delivery engine, and nothing more.

A transport sends one batch of records of one table and says how it went; it
reads one record back. Coalescing, the write-ahead journal, batching, pacing
within a request budget, retries and their backoff, isolating a refused
record, and what is set aside live in the engine
(:mod:`jobtrace.delivery.engine`), once for every backend. A transport is the
one place that knows its backend's protocol and errors.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Delivered", "Outcome", "Refused", "RetryAfter", "Transport"]


@dataclass(frozen=True)
class Delivered:
    """Every record of the batch is stored (created or updated on its key fields)."""


@dataclass(frozen=True)
class RetryAfter:
    """Nothing of the batch is stored, and sending it again later may work.

    ``seconds`` is how long to wait before trying again; 0 means "use your
    backoff" (a 5xx, a timeout, a dropped connection). With ``pause_all`` the
    whole backend refuses the client meanwhile, not only this batch
    (Airtable's 429): the engine's limiter then refuses every request for
    ``seconds``, however long. Without it, the engine waits ``seconds`` but
    at most its ``backoff_max`` (e.g. a token someone has to fix).
    """

    seconds: float
    reason: str
    pause_all: bool = False


@dataclass(frozen=True)
class Refused:
    """The backend refuses the batch as it is: sending it again unchanged would fail again.

    ``field`` names the field it refuses when it can tell (an unknown field, a
    value the field cannot take); None means it refuses the records
    themselves. The engine isolates the refused record (splitting the batch)
    and sets aside the field, or the record, so the rest goes through.
    """

    field: str | None
    reason: str


Outcome = Delivered | RetryAfter | Refused
"""What :meth:`Transport.send` returns."""


class Transport(abc.ABC):
    """A backend for the delivery engine. Called from the engine's thread only, one call at a time."""

    max_batch: int = 10
    """The most records one :meth:`send` may carry."""

    @abc.abstractmethod
    def send(self, table: str, key_fields: Sequence[str], records: Sequence[Mapping[str, Any]]) -> Outcome:
        """Store ``records`` of ``table``, each created or updated on its ``key_fields`` (an upsert).

        Must be safe to repeat: the engine resends after a lost answer. A
        ``None`` value clears the field. Return the outcome; an exception is
        taken as :class:`Refused` without a field (the batch is split and the
        record it is raised on set aside, so it never holds up the others).
        """

    @abc.abstractmethod
    def read(self, table: str, key: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The stored fields of the record of ``table`` whose key fields equal ``key``, or None."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
