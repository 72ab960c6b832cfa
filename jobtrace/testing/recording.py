"""RecordingSink: every change, in order, for tests that check what a job emitted."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..changes import Change
from ..dispatch import dispatcher
from ..sinks.base import Sink

__all__ = ["RecordingSink"]


class RecordingSink(Sink):
    """Keeps every :class:`~jobtrace.changes.Change` it receives, in the order it received them.

    Where a :class:`~jobtrace.sinks.MemorySink` shows the records as they end
    up, a RecordingSink shows how they got there: each record's start, updates
    and end, with their fields and times::

        recorder = RecordingSink()
        jobtrace.configure([recorder])
        run_my_job()
        assert [c.event for c in recorder.changes_of("client", "acme")] == ["start", "update", "end"]

    Reading :attr:`changes` (or :meth:`changes_of`) first waits for the
    dispatcher to hand over every change made before the read, so a test sees
    what its code recorded, whichever thread recorded it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: list[Change] = []

    def write(self, change: Change) -> None:
        with self._lock:
            self._changes.append(change)

    def write_many(self, changes: Sequence[Change]) -> None:
        with self._lock:
            self._changes.extend(changes)

    @property
    def changes(self) -> list[Change]:
        """Every change received so far, oldest first (the sink's own list: ``.clear()`` empties it)."""
        dispatcher.barrier()
        return self._changes

    def changes_of(self, kind: str, client_id: str | None = None, run_id: str | None = None) -> list[Change]:
        """The changes of ``kind`` (``"job"``/``"client"``) records, optionally of one client and run."""
        return [
            c
            for c in self.changes
            if c.kind == kind
            and (client_id is None or c.client_id == client_id)
            and (run_id is None or c.run_id == run_id)
        ]

    def clear(self) -> None:
        """Forget every change received so far."""
        dispatcher.barrier()
        with self._lock:
            self._changes.clear()

    def __repr__(self) -> str:
        return f"<RecordingSink {len(self._changes)} changes>"
