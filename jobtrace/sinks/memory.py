"""MemorySink: records kept in memory, for tests and for looking at what a job did."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..changes import CLIENT, JOB, Change
from ..dispatch import dispatcher
from .base import Sink

__all__ = ["MemorySink"]

_barrier = dispatcher.barrier


class MemorySink(Sink):
    """Keeps one dict per record, keyed by the Airtable field names it would be written with.

    Thread-safe; reads return snapshots (copies), so a test can inspect records
    while a job is still writing. Applying changes merges their fields, so a
    resumed or re-entered run updates its one record. Every read first waits
    for the dispatcher to hand over what was recorded before it (a read
    barrier), so a read sees every change made before it, on any thread.
    """

    coalesces = True  # records, not transitions: write_count counts the (possibly merged) changes received

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        self._writes = 0

    def write(self, change: Change) -> None:
        kind, _, _, run_id, client_id, fields, _ = change
        key = (kind, run_id, client_id)
        with self._lock:
            self._writes += 1
            record = self._records.get(key)
            if record is None:
                record = self._records[key] = {}
            if None not in fields.values():
                record.update(fields)
                return
            for name, value in fields.items():
                if value is None:
                    record.pop(name, None)  # None clears, as in Airtable
                else:
                    record[name] = value

    def read_client_runs(self, run_id: str) -> list[Mapping[str, Any]] | None:
        """The client records of ``run_id`` this sink holds."""
        _barrier()
        with self._lock:
            return [dict(r) for (kind, rid, _), r in self._records.items() if kind == CLIENT and rid == run_id]

    def write_many(self, changes: Sequence[Change]) -> None:
        """Apply several changes in order, under one lock."""
        records = self._records
        with self._lock:
            self._writes += len(changes)
            for kind, _, _, run_id, client_id, fields, _ in changes:
                key = (kind, run_id, client_id)
                record = records.get(key)
                if record is None:
                    record = records[key] = {}
                if None not in fields.values():
                    record.update(fields)
                    continue
                for name, value in fields.items():
                    if value is None:
                        record.pop(name, None)
                    else:
                        record[name] = value

    def job_records(self) -> list[dict[str, Any]]:
        """Every job record, in the order they were created."""
        return self._snapshot(JOB)

    def client_records(self) -> list[dict[str, Any]]:
        """Every client run record, in the order they were created."""
        return self._snapshot(CLIENT)

    def job_record(self, run_id: str) -> dict[str, Any] | None:
        """The job record of ``run_id``, or None."""
        _barrier()
        with self._lock:
            record = self._records.get((JOB, run_id, None))
            return dict(record) if record is not None else None

    def client_record(self, run_id: str, client_id: str) -> dict[str, Any] | None:
        """The client record of ``client_id`` in run ``run_id``, or None."""
        _barrier()
        with self._lock:
            record = self._records.get((CLIENT, run_id, client_id))
            return dict(record) if record is not None else None

    @property
    def write_count(self) -> int:
        """How many changes this sink has received."""
        _barrier()
        return self._writes

    def read(self, kind: str, run_id: str, client_id: str | None) -> Mapping[str, Any] | None:
        _barrier()
        with self._lock:
            record = self._records.get((kind, run_id, client_id))
            return dict(record) if record is not None else None

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()
            self._writes = 0

    def _snapshot(self, kind: str) -> list[dict[str, Any]]:
        _barrier()
        with self._lock:
            return [dict(r) for (k, _, _), r in self._records.items() if k == kind]

    def __repr__(self) -> str:
        return f"<MemorySink {len(self._records)} records>"
