"""Testing helpers for code that tracks jobs in Airtable.

- :func:`reset`: put jobtrace back as a fresh process has it (the ``jobtrace_sink``
  fixture uses it);
- :class:`RecordingSink`: a sink that keeps every change, in order;
- :class:`AirtableEmulator`: a local Airtable over HTTP.

``AirtableEmulator`` (a local Airtable over HTTP) is imported lazily, on first
attribute access, so importing a sibling module (such as the pytest plugin)
does not start importing the emulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .recording import RecordingSink
from .reset import reset

if TYPE_CHECKING:
    from .emulator import AirtableEmulator, Fault, RequestLogEntry

__all__ = ["AirtableEmulator", "Fault", "RecordingSink", "RequestLogEntry", "reset"]

_EMULATOR_NAMES = ("AirtableEmulator", "Fault", "RequestLogEntry")


def __getattr__(name: str) -> Any:
    if name in _EMULATOR_NAMES:
        from . import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
