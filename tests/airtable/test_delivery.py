"""Delivery: one record per run, batched under the rate limit, correct under faults."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyairtable
import pytest

import jobtrace
from jobtrace.sinks import AirtableSink
from jobtrace.sinks.airtable import replay
from jobtrace.testing import AirtableEmulator

from .conftest import BASE_ID, CLIENTS, JOBS, PENALTY, SinkFactory, fields_by_client

UPDATES_PER_CLIENT = 5


def run_job(clients: int, failing_every: int = 0, pause: float = 0.0, workers: int = 8) -> tuple[str, int]:
    """A job of ``clients`` client runs with several progress updates each; returns (run ID, changes)."""
    changes = 0
    lock = threading.Lock()

    def one_client(i: int, run_id: str) -> None:
        nonlocal changes
        try:
            with jobtrace.client_run(f"client-{i:03d}", name=f"Client {i}", run_id=run_id) as client:
                for step in range(UPDATES_PER_CLIENT):
                    client.incr(posts_processed=2, token_usage=100)
                    client.update(progress=f"{step + 1}/{UPDATES_PER_CLIENT}")
                    if pause:
                        time.sleep(pause)
                if failing_every and i % failing_every == 0:
                    raise RuntimeError(f"client {i} broke")
        except RuntimeError:
            pass
        with lock:
            changes += 2 + 2 * UPDATES_PER_CLIENT  # start, updates, end

    with jobtrace.tracked_job("post-scoring") as job:
        run_id = job.run_id
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda i: one_client(i, run_id), range(clients)))
        job.update(progress="done")
    return run_id, changes + 3


def assert_job_delivered(emulator: AirtableEmulator, run_id: str, clients: int, failing_every: int = 0) -> None:
    jobs = emulator.records(BASE_ID, JOBS)
    assert [r["fields"]["Run ID"] for r in jobs] == [run_id]
    job = jobs[0]["fields"]
    failed = len([i for i in range(clients) if failing_every and i % failing_every == 0])
    assert job["Status"] == ("Completed with Errors" if failed else "Completed")
    assert job["Clients Processed"] == clients
    assert job["Clients Failed"] == failed
    assert job["Clients Succeeded"] == clients - failed
    assert job["Posts Processed"] == clients * 2 * UPDATES_PER_CLIENT
    assert job["Token Usage"] == clients * 100 * UPDATES_PER_CLIENT
    assert job["Progress"] == "done"
    assert "End Time" in job
    records = fields_by_client(emulator)
    assert len(records) == clients
    for i in range(clients):
        record = records[f"client-{i:03d}"]
        assert record["Run ID"] == f"{run_id}-client-{i:03d}"
        assert record["Posts Processed"] == 2 * UPDATES_PER_CLIENT
        assert record["Token Usage"] == 100 * UPDATES_PER_CLIENT
        assert record["Progress"] == f"{UPDATES_PER_CLIENT}/{UPDATES_PER_CLIENT}"
        assert record["Status"] == ("Failed" if failing_every and i % failing_every == 0 else "Completed")
        assert "End Time" in record


def test_200_clients_give_one_record_each_in_far_fewer_requests_than_updates_and_no_429(
    emulator: AirtableEmulator, tracked: AirtableSink
) -> None:
    # ~2.5 s of work spread over 8 threads, so the writer coalesces while the job runs.
    run_id, changes = run_job(200, failing_every=25, pause=0.02)
    assert jobtrace.flush(60)
    assert_job_delivered(emulator, run_id, 200, failing_every=25)
    requests = emulator.requests
    assert [r for r in requests if r.status == 429] == []
    writes = [r for r in requests if r.method == "PATCH"]
    print(f"\n200 clients: {changes} changes -> {len(writes)} write requests ({len(requests)} requests in all)")
    assert len(writes) < changes / 5
    assert tracked.diagnostics()["rate_limited"] == 0
    (airtable_counts,) = jobtrace.diagnostics()["sinks"]
    assert airtable_counts["sink"] == "AirtableSink"
    assert airtable_counts["requests"] >= len(writes)
    assert airtable_counts["backlog"] == 0


@pytest.mark.parametrize(
    ("fault", "count"),
    [
        ("429", 3),
        ("503", 4),
        ("502", 4),
        ("drop", 4),
        ("lost_response", 4),
    ],
)
def test_faults_lose_nothing_and_duplicate_nothing(
    emulator: AirtableEmulator, tracked: AirtableSink, fault: str, count: int
) -> None:
    emulator.inject(fault, count=count, method="PATCH")

    @jobtrace.tracked_job("post-scoring")
    def job() -> str:
        run_id = jobtrace.current_run_id()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: scored(i, run_id), range(30)))
        jobtrace.update(progress="done")
        return "job result"

    def scored(i: int, run_id: str | None) -> None:
        with jobtrace.client_run(f"client-{i:03d}", run_id=run_id) as client:
            for step in range(UPDATES_PER_CLIENT):
                client.incr(posts_processed=2, token_usage=100)
                client.update(progress=f"{step + 1}/{UPDATES_PER_CLIENT}")
                time.sleep(0.005)

    assert job() == "job result"
    assert jobtrace.flush(30)
    run_id = emulator.records(BASE_ID, JOBS)[0]["fields"]["Run ID"]
    assert_job_delivered(emulator, run_id, 30)
    faulted = [r for r in emulator.requests if r.fault is not None]
    assert len(faulted) == count  # every injected fault was met, and survived


def test_emulator_down_for_a_while_then_back_loses_nothing(emulator: AirtableEmulator, tracked: AirtableSink) -> None:
    started = threading.Event()

    def outage() -> None:
        started.wait(10)
        emulator.stop()
        time.sleep(1.5)
        emulator.start()  # same port

    thread = threading.Thread(target=outage)
    thread.start()

    def scored(i: int, run_id: str) -> None:
        with jobtrace.client_run(f"client-{i:03d}", run_id=run_id) as client:
            for step in range(UPDATES_PER_CLIENT):
                client.incr(posts_processed=2, token_usage=100)
                client.update(progress=f"{step + 1}/{UPDATES_PER_CLIENT}")
                time.sleep(0.01)
            if i == 5:
                started.set()

    with jobtrace.tracked_job("post-scoring") as job:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: scored(i, job.run_id), range(40)))
        job.update(progress="done")
    thread.join()
    assert jobtrace.flush(30)
    assert_job_delivered(emulator, job.run_id, 40)
    assert tracked.diagnostics()["retries"] > 0


def test_connections_dropped_until_cleared_then_everything_arrives(
    emulator: AirtableEmulator, tracked: AirtableSink
) -> None:
    emulator.inject("drop", count=None, method="PATCH")
    run_id, _ = run_job(20)
    assert not jobtrace.flush(0.5)
    assert emulator.records(BASE_ID, CLIENTS) == []
    emulator.clear_faults()
    assert jobtrace.flush(30)
    assert_job_delivered(emulator, run_id, 20)


def test_write_returns_at_once_while_airtable_is_slow(emulator: AirtableEmulator, tracked: AirtableSink) -> None:
    emulator.inject("delay", count=1, method="PATCH", delay=3.0)
    with jobtrace.tracked_job("slow-airtable") as job:
        time.sleep(0.2)  # the job's start record is now in flight, held by the emulator
        for i in range(300):
            job.update(progress=f"{i}")
        # Every update above went through while the one request was still held.
        assert [r for r in emulator.requests if r.method == "PATCH"] == []
    assert jobtrace.flush(30)
    assert emulator.records(BASE_ID, JOBS)[0]["fields"]["Progress"] == "299"


def test_a_value_airtable_refuses_is_set_aside_without_poisoning_the_batch(
    emulator: AirtableEmulator, make_sink: SinkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # The base lacks a status choice the mapping offers; the check is off so the job runs anyway.
    meta = emulator.schema(BASE_ID)
    status = next(f for f in meta["tables"][1]["fields"] if f["name"] == "Status")
    status["options"]["choices"] = [c for c in status["options"]["choices"] if c["name"] != "No Leads To Score"]
    emulator.add_base(BASE_ID, meta)
    sink = make_sink(check_schema=False)
    previous = jobtrace.configure([sink], strict=True)
    try:
        with jobtrace.tracked_job("post-scoring") as job:
            for i in range(12):
                with jobtrace.client_run(f"client-{i:03d}") as client:
                    client.incr(posts_processed=3)
                    if i == 7:
                        client.update(status="No Leads To Score")
        assert jobtrace.flush(30)
    finally:
        jobtrace.restore(previous)
    records = fields_by_client(emulator)
    assert len(records) == 12
    for i in range(12):
        assert records[f"client-{i:03d}"]["Posts Processed"] == 3
        if i != 7:
            assert records[f"client-{i:03d}"]["Status"] == "Completed"
    assert records["client-007"].get("Status") != "No Leads To Score"
    assert sink.diagnostics()["undeliverable"] == 1
    kept = sink._journal.undeliverable(BASE_ID)  # type: ignore[union-attr]
    assert len(kept) == 1
    row, error = kept[0]
    assert row.fields["Status"] == "No Leads To Score"
    assert row.fields["Run ID"] == f"{job.run_id}-client-007"
    assert "INVALID_MULTIPLE_CHOICE_OPTIONS" in error
    assert f"{job.run_id}-client-007" in caplog.text
    assert emulator.api_key not in caplog.text

    # Once the base offers the choice (typecast adds it), a replay delivers what was set aside.
    api = pyairtable.Api(emulator.api_key, endpoint_url=emulator.url)
    api.table(BASE_ID, CLIENTS).create({"Client ID": "probe", "Status": "No Leads To Score"}, typecast=True)
    result = replay(
        emulator.api_key,
        BASE_ID,
        journal_path=sink.journal_path,
        endpoint_url=emulator.url,
        timeout=30,
        retry_undeliverable=True,
        rate_limit_penalty=PENALTY,  # the probe above did not go through jobtrace's throttle
    )
    assert (result.delivered, result.remaining, result.undeliverable) == (1, 0, 0)
    assert fields_by_client(emulator)["client-007"]["Status"] == "No Leads To Score"
    assert len(emulator.records(BASE_ID, CLIENTS)) == 13  # the 12 and the probe


def test_two_sinks_writing_the_same_run_leave_one_record_each(
    emulator: AirtableEmulator, make_sink: SinkFactory
) -> None:
    first, second = make_sink(), make_sink()
    previous = jobtrace.configure([first, second], strict=True)
    try:
        run_id, _ = run_job(15)
        assert jobtrace.flush(30)
    finally:
        jobtrace.restore(previous)
    assert_job_delivered(emulator, run_id, 15)


def test_a_resumed_run_continues_its_one_record(emulator: AirtableEmulator, tracked: AirtableSink) -> None:
    with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("client-a") as client:
        client.incr(posts_processed=4, token_usage=10)
    assert jobtrace.flush(30)
    with jobtrace.tracked_job("post-scoring", run_id=job.run_id), jobtrace.client_run("client-b") as client:
        client.incr(posts_processed=6, token_usage=5)
    assert jobtrace.flush(30)
    jobs = emulator.records(BASE_ID, JOBS)
    assert len(jobs) == 1
    fields: dict[str, Any] = jobs[0]["fields"]
    assert fields["Clients Processed"] == 2
    assert fields["Posts Processed"] == 10
    assert fields["Status"] == "Completed"
    assert sorted(fields_by_client(emulator)) == ["client-a", "client-b"]
