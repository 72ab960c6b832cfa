"""Item 5: two concurrent client_run()s of one client in one job join its one record: no increment lost."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

import jobtrace
from jobtrace.sinks import MemorySink

from .helpers import only

INCREMENTS = 100


def test_two_threads_given_the_same_client_lose_no_increment(sink: MemorySink) -> None:
    both_inside = threading.Barrier(2)

    def work() -> None:
        with jobtrace.client_run("acme") as client:
            both_inside.wait(5)  # both are inside at once
            for _ in range(INCREMENTS):
                client.incr(posts_processed=1, token_usage=10)
            both_inside.wait(5)

    with jobtrace.tracked_job("post-scoring"):
        threads = [threading.Thread(target=jobtrace.bind(work)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    record = only(sink.client_records())
    assert record["Posts Processed"] == 2 * INCREMENTS
    assert record["Token Usage"] == 20 * INCREMENTS
    assert record["Status"] == "Completed"
    job = only(sink.job_records())
    assert job["Posts Processed"] == 2 * INCREMENTS
    assert job["Clients Processed"] == 1


async def test_two_tasks_given_the_same_client_lose_no_increment_and_one_failure_fails_the_record(
    sink: MemorySink,
) -> None:
    async def work(fail: bool) -> None:
        async with jobtrace.client_run("acme") as client:
            for _ in range(INCREMENTS):
                client.incr(posts_processed=1)
                await asyncio.sleep(0)
            if fail:
                raise RuntimeError("scraper broke")

    async with jobtrace.tracked_job("post-scoring"):
        results = await asyncio.gather(work(False), work(True), return_exceptions=True)
    assert [type(r) for r in results] == [type(None), RuntimeError]
    record = only(sink.client_records())
    assert record["Posts Processed"] == 2 * INCREMENTS
    assert record["Status"] == "Failed"
    assert "scraper broke" in record["Errors"]
    job = only(sink.job_records())
    assert (job["Posts Processed"], job["Clients Processed"], job["Clients Failed"]) == (2 * INCREMENTS, 1, 1)


def test_the_same_client_again_after_it_ended_continues_its_counters(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"):
        for _ in range(2):
            with jobtrace.client_run("acme") as client:
                client.incr(posts_processed=5)
    assert only(sink.client_records())["Posts Processed"] == 10
    assert only(sink.job_records())["Posts Processed"] == 10


@pytest.mark.parametrize("first_fails", [True, False])
def test_the_record_completes_when_the_last_entry_leaves(sink: MemorySink, first_fails: bool) -> None:
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with jobtrace.client_run("acme"):
            entered.set()
            release.wait(5)

    with jobtrace.tracked_job("post-scoring"):
        holder = threading.Thread(target=jobtrace.bind(hold))
        holder.start()
        assert entered.wait(5)
        with (
            pytest.raises(RuntimeError) if first_fails else contextlib.nullcontext(),
            jobtrace.client_run("acme"),
        ):
            if first_fails:
                raise RuntimeError("first")
        assert only(sink.client_records())["Status"] == "Running"  # the other entry is still inside
        release.set()
        holder.join(5)
        assert only(sink.client_records())["Status"] == ("Failed" if first_fails else "Completed")


def test_threads_entering_and_leaving_the_same_clients_over_and_over_keep_every_count(sink: MemorySink) -> None:
    # Entries that come in while another thread starts or ends the client's run (the
    # registry's claim and ending windows) must join it or wait for a run of their own:
    # one record per client, every increment counted once, in the record and the job.
    threads_n, rounds, clients = 4, 150, ("acme", "globex")
    go = threading.Barrier(threads_n)

    def churn() -> None:
        go.wait(5)
        for i in range(rounds):
            with jobtrace.client_run(clients[i % 2]) as client:
                client.incr(posts_processed=1)

    with jobtrace.tracked_job("post-scoring"):
        threads = [threading.Thread(target=jobtrace.bind(churn)) for _ in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        assert jobtrace.flush(10)
        assert sink.client_records()  # read while the job runs: roll-ups held back are sent at flush
    per_client = threads_n * rounds // 2
    records = {r["Client ID"]: r for r in sink.client_records()}
    assert sorted(records) == sorted(clients)
    assert all(r["Posts Processed"] == per_client and r["Status"] == "Completed" for r in records.values())
    job = only(sink.job_records())
    assert (job["Posts Processed"], job["Clients Processed"], job["Clients Failed"]) == (threads_n * rounds, 2, 0)
