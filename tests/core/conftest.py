"""Fixtures for the core SDK tests: a fresh strict MemorySink per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import jobtrace
from jobtrace.sinks import MemorySink

from .helpers import RecordingSink


@pytest.fixture(autouse=True)
def sink() -> Iterator[MemorySink]:
    """A strict MemorySink configured for one test; the previous configuration is restored after it."""
    sink = MemorySink()
    prev = jobtrace.configure([sink], strict=True)
    yield sink
    jobtrace.restore(prev)


@pytest.fixture
def recorder(sink: MemorySink) -> Iterator[RecordingSink]:
    """A RecordingSink configured next to the test's MemorySink (strict)."""
    recorder = RecordingSink()
    prev = jobtrace.configure([sink, recorder], strict=True)
    yield recorder
    jobtrace.restore(prev)
