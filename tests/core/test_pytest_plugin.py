"""The pytest plugin: ``jobtrace_sink`` is a strict MemorySink for one test, installed by entry point."""

from __future__ import annotations

import pytest

import jobtrace
from jobtrace.sinks import MemorySink

from .helpers import only

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

USER_TESTS = """
import pytest
import jobtrace
from jobtrace.sinks import MemorySink


@jobtrace.tracked_job("post-scoring")
def score(clients):
    for client_id in clients:
        with jobtrace.client_run(client_id) as client:
            client.incr(posts_processed=1)


def test_first(jobtrace_sink):
    assert isinstance(jobtrace_sink, MemorySink)
    score(["acme", "globex"])
    assert [r["Status"] for r in jobtrace_sink.client_records()] == ["Completed"] * 2
    assert len(jobtrace_sink.job_records()) == 1


def test_second_starts_empty(jobtrace_sink):
    assert jobtrace_sink.job_records() == []
    score(["initech"])
    assert len(jobtrace_sink.job_records()) == 1


def test_sink_errors_raise(jobtrace_sink, monkeypatch):
    def broken(change):
        raise OSError("sink broke")

    monkeypatch.setattr(jobtrace_sink, "write", broken)
    with pytest.raises(jobtrace.SinkError):
        score(["acme"])


def test_a_failing_test_still_restores(jobtrace_sink):
    score(["acme"])
    assert False, "fails on purpose"
"""


def test_jobtrace_sink_fixture_is_installed_strict_and_fresh_per_test(
    pytester: pytest.Pytester, sink: MemorySink
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*fails on purpose*"])
    # Nothing the user's tests did reached this test's sink...
    assert sink.job_records() == []
    # ...and this test's configuration is back in place after them, even after a failing test.
    with jobtrace.tracked_job("post-scoring"):
        pass
    assert only(sink.job_records())["Status"] == "Completed"


def test_the_plugin_is_registered_by_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_user="def test_it(jobtrace_sink):\n    assert jobtrace_sink.job_records() == []\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    # Disabling the entry point by name removes the fixture: it really comes from the plugin.
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:jobtrace")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'jobtrace_sink' not found*"])
