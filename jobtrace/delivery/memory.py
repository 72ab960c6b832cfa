"""MemoryTransport: a backend in a dict, with injectable faults, to test delivery without HTTP."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .transport import Delivered, Outcome, Refused, RetryAfter, Transport

__all__ = ["MemoryTransport", "Request"]


@dataclass(frozen=True)
class Request:
    """One :meth:`MemoryTransport.send` call, as the transport saw it."""

    table: str
    records: tuple[dict[str, Any], ...]
    outcome: Outcome


@dataclass
class _Fault:
    outcome: Outcome
    remaining: int | None
    table: str | None


@dataclass
class MemoryTransport(Transport):
    """Stores records per table in memory, like ``httpx.MockTransport`` stands in for a server.

    ::

        transport = MemoryTransport()
        transport.fail(RetryAfter(0.0, "HTTP 503"), count=2)   # the next two sends fail
        transport.refuse_field("Notes")                          # like an unknown field
        engine = DeliveryEngine(transport)

    ``records(table)`` shows what is stored; ``requests`` every send with its
    outcome. Thread-safe.
    """

    max_batch: int = 10
    requests: list[Request] = field(default_factory=list)
    _tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict, repr=False)
    _faults: deque[_Fault] = field(default_factory=deque, repr=False)
    _refused: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- faults ------------------------------------------------------------------------

    def fail(self, outcome: RetryAfter | Refused, count: int | None = 1, table: str | None = None) -> None:
        """Answer the next ``count`` sends (None: every send, until :meth:`clear_faults`) with ``outcome``."""
        with self._lock:
            self._faults.append(_Fault(outcome, count, table))

    def refuse_field(self, name: str) -> None:
        """Refuse any batch with a record that sets ``name`` (as a backend refuses an unknown field)."""
        with self._lock:
            self._refused.add(name)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._refused.clear()

    # -- the transport -------------------------------------------------------------------

    def send(self, table: str, key_fields: Sequence[str], records: Sequence[Mapping[str, Any]]) -> Outcome:
        if len(records) > self.max_batch:
            raise ValueError(f"{len(records)} records in one send; the limit is {self.max_batch}")
        with self._lock:
            outcome = self._fault_for(table, records)
            if isinstance(outcome, Delivered):
                stored = self._tables.setdefault(table, {})
                for record in records:
                    key = tuple(record.get(k) for k in key_fields)
                    target = stored.setdefault(key, {})
                    for name, value in record.items():
                        if value is None:
                            target.pop(name, None)
                        else:
                            target[name] = value
            self.requests.append(Request(table, tuple(dict(r) for r in records), outcome))
            return outcome

    def read(self, table: str, key: Mapping[str, Any]) -> Mapping[str, Any] | None:
        with self._lock:
            for record in self._tables.get(table, {}).values():
                if all(record.get(k) == v for k, v in key.items()):
                    return dict(record)
        return None

    def records(self, table: str) -> list[dict[str, Any]]:
        """Every stored record of ``table``, in the order they were created."""
        with self._lock:
            return [dict(r) for r in self._tables.get(table, {}).values()]

    def _fault_for(self, table: str, records: Sequence[Mapping[str, Any]]) -> Outcome:
        for name in self._refused:
            if any(name in r for r in records):
                return Refused(name, f"unknown field name: {name!r}")
        for fault in self._faults:
            if fault.table is None or fault.table == table:
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault.outcome
        return Delivered()
