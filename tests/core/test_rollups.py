"""The job record rolls up its client runs; counters stay exact under concurrency."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import jobtrace
from jobtrace.sinks import MemorySink

from .helpers import RecordingSink, only


def test_the_job_rolls_up_its_client_runs(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"):
        for client_id, posts, tokens in [("acme", 3, 300), ("globex", 5, 500), ("initech", 1, 100)]:
            try:
                with jobtrace.client_run(client_id) as client:
                    client.incr(posts_processed=posts, token_usage=tokens)
                    client.update(profiles_examined_for_scoring=9)  # a client-only counter: not rolled up
                    if client_id == "globex":
                        raise RuntimeError("API down")
            except RuntimeError:
                pass
    record = only(sink.job_records())
    assert record["Clients Processed"] == 3
    assert record["Clients Succeeded"] == 2
    assert record["Clients Failed"] == 1
    assert record["Last Client Processed"] == "initech"
    assert record["Posts Processed"] == 9
    assert record["Token Usage"] == 900
    assert record["Status"] == "Completed with Errors"
    assert "Profiles Examined for Scoring" not in record


def test_a_job_without_clients_has_no_client_counts(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"):
        pass
    record = only(sink.job_records())
    assert record["Status"] == "Completed"
    assert record.get("Clients Processed", 0) == 0


def test_cancelled_and_interrupted_clients_count_as_failed(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        with pytest.raises(asyncio.CancelledError), jobtrace.client_run("acme"):
            raise asyncio.CancelledError()
        with pytest.raises(KeyboardInterrupt), jobtrace.client_run("globex"):
            raise KeyboardInterrupt()
        with jobtrace.client_run("initech"):
            pass
        job.update(status="Completed")  # the job itself carried on
    record = only(sink.job_records())
    assert (record["Clients Processed"], record["Clients Succeeded"], record["Clients Failed"]) == (3, 1, 2)


def test_a_client_run_again_in_the_same_job_is_one_record_counted_once(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"):
        with pytest.raises(RuntimeError), jobtrace.client_run("acme") as client:
            client.incr(posts_processed=2)
            raise RuntimeError("first try")
        with jobtrace.client_run("acme") as client:  # the retry continues the same record
            client.incr(posts_processed=3)
    client_record = only(sink.client_records())
    assert client_record["Posts Processed"] == 5
    assert client_record["Status"] == "Completed"
    record = only(sink.job_records())
    assert (record["Clients Processed"], record["Clients Succeeded"], record["Clients Failed"]) == (1, 1, 0)
    assert record["Posts Processed"] == 5
    assert record["Status"] == "Completed"


def test_the_jobs_own_counters_add_to_the_rolled_up_sums(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        with jobtrace.client_run("acme") as client:
            client.incr(posts_processed=10)
        job.incr(posts_processed=5)
    assert only(sink.job_records())["Posts Processed"] == 15


def test_rolled_up_counters_never_go_backwards_on_the_job_record(sink: MemorySink, recorder: RecordingSink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        for i in range(5):
            with jobtrace.client_run(f"c{i}") as client:
                client.incr(posts_processed=10)
            job.incr(posts_processed=1)
            job.note(f"after client {i}")
    seen = [c.fields["Posts Processed"] for c in recorder.changes if c.kind == "job" and "Posts Processed" in c.fields]
    assert seen == sorted(seen), seen
    assert only(sink.job_records())["Posts Processed"] == 55


def test_eight_threads_incrementing_one_clients_counters_are_exact(sink: MemorySink) -> None:
    n, per_thread = 8, 500
    barrier = threading.Barrier(n)
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme") as client:

        def worker() -> None:
            barrier.wait()
            for _ in range(per_thread):
                client.incr(posts_processed=1, token_usage=3)

        threads = [threading.Thread(target=worker) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        mid = only(sink.client_records())
    assert mid["Posts Processed"] == n * per_thread
    record = only(sink.client_records())
    assert record["Posts Processed"] == n * per_thread
    assert record["Token Usage"] == 3 * n * per_thread
    job = only(sink.job_records())
    assert job["Posts Processed"] == n * per_thread
    assert job["Token Usage"] == 3 * n * per_thread


def test_eight_threads_incrementing_one_jobs_counters_are_exact(sink: MemorySink) -> None:
    n, per_thread = 8, 500
    barrier = threading.Barrier(n)
    with jobtrace.tracked_job("post-scoring") as job:

        def worker() -> None:
            barrier.wait()
            for _ in range(per_thread):
                job.incr(token_usage=2)

        threads = [threading.Thread(target=worker) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert only(sink.job_records())["Token Usage"] == 2 * n * per_thread


def test_fractional_counters_sum(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme") as client:
        client.incr(apify_api_costs=0.25)
        client.incr(apify_api_costs=0.5)
    assert only(sink.client_records())["Apify API Costs"] == 0.75


def test_a_job_that_goes_on_after_its_clients_shows_them_all_within_about_a_second(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        for client_id in ("acme", "globex", "initech"):
            with jobtrace.client_run(client_id) as client:
                client.incr(posts_processed=1)
        # The job goes on with other work and writes nothing itself: the roll-ups the
        # throttle held back must still reach its record (the refresher sends them).
        deadline = time.monotonic() + 10
        mid = sink.job_record(job.run_id)
        while mid is not None and mid.get("Clients Processed") != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            mid = sink.job_record(job.run_id)
        assert mid is not None
        assert mid["Status"] == "Running"
        assert (mid["Clients Processed"], mid["Posts Processed"], mid["Last Client Processed"]) == (3, 3, "initech")


def test_flush_sends_the_roll_ups_the_throttle_held_back_at_once(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        for client_id in ("acme", "globex", "initech"):
            with jobtrace.client_run(client_id) as client:
                client.incr(posts_processed=2)
        assert jobtrace.flush()
        mid = sink.job_record(job.run_id)
        assert mid is not None
        assert (mid["Clients Processed"], mid["Posts Processed"], mid["Status"]) == (3, 6, "Running")


def test_client_runs_in_a_row_do_not_each_rewrite_the_job_record(recorder: RecordingSink) -> None:
    with jobtrace.tracked_job("post-scoring"):
        for i in range(50):
            with jobtrace.client_run(f"c{i}") as client:
                client.incr(posts_processed=1)
    job_updates = [c for c in recorder.changes if c.kind == "job" and c.event == "update"]
    # One roll-up right away, then at most one a second (this loop takes far less than 50 s).
    assert len(job_updates) < 10


async def test_once_concurrent_client_runs_are_all_done_flush_shows_them_all(sink: MemorySink) -> None:
    async def work(client_id: str) -> None:
        async with jobtrace.client_run(client_id) as client:
            await asyncio.sleep(0)
            client.incr(token_usage=5)

    async with jobtrace.tracked_job("post-scoring") as job:
        await asyncio.gather(*(work(f"c{i}") for i in range(50)))
        assert jobtrace.flush()
        mid = sink.job_record(job.run_id)
        assert mid is not None
        assert (mid["Clients Processed"], mid["Token Usage"]) == (50, 250)


def test_a_finished_job_is_not_kept_alive_for_the_roll_up_refresher(sink: MemorySink) -> None:
    import gc
    import weakref

    with jobtrace.tracked_job("post-scoring") as job:
        for client_id in ("acme", "globex", "initech"):  # the second and third are held back
            with jobtrace.client_run(client_id):
                pass
    ref = weakref.ref(job)
    del job
    gc.collect()
    assert ref() is None
    assert only(sink.job_records())["Clients Processed"] == 3
