"""A schema check that passed is remembered on the host: the next start spends no request on it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import jobtrace
from jobtrace.schema import Schema, default_base_metadata
from jobtrace.sinks import AirtableSink
from jobtrace.testing import AirtableEmulator

from .conftest import BASE_ID, JOBS, SinkFactory, sink_options


def _metadata_requests(emulator: AirtableEmulator) -> int:
    return sum(1 for r in emulator.requests if "/v0/meta/" in r.path)


def test_a_start_after_a_passing_check_of_the_base_on_this_host_makes_no_metadata_request(
    emulator: AirtableEmulator, make_sink: SinkFactory
) -> None:
    make_sink().start(Schema.default())
    assert _metadata_requests(emulator) == 1
    second = make_sink()
    second.start(Schema.default())
    assert _metadata_requests(emulator) == 1
    assert second.problems == []


def test_a_start_with_another_token_is_checked_against_the_base(
    emulator: AirtableEmulator, make_sink: SinkFactory, journal_path: Path
) -> None:
    make_sink().start(Schema.default())
    sink = AirtableSink("patWRONGtoken", BASE_ID, **sink_options(emulator, journal_path))
    with pytest.raises(jobtrace.ConfigurationError, match="refused the API token"):
        sink.start(Schema.default())


def test_a_base_changed_after_its_check_is_checked_again_once_airtable_refused_a_write(
    emulator: AirtableEmulator, make_sink: SinkFactory
) -> None:
    make_sink().start(Schema.default())
    # The base loses a field the mapping needs; a start within the hour does not see it (no request)...
    changed = copy.deepcopy(default_base_metadata())
    jobs = next(t for t in changed["tables"] if t["name"] == JOBS)
    jobs["fields"] = [f for f in jobs["fields"] if f["name"] != "Job Type"]
    emulator.add_base(BASE_ID, changed)
    sink = make_sink()
    previous = jobtrace.configure([sink])
    try:
        with jobtrace.tracked_job("post-scoring"):
            pass
        jobtrace.flush(10)
    finally:
        jobtrace.restore(previous)
    assert sink.diagnostics()["undeliverable"] >= 1  # ...but Airtable refuses the write, which is logged
    sink.close(5)
    # ...and the next start checks the base again.
    with pytest.raises(jobtrace.ConfigurationError, match="Job Type"):
        make_sink().start(Schema.default())
