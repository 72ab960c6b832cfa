"""Delivery, split the way OpenTelemetry splits its batch processor from its exporters.

- :mod:`.engine`: :class:`DeliveryEngine`, backend-neutral: coalesce, batch,
  throttle, retry with backoff, isolate and set aside what a backend refuses;
- :mod:`.transport`: the interface a backend implements (:class:`Transport`:
  send a batch of records of one table -> :class:`Delivered` /
  :class:`RetryAfter` / :class:`Refused`; read a record);
- :mod:`.memory`: :class:`MemoryTransport`, an in-memory backend with faults,
  the test double (like ``httpx.MockTransport``);
- :mod:`.airtable`: :class:`AirtableTransport`, the one place that knows
  Airtable's HTTP and errors (needs the ``airtable`` extra; imported lazily);
- :mod:`.sink`: :class:`EngineSink`, the jobtrace sink on top.

The AirtableSink does not use this yet (its writer, ``jobtrace.sinks.airtable.writer``,
still does all of it itself); see the README, "Delivery engine and transports".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engine import DeliveryEngine, EngineStats, SetAside
from .memory import MemoryTransport, Request
from .sink import EngineSink
from .transport import Delivered, Outcome, Refused, RetryAfter, Transport

if TYPE_CHECKING:
    from .airtable import AirtableTransport

__all__ = [
    "AirtableTransport",
    "Delivered",
    "DeliveryEngine",
    "EngineSink",
    "EngineStats",
    "MemoryTransport",
    "Outcome",
    "Refused",
    "Request",
    "RetryAfter",
    "SetAside",
    "Transport",
]


def __getattr__(name: str) -> Any:
    if name == "AirtableTransport":
        from .airtable import AirtableTransport

        return AirtableTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
