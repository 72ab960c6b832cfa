"""Item 1: numbers no request can carry are refused at the call; a record that cannot be sent never blocks the rest."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jobtrace
from jobtrace import tracking
from jobtrace.delivery.journal import Journal, JournalRow, record_key
from jobtrace.sinks import MemorySink
from jobtrace.sinks.airtable import replay
from jobtrace.testing import AirtableEmulator

from .conftest import BASE_ID, CLIENTS, JOBS, PENALTY, SinkFactory, fields_by_client

NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf, float("-nan")])


@settings(max_examples=25, deadline=None)
@given(bad=NON_FINITE)
def test_incr_update_and_the_explicit_api_refuse_nan_and_infinity_at_the_call(bad: float) -> None:
    sink = MemorySink()
    previous = jobtrace.configure([sink], strict=True)
    try:
        with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme") as client:
            client.incr(posts_processed=1)
            with pytest.raises(jobtrace.InvalidValueError, match="Airtable can store"):
                client.incr(posts_processed=bad)
            with pytest.raises(jobtrace.InvalidValueError, match="Airtable can store"):
                client.update(posts_processed=bad)
            with pytest.raises(jobtrace.InvalidValueError, match="Airtable can store"):
                jobtrace.incr(token_usage=bad)
            with pytest.raises(jobtrace.InvalidValueError, match="Airtable can store"):
                job.update(posts_processed=bad)
            with pytest.raises(jobtrace.InvalidValueError, match="Airtable can store"):
                tracking.update_client_run_record(job.run_id, "other", {"postsProcessed": bad})
            with pytest.raises(jobtrace.InvalidValueError, match="Airtable can store"):
                tracking.complete_job_tracking_record(job.run_id, "completed", {"Token Usage": bad})
            assert client.fields()["Posts Processed"] == 1
        (record,) = sink.client_records()
        assert record["Posts Processed"] == 1
        assert [r.get("Client ID") for r in sink.client_records()] == ["acme"]  # "other" was never created
    finally:
        jobtrace.restore(previous)


def _leftover(journal: Path, table: str, key_fields: tuple[str, ...], fields: dict[str, Any]) -> None:
    """A row left in the journal by a process that is gone (its owner never registered)."""
    store = Journal(journal)
    try:
        row = JournalRow(table, record_key(key_fields, fields), key_fields, fields)
        store.save(BASE_ID, "a-process-that-died", [(row, 1)])
    finally:
        store.close()


def test_a_journal_row_no_request_can_carry_is_set_aside_and_the_job_goes_on(
    emulator: AirtableEmulator, make_sink: SinkFactory, journal_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What an older version let through: NaN in the journal. The writer must not retry it forever.
    _leftover(journal_path, JOBS, ("Run ID",), {"Run ID": "250101-000000", "Posts Processed": math.nan})
    _leftover(journal_path, JOBS, ("Run ID",), {"Run ID": "250101-000001", "Posts Processed": 7})
    sink = make_sink()
    previous = jobtrace.configure([sink], strict=True)
    caplog.set_level(logging.ERROR, logger="jobtrace")
    try:
        with jobtrace.tracked_job("post-scoring") as job:
            for i in range(3):
                with jobtrace.client_run(f"client-{i}") as client:
                    client.incr(posts_processed=2)
        assert jobtrace.flush(20), sink.diagnostics()
    finally:
        jobtrace.restore(previous)
    jobs = {r["fields"]["Run ID"]: r["fields"] for r in emulator.records(BASE_ID, JOBS)}
    assert jobs[job.run_id]["Posts Processed"] == 6
    assert jobs["250101-000001"]["Posts Processed"] == 7
    # The NaN field was set aside; the rest of its record (its key) went through.
    assert "Posts Processed" not in jobs["250101-000000"]
    assert len(fields_by_client(emulator)) == 3
    diagnostics = sink.diagnostics()
    assert diagnostics["undeliverable"] == 1
    assert diagnostics["backlog"] == 0
    assert "250101-000000" in caplog.text
    ((kept, error),) = sink._journal.undeliverable(BASE_ID)  # type: ignore[union-attr]
    assert kept.fields["Run ID"] == "250101-000000" and math.isnan(kept.fields["Posts Processed"])
    assert "JSON" in error


def test_replay_sets_unsendable_and_unreadable_rows_aside_and_delivers_the_rest(
    emulator: AirtableEmulator, journal_path: Path
) -> None:
    key = ("Run ID", "Client ID")
    for i in range(4):
        client = {"Run ID": f"250101-000000-c{i}", "Client ID": f"c{i}", "Posts Processed": i}
        _leftover(journal_path, CLIENTS, key, client)
    _leftover(journal_path, CLIENTS, key, {"Run ID": "250101-000000-inf", "Client ID": "inf", "Token Usage": math.inf})
    store = Journal(journal_path)
    try:  # a row edited by hand into something that is not JSON at all
        store._conn.execute(
            "INSERT INTO pending VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (BASE_ID, CLIENTS, '["x"]', "a-process-that-died", "[not json", "{", 1, 0.0),
        )
    finally:
        store.close()
    result = replay(
        emulator.api_key,
        BASE_ID,
        journal_path=journal_path,
        endpoint_url=emulator.url,
        timeout=20,
        rate_limit_penalty=PENALTY,
        backoff_initial=0.05,
        backoff_max=0.5,
    )
    assert result.remaining == 0, result
    assert result.undeliverable == 2, result
    records = fields_by_client(emulator)
    assert {c: records[c].get("Posts Processed", 0) for c in ("c0", "c1", "c2", "c3")} == {
        "c0": 0,
        "c1": 1,
        "c2": 2,
        "c3": 3,
    }
    assert "Token Usage" not in records["inf"]
    # Run again: nothing left to wedge on.
    again = replay(emulator.api_key, BASE_ID, journal_path=journal_path, endpoint_url=emulator.url, timeout=5)
    assert (again.claimed, again.remaining) == (0, 0)


def test_a_row_the_client_library_refuses_before_sending_is_set_aside_not_retried_forever(
    emulator: AirtableEmulator, journal_path: Path
) -> None:
    # A row without its key field: pyairtable raises ValueError before any request, every time.
    _leftover(journal_path, JOBS, ("Run ID",), {"Progress": "orphaned"})
    for i in range(3):
        _leftover(journal_path, JOBS, ("Run ID",), {"Run ID": f"250101-00000{i}", "Progress": "ok"})
    result = replay(
        emulator.api_key,
        BASE_ID,
        journal_path=journal_path,
        endpoint_url=emulator.url,
        timeout=20,
        rate_limit_penalty=PENALTY,
        backoff_initial=0.05,
        backoff_max=0.5,
    )
    assert (result.delivered, result.remaining, result.undeliverable) == (3, 0, 1), result
    assert sorted(r["fields"]["Run ID"] for r in emulator.records(BASE_ID, JOBS)) == [
        "250101-000000",
        "250101-000001",
        "250101-000002",
    ]
