"""What sinks receive: one :class:`Change` per record transition.

A change names one record (by ``kind``, ``run_id`` and ``client_id``) and the
fields that changed, keyed by their Airtable names, with absolute values
(counters carry their new total, never an increment). Applying the changes of
a record in order, later values over earlier ones, gives the record; so a sink
may coalesce pending changes to one record into one write, and re-applying a
change is harmless. ``fields`` always includes the record's key fields (the
``Run ID``, and for a client record the ``Client ID``). ``time`` is when the
change happened on the job's side (``time.time()``), not when a sink got it:
sinks receive changes from the dispatcher's thread, a little later (see
:mod:`jobtrace.dispatch`); the ``Start Time`` and ``End Time`` fields are
formatted from it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

__all__ = ["END", "JOB", "CLIENT", "START", "UPDATE", "Change", "utc_iso"]

JOB: Final = "job"
CLIENT: Final = "client"

START: Final = "start"
"""A run began, or was resumed (then without a ``Start Time``)."""
UPDATE: Final = "update"
"""Fields changed while the run goes on."""
END: Final = "end"
"""The run reached a terminal status; ``fields`` has the ``Status`` and ``End Time``."""


class Change(NamedTuple):
    """One transition of one record."""

    kind: str
    """``"job"`` or ``"client"``."""
    event: str
    """``"start"``, ``"update"`` or ``"end"``."""
    table: str
    """The Airtable table the record lives in."""
    run_id: str
    """The job run ID (``YYMMDD-HHMMSS``), also for client records."""
    client_id: str | None
    """The client ID of a client record, else None."""
    fields: Mapping[str, Any]
    """Changed fields by Airtable name, plus the key fields; JSON-ready values."""
    time: float = 0.0
    """When the change happened (seconds since the epoch, as ``time.time()``)."""

    @property
    def key(self) -> tuple[str, str, str | None]:
        """Identifies the record: ``(kind, run_id, client_id)``."""
        return (self.kind, self.run_id, self.client_id)


_iso_cache: tuple[int, str] = (-1, "")
_MILLIS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))
_time = time.time


def utc_iso(ts: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds, as Airtable writes it: ``2025-10-05T21:02:47.123Z``.

    Formatting a time is a large part of a run's cost, so the seconds part is
    cached (a tuple swap, safe across threads).
    """
    global _iso_cache
    if ts is None:
        ts = _time()
    sec = int(ts)
    cached_sec, prefix = _iso_cache
    if sec != cached_sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _iso_cache = (sec, prefix)
    millis = int((ts - sec) * 1000)
    return prefix + _MILLIS[millis] if 0 <= millis < 1000 else f"{prefix}.{millis:03d}Z"
