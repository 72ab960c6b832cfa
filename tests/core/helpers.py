"""Helpers shared by the core SDK tests."""

from __future__ import annotations

from typing import Any

import jobtrace.testing
from jobtrace.changes import Change
from jobtrace.sinks import Sink

# The public test double (every change, in order; reads wait for the dispatcher).
RecordingSink = jobtrace.testing.RecordingSink


class FailingSink(Sink):
    """A sink whose every write raises, like a backend that is down."""

    def __init__(self) -> None:
        self.attempts = 0

    def write(self, change: Change) -> None:
        self.attempts += 1
        raise ConnectionError("backend unreachable")


def only(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The one record of a list, failing clearly if there is not exactly one."""
    assert len(records) == 1, f"expected exactly one record, got {len(records)}: {records}"
    return records[0]
