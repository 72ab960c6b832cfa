"""A local Airtable: a real HTTP server speaking Airtable's Web API v0.

The unmodified ``pyairtable`` client talks to it over 127.0.0.1 and gets
Airtable's behaviour, including its errors, formulas, pagination, rate limit,
plus injectable faults::

    from jobtrace.testing.emulator import AirtableEmulator, Fault

    with AirtableEmulator(bases={"appXXXXXXXXXXXXXX": "schema.json"}) as emu:
        api = pyairtable.Api(emu.api_key, endpoint_url=emu.url)
        emu.inject(Fault.LOST_RESPONSE, method="POST")

See the README, section "Testing offline: the local Airtable emulator".

The names below load on first use (PEP 562), so ``jobtrace.testing.emulator.cli``
(which the ``jobtrace`` command imports to register ``jobtrace emulator``)
loads none of the emulator's modules until the emulator actually runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .emulator import AirtableEmulator
    from .errors import ApiError
    from .faults import Fault
    from .server import RequestLogEntry

__all__ = ["AirtableEmulator", "ApiError", "Fault", "RequestLogEntry"]

_HOMES = {"AirtableEmulator": ".emulator", "ApiError": ".errors", "Fault": ".faults", "RequestLogEntry": ".server"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value
