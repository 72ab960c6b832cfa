"""Where record changes go: the :class:`Sink` interface and its implementations.

``MemorySink`` and ``LogSink`` are always available; ``AirtableSink`` needs the
``airtable`` extra (``pip install 'jobtrace[airtable]'``) and is imported only
when first used, so ``import jobtrace`` never loads pyairtable or requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Sink
from .memory import MemorySink

if TYPE_CHECKING:
    from .airtable import AirtableSink
    from .log import LogSink

__all__ = ["AirtableSink", "LogSink", "MemorySink", "Sink"]


def __getattr__(name: str) -> Any:
    # Lazy: LogSink imports structlog, AirtableSink imports pyairtable.
    if name == "LogSink":
        from .log import LogSink

        return LogSink
    if name == "AirtableSink":
        from .airtable import AirtableSink

        return AirtableSink
    raise AttributeError(f"module 'jobtrace.sinks' has no attribute {name!r}")
