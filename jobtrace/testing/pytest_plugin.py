"""The jobtrace pytest plugin: a ``jobtrace_sink`` fixture.

Installed with jobtrace (entry point ``pytest11``), so any test can ask for it::

    def test_scoring_tracks_every_client(jobtrace_sink):
        score_posts(["acme", "globex"])
        assert [r["Status"] for r in jobtrace_sink.client_records()] == ["Completed"] * 2

The fixture starts from :func:`jobtrace.testing.reset` (no live or remembered
runs, error counts at zero), configures a strict
:class:`~jobtrace.sinks.MemorySink` for one test (sink errors raise instead
of being logged), and afterwards resets again and restores whatever
configuration was there before, even when the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .. import tracker
from ..process_state import state
from ..sinks.memory import MemorySink
from .reset import reset

__all__ = ["jobtrace_sink"]


@pytest.fixture
def jobtrace_sink() -> Iterator[MemorySink]:
    """A strict MemorySink, configured for this test only."""
    previous = state.config
    reset()
    sink = MemorySink()
    tracker.configure([sink], strict=True)
    try:
        yield sink
    finally:
        reset()
        tracker.restore(previous)
