"""Helpers shared by the core SDK tests."""

from __future__ import annotations

from typing import Any

from jobtrace.changes import Change
from jobtrace.sinks import Sink


class RecordingSink(Sink):
    """Keeps every change it receives, in order (to check what a job emitted, not just the result)."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def write(self, change: Change) -> None:
        # list.append is atomic: safe from many threads without a lock.
        self.changes.append(change)


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
