"""Testing helpers for code that tracks jobs in Airtable.

``AirtableEmulator`` (a local Airtable over HTTP) is imported lazily, on first
attribute access, so importing a sibling module (such as the pytest plugin)
does not start importing the emulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .emulator import AirtableEmulator, Fault, RequestLogEntry

__all__ = ["AirtableEmulator", "Fault", "RequestLogEntry"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
