"""The delivery engine against the in-memory transport (faults included) and the Airtable transport."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobtrace
from jobtrace.delivery import (
    Delivered,
    DeliveryEngine,
    EngineSink,
    MemoryTransport,
    Refused,
    RetryAfter,
)

TABLE = "Client Run Results"
KEY = ("Run ID",)


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def engine(transport: MemoryTransport) -> Iterator[DeliveryEngine]:
    engine = DeliveryEngine(transport, requests_per_second=1_000, backoff_initial=0.01, backoff_max=0.05)
    yield engine
    engine.close(5)


def test_a_records_changes_are_coalesced_into_few_writes(transport: MemoryTransport) -> None:
    engine = DeliveryEngine(transport, requests_per_second=5)  # 0.2 s between sends: changes pile up
    try:
        for i in range(50):
            engine.submit(TABLE, KEY, {"Run ID": "r-1", "Posts Processed": i + 1})
        assert engine.flush(5)
    finally:
        engine.close(5)
    assert len(transport.requests) <= 2
    assert transport.records(TABLE) == [{"Run ID": "r-1", "Posts Processed": 50}]


def test_records_of_one_table_go_in_batches_of_at_most_max_batch(
    transport: MemoryTransport, engine: DeliveryEngine
) -> None:
    transport.fail(RetryAfter(0.05, "hold on"), count=1)  # the first send fails: the rest piles up meanwhile
    for i in range(25):
        engine.submit(TABLE, KEY, {"Run ID": f"r-{i}", "Status": "Completed"})
    assert engine.flush(5)
    delivered = [r for r in transport.requests if isinstance(r.outcome, Delivered)]
    assert sum(len(r.records) for r in delivered) == 25
    assert all(len(r.records) <= 10 for r in transport.requests)
    assert len(delivered) == 3
    assert len(transport.records(TABLE)) == 25


def test_retry_after_keeps_the_records_and_delivers_them_once(
    transport: MemoryTransport, engine: DeliveryEngine
) -> None:
    transport.fail(RetryAfter(0.0, "HTTP 503"), count=2)
    engine.submit(TABLE, KEY, {"Run ID": "r-1", "Status": "Running"})
    engine.submit(TABLE, KEY, {"Run ID": "r-1", "Status": "Completed"})
    assert engine.flush(5)
    assert engine.stats.retries == 2
    assert [type(r.outcome) for r in transport.requests] == [RetryAfter, RetryAfter, Delivered]
    assert transport.records(TABLE) == [{"Run ID": "r-1", "Status": "Completed"}]


def test_changes_made_while_a_batch_is_retried_are_merged_over_it(transport: MemoryTransport) -> None:
    engine = DeliveryEngine(transport, requests_per_second=1_000, backoff_initial=0.2)
    try:
        transport.fail(RetryAfter(0.0, "HTTP 503"), count=1)
        engine.submit(TABLE, KEY, {"Run ID": "r-1", "Status": "Running", "Posts Processed": 1})
        time.sleep(0.05)  # the first send failed; the record waits out the backoff
        engine.submit(TABLE, KEY, {"Run ID": "r-1", "Posts Processed": 2})
        assert engine.flush(5)
    finally:
        engine.close(5)
    assert transport.records(TABLE) == [{"Run ID": "r-1", "Status": "Running", "Posts Processed": 2}]


def test_a_refused_field_is_set_aside_and_the_rest_goes_through(
    transport: MemoryTransport, engine: DeliveryEngine
) -> None:
    transport.fail(RetryAfter(0.05, "hold on"), count=1)  # let a batch of several pile up
    transport.refuse_field("Bogus")
    for i in range(6):
        fields = {"Run ID": f"r-{i}", "Status": "Completed"}
        if i == 3:
            fields["Bogus"] = "x"
        engine.submit(TABLE, KEY, fields)
    assert engine.flush(5)
    records = {r["Run ID"]: r for r in transport.records(TABLE)}
    assert sorted(records) == [f"r-{i}" for i in range(6)]  # every record arrived ...
    assert records["r-3"] == {"Run ID": "r-3", "Status": "Completed"}  # ... the refused field did not
    (aside,) = engine.set_aside
    assert (aside.key, aside.field, aside.value) == (("r-3",), "Bogus", "x")
    assert engine.stats.batches_split >= 1


def test_a_record_refused_as_a_whole_is_set_aside(transport: MemoryTransport, engine: DeliveryEngine) -> None:
    transport.fail(Refused(None, "INVALID_RECORDS"), count=1)
    engine.submit(TABLE, KEY, {"Run ID": "r-1", "Status": "Completed"})
    assert engine.flush(5)
    assert transport.records(TABLE) == []
    assert engine.set_aside[0].field is None and engine.set_aside[0].value == {"Run ID": "r-1", "Status": "Completed"}


def test_flush_is_bounded_while_the_backend_is_down(transport: MemoryTransport, engine: DeliveryEngine) -> None:
    transport.fail(RetryAfter(0.0, "HTTP 503"), count=None)
    engine.submit(TABLE, KEY, {"Run ID": "r-1", "Status": "Completed"})
    started = time.monotonic()
    assert engine.flush(0.5) is False
    assert 0.45 <= time.monotonic() - started < 2.0
    assert engine.backlog == 1
    transport.clear_faults()
    assert engine.flush(5)
    assert transport.records(TABLE) == [{"Run ID": "r-1", "Status": "Completed"}]


def test_read_merges_what_is_not_delivered_yet(transport: MemoryTransport, engine: DeliveryEngine) -> None:
    engine.submit(TABLE, KEY, {"Run ID": "r-1", "Status": "Running", "Posts Processed": 1})
    assert engine.flush(5)
    transport.fail(RetryAfter(10.0, "hold on"), count=None)
    engine.submit(TABLE, KEY, {"Run ID": "r-1", "Posts Processed": 5})
    assert engine.read(TABLE, KEY, {"Run ID": "r-1"}) == {"Run ID": "r-1", "Status": "Running", "Posts Processed": 5}
    transport.clear_faults()


def test_the_engine_sink_tracks_a_job_and_resumes_it_from_the_transport(transport: MemoryTransport) -> None:
    sink = EngineSink(transport, requests_per_second=1_000)
    prev = jobtrace.configure([sink])
    try:
        with jobtrace.tracked_job("post-scoring") as job:
            for cid in ("acme", "globex"):
                with jobtrace.client_run(cid) as client:
                    client.incr(posts_processed=2)
        assert jobtrace.flush(5)
        # A later process resumes the run: its counters continue from what the transport holds.
        with jobtrace.tracked_job("post-scoring", run_id=job.run_id), jobtrace.client_run("acme") as client:
            client.incr(posts_processed=3)
        assert jobtrace.flush(5)
    finally:
        jobtrace.restore(prev)
        sink.close(5)
    (job_record,) = transport.records("Job Tracking")
    assert job_record["Status"] == "Completed" and job_record["Posts Processed"] == 7
    clients = {r["Client ID"]: r for r in transport.records("Client Run Results")}
    assert clients["acme"]["Posts Processed"] == 5 and clients["globex"]["Status"] == "Completed"


def test_the_airtable_transport_says_what_airtables_answers_mean() -> None:
    pytest.importorskip("pyairtable")
    from jobtrace.delivery.airtable import AirtableTransport
    from jobtrace.schema import default_base_metadata
    from jobtrace.sinks.airtable import make_api
    from jobtrace.testing import AirtableEmulator

    base = "appDeliveryTest01"
    with AirtableEmulator(bases={base: default_base_metadata()}, rate_limit_penalty=0.5) as emu:
        transport = AirtableTransport(make_api(emu.api_key, emu.url), base)
        key = ("Run ID",)
        record = {"Run ID": "251005-210247", "Status": "Running"}
        assert transport.send("Job Tracking", key, [record]) == Delivered()
        assert transport.read("Job Tracking", {"Run ID": "251005-210247"})["Status"] == "Running"  # type: ignore[index]
        refused = transport.send("Job Tracking", key, [{**record, "Bogus": 1}])
        assert isinstance(refused, Refused) and refused.field == "Bogus"
        emu.inject("429", count=1)
        limited = transport.send("Job Tracking", key, [record])
        assert isinstance(limited, RetryAfter) and limited.pause_all and limited.seconds == 30.0
        emu.inject("503", count=1)
        unavailable = transport.send("Job Tracking", key, [record])
        assert isinstance(unavailable, RetryAfter) and unavailable.seconds == 0.0
        assert emu.api_key not in repr(transport) + str(unavailable) + str(refused)


def test_what_a_closing_engine_could_not_deliver_waits_in_the_journal_for_the_next(tmp_path: Path) -> None:
    pytest.importorskip("pyairtable")  # the journal lives in the Airtable sink's package for now
    from jobtrace.delivery.journal import Journal

    down = MemoryTransport()
    down.fail(RetryAfter(0.0, "HTTP 503"), count=None)
    first = DeliveryEngine(
        down,
        journal=Journal(tmp_path / "journal.sqlite3"),
        destination="memory:test",
        requests_per_second=1_000,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    for i in range(12):
        first.submit(TABLE, KEY, {"Run ID": f"r-{i}", "Status": "Completed", "Posts Processed": i})
    assert first.close(0.3) is False  # the backend stayed down
    assert down.records(TABLE) == []
    assert len(Journal(tmp_path / "journal.sqlite3").rows("memory:test")) == 12

    up = MemoryTransport()
    second = DeliveryEngine(
        up, journal=Journal(tmp_path / "journal.sqlite3"), destination="memory:test", requests_per_second=1_000
    )
    try:
        assert second.flush(5)
    finally:
        second.close(5)
    assert sorted(r["Run ID"] for r in up.records(TABLE)) == sorted(f"r-{i}" for i in range(12))
    assert {r["Run ID"]: r["Posts Processed"] for r in up.records(TABLE)}["r-7"] == 7
    assert Journal(tmp_path / "journal.sqlite3").rows("memory:test") == []  # delivered rows are deleted


def test_a_delivered_record_leaves_the_journal_and_a_refused_one_is_kept_as_undeliverable(tmp_path: Path) -> None:
    pytest.importorskip("pyairtable")
    from jobtrace.delivery.journal import Journal

    journal = Journal(tmp_path / "journal.sqlite3")
    transport = MemoryTransport()
    transport.fail(Refused(None, "INVALID_RECORDS"), count=1)
    engine = DeliveryEngine(transport, journal=journal, destination="memory:test", requests_per_second=1_000)
    try:
        engine.submit(TABLE, KEY, {"Run ID": "bad", "Status": "Completed"})
        assert engine.flush(5)
        engine.submit(TABLE, KEY, {"Run ID": "good", "Status": "Completed"})
        assert engine.flush(5)
    finally:
        engine.close(5)
    assert [r["Run ID"] for r in transport.records(TABLE)] == ["good"]
    assert journal.rows("memory:test") == []
    ((row, error),) = journal.undeliverable("memory:test")
    assert row.fields["Run ID"] == "bad" and "INVALID_RECORDS" in error
