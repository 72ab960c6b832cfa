"""A local Airtable: a real HTTP server speaking Airtable's Web API v0.

The unmodified ``pyairtable`` client talks to it over 127.0.0.1 and gets
Airtable's behaviour, including its errors, formulas, pagination, rate limit,
plus injectable faults::

    from jobtrace.testing.emulator import AirtableEmulator, Fault

    with AirtableEmulator(bases={"appXXXXXXXXXXXXXX": "schema.json"}) as emu:
        api = pyairtable.Api(emu.api_key, endpoint_url=emu.url)
        emu.inject(Fault.LOST_RESPONSE, method="POST")

See the README, section "Testing offline: the local Airtable emulator".
The names below are imported on first use, so ``jobtrace.testing.emulator.cli``
(which the ``jobtrace`` command registers) loads none of the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .emulator import AirtableEmulator
    from .errors import ApiError
    from .faults import Fault
    from .server import RequestLogEntry

__all__ = ["AirtableEmulator", "ApiError", "Fault", "RequestLogEntry"]

_HOME = {"AirtableEmulator": "emulator", "ApiError": "errors", "Fault": "faults", "RequestLogEntry": "server"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
