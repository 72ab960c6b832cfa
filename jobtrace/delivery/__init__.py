"""Delivery, split the way OpenTelemetry splits its batch processor from its exporters.

- :mod:`.engine`: :class:`DeliveryEngine`, backend-neutral: coalesce, journal
  (write-ahead), batch, pace within a limiter, retry with backoff, isolate and
  set aside what a backend refuses, hand a dead process's leftovers on;
- :mod:`.journal`: the engine's SQLite write-ahead journal, with its owners
  (:mod:`.owners`: OS locks the kernel drops when a process dies);
- :mod:`.limiter`: the request-budget interface the engine paces by, and
  :class:`Throttle`, one process's sliding window (the AirtableSink's shared
  :class:`~jobtrace.sinks.airtable.Budget` implements the same interface);
- :mod:`.transport`: the interface a backend implements (:class:`Transport`:
  send a batch of records of one table -> :class:`Delivered` /
  :class:`RetryAfter` / :class:`Refused`; read a record);
- :mod:`.memory`: :class:`MemoryTransport`, an in-memory backend with faults,
  the test double (like ``httpx.MockTransport``);
- :mod:`.airtable`: :class:`AirtableTransport`, the one place that knows
  Airtable's HTTP and errors (needs the ``airtable`` extra; imported lazily);
- :mod:`.sink`: :class:`EngineSink`, the jobtrace sink on top of any transport.

The AirtableSink (:mod:`jobtrace.sinks.airtable`) is an engine over an
:class:`AirtableTransport` plus Airtable's lifecycle work; see the README,
"Delivery engine and transports".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engine import DeliveryEngine, EngineClosed, EngineStats, SetAside
from .limiter import RequestLimiter, Slot, Throttle
from .memory import MemoryTransport, Request
from .sink import EngineSink
from .transport import Delivered, Outcome, Refused, RetryAfter, Transport

if TYPE_CHECKING:
    from .airtable import AirtableTransport

__all__ = [
    "AirtableTransport",
    "Delivered",
    "DeliveryEngine",
    "EngineClosed",
    "EngineSink",
    "EngineStats",
    "MemoryTransport",
    "Outcome",
    "Refused",
    "Request",
    "RequestLimiter",
    "RetryAfter",
    "SetAside",
    "Slot",
    "Throttle",
    "Transport",
]


def __getattr__(name: str) -> Any:
    if name == "AirtableTransport":
        from .airtable import AirtableTransport

        return AirtableTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
