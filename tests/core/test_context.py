"""Context propagation: one run ID per run, carried into nested code, tasks and (on request) threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

import jobtrace
from jobtrace import NoActiveRunError
from jobtrace.sinks import MemorySink

from .helpers import only


def test_outside_any_run_there_is_no_current_run_or_client() -> None:
    assert jobtrace.current_run_id() is None
    assert jobtrace.current_client_id() is None


def test_a_tracked_job_inside_an_active_run_joins_it(sink: MemorySink) -> None:
    with jobtrace.tracked_job("outer") as outer:
        with jobtrace.tracked_job("inner") as inner:
            assert inner.run_id == outer.run_id
            assert jobtrace.current_run_id() == outer.run_id
            inner.note("from the inner job")
        # Leaving the inner block must not end the run.
        record = only(sink.job_records())
        assert record["Status"] == "Running"
        assert "End Time" not in record
    record = only(sink.job_records())
    assert record["Status"] == "Completed"
    assert record["Job Type"] == "outer"
    assert "from the inner job" in record["System Notes"]


def test_a_decorated_job_called_inside_a_job_joins_it(sink: MemorySink) -> None:
    @jobtrace.tracked_job("inner")
    def inner() -> str | None:
        return jobtrace.current_run_id()

    with jobtrace.tracked_job("outer") as outer:
        assert inner() == outer.run_id
    assert only(sink.job_records())["Status"] == "Completed"


async def test_a_decorated_async_job_awaited_inside_a_job_joins_it(sink: MemorySink) -> None:
    @jobtrace.tracked_job("inner")
    async def inner() -> str | None:
        await asyncio.sleep(0)
        return jobtrace.current_run_id()

    async with jobtrace.tracked_job("outer") as outer:
        assert await inner() == outer.run_id
    assert only(sink.job_records())["Status"] == "Completed"


def test_an_exception_in_a_joined_job_fails_the_run_only_when_it_leaves_the_outer_job(sink: MemorySink) -> None:
    with pytest.raises(ValueError), jobtrace.tracked_job("outer"):
        with pytest.raises(ValueError), jobtrace.tracked_job("inner"):
            raise ValueError("inner")
        assert only(sink.job_records())["Status"] == "Running"
        raise ValueError("outer")
    assert only(sink.job_records())["Error Summary"] == "ValueError: outer"


def test_client_run_inside_a_job_uses_the_jobs_run_id(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("Guy-Wilson") as client:
        assert client.run_id == job.run_id
        assert jobtrace.current_run_id() == job.run_id
        assert jobtrace.current_client_id() == "Guy-Wilson"
    record = only(sink.client_records())
    assert record["Run ID"] == f"{job.run_id}-Guy-Wilson"
    assert record["Client ID"] == "Guy-Wilson"
    assert jobtrace.parse_run_id(record["Run ID"]).client_id == "Guy-Wilson"


def test_after_a_client_run_the_job_is_current_again() -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        with jobtrace.client_run("acme"):
            pass
        assert jobtrace.current_client_id() is None
        assert jobtrace.current_run_id() == job.run_id
    assert jobtrace.current_run_id() is None


def test_client_run_without_a_job_or_run_id_raises_no_active_run_error_saying_how_to_fix_it(
    sink: MemorySink,
) -> None:
    with pytest.raises(NoActiveRunError) as info, jobtrace.client_run("acme"):
        pytest.fail("the block must not run")
    message = str(info.value)
    assert "tracked_job" in message
    assert "run_id=" in message
    assert sink.client_records() == []
    assert sink.job_records() == []


async def test_async_client_run_without_a_job_or_run_id_raises_no_active_run_error() -> None:
    with pytest.raises(NoActiveRunError):
        async with jobtrace.client_run("acme"):
            pytest.fail("the block must not run")


def test_module_level_verbs_outside_any_run_raise_no_active_run_error() -> None:
    with pytest.raises(NoActiveRunError):
        jobtrace.note("hello")
    with pytest.raises(NoActiveRunError):
        jobtrace.incr(posts_processed=1)
    with pytest.raises(NoActiveRunError):
        jobtrace.update(progress="1%")


def test_client_run_with_run_id_attaches_to_that_run_without_a_new_run_id(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        pass
    # A webhook, later, continuing the run.
    with jobtrace.client_run("acme", run_id=job.run_id) as client:
        assert client.run_id == job.run_id
        assert jobtrace.current_run_id() == job.run_id
        client.incr(posts_processed=2)
    only(sink.job_records())
    record = only(sink.client_records())
    assert record["Run ID"] == f"{job.run_id}-acme"
    assert record["Posts Processed"] == 2


def test_client_run_with_run_id_twice_updates_one_record_and_continues_its_counters(sink: MemorySink) -> None:
    run_id = "251005-210247"
    with jobtrace.client_run("acme", run_id=run_id) as client:
        client.incr(posts_processed=2)
        client.note("first delivery")
    with jobtrace.client_run("acme", run_id=run_id) as client:
        client.incr(posts_processed=3)
        client.note("second delivery")
    record = only(sink.client_records())
    assert record["Posts Processed"] == 5
    assert "first delivery" in record["System Notes"]
    assert "second delivery" in record["System Notes"]
    assert record["Status"] == "Completed"


def test_client_run_with_run_id_of_a_live_job_in_another_thread_rolls_up_into_it(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        errors: list[BaseException] = []

        def webhook() -> None:
            try:
                with jobtrace.client_run("acme", run_id=job.run_id) as client:
                    client.incr(posts_processed=4)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        t = threading.Thread(target=webhook)
        t.start()
        t.join()
        assert errors == []
    record = only(sink.job_records())
    assert record["Clients Processed"] == 1
    assert record["Posts Processed"] == 4
    assert only(sink.client_records())["Run ID"] == f"{job.run_id}-acme"


def test_client_run_with_a_malformed_run_id_raises_before_any_record(sink: MemorySink) -> None:
    with pytest.raises(jobtrace.InvalidRunIdError), jobtrace.client_run("acme", run_id="yesterday"):
        pytest.fail("the block must not run")
    assert sink.client_records() == []


def test_tracked_job_with_run_id_resumes_that_run_in_one_record(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        for client_id in ("acme", "globex"):
            with jobtrace.client_run(client_id) as client:
                client.incr(posts_processed=3, token_usage=100)
        job.note("first part")
    first = only(sink.job_records())
    assert first["Clients Processed"] == 2

    with jobtrace.tracked_job("post-scoring", run_id=job.run_id) as resumed:
        assert resumed.run_id == job.run_id
        assert jobtrace.current_run_id() == job.run_id
        mid = only(sink.job_records())
        assert mid["Status"] == "Running"
        assert "End Time" not in mid
        with jobtrace.client_run("initech") as client:
            client.incr(posts_processed=1, token_usage=50)
        resumed.note("second part")
    record = only(sink.job_records())
    assert record["Run ID"] == job.run_id
    assert record["Status"] == "Completed"
    assert record["Start Time"] == first["Start Time"]
    assert record["Clients Processed"] == 3
    assert record["Clients Succeeded"] == 3
    assert record["Posts Processed"] == 7
    assert record["Token Usage"] == 250
    assert "first part" in record["System Notes"]
    assert "second part" in record["System Notes"]
    assert len(sink.client_records()) == 3


def test_tracked_job_with_the_run_id_of_a_live_run_joins_it(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        joined: list[str] = []

        def resume_script() -> None:
            with jobtrace.tracked_job("post-scoring", run_id=job.run_id) as same:
                joined.append(same.run_id)
                same.note("from another thread")

        t = threading.Thread(target=resume_script)
        t.start()
        t.join()
        assert joined == [job.run_id]
        # The other thread leaving must not end the run it joined.
        assert only(sink.job_records())["Status"] == "Running"
    record = only(sink.job_records())
    assert record["Status"] == "Completed"
    assert "from another thread" in record["System Notes"]


async def test_two_overlapping_calls_of_one_decorated_async_function_are_two_runs(sink: MemorySink) -> None:
    first_started = asyncio.Event()
    second_done = asyncio.Event()

    @jobtrace.tracked_job("post-scoring")
    async def job(name: str, fail: bool) -> str:
        run_id = jobtrace.current_run_id()
        assert run_id is not None
        async with jobtrace.client_run(name) as client:
            client.incr(posts_processed=len(name))
        if name == "first":
            first_started.set()
            await second_done.wait()  # the second call runs and ends inside this call
        else:
            await first_started.wait()
            second_done.set()
        assert jobtrace.current_run_id() == run_id
        if fail:
            raise RuntimeError(f"{name} failed")
        return run_id

    results = await asyncio.gather(job("first", True), job("second", False), return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert isinstance(results[1], str)
    records = {r["Run ID"]: r for r in sink.job_records()}
    assert len(records) == 2
    second = records.pop(results[1])
    (first,) = records.values()
    assert second["Status"] == "Completed"
    assert second["Posts Processed"] == len("second")
    assert first["Status"] == "Failed"
    assert first["Error Summary"] == "RuntimeError: first failed"
    assert first["Posts Processed"] == len("first")
    clients = {r["Client ID"]: r["Run ID"] for r in sink.client_records()}
    assert clients == {"first": f"{first['Run ID']}-first", "second": f"{second['Run ID']}-second"}


def test_two_overlapping_calls_of_one_decorated_function_in_threads_are_two_runs(sink: MemorySink) -> None:
    barrier = threading.Barrier(2)

    @jobtrace.tracked_job("post-scoring")
    def job(name: str) -> str | None:
        barrier.wait()  # both runs are active at once
        with jobtrace.client_run(name):
            pass
        barrier.wait()
        return jobtrace.current_run_id()

    results: dict[str, str | None] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, job(n))) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["a"] != results["b"]
    assert {r["Run ID"] for r in sink.job_records()} == {results["a"], results["b"]}
    assert all(r["Status"] == "Completed" and r["Clients Processed"] == 1 for r in sink.job_records())


async def test_concurrent_client_runs_in_gather_each_see_their_own_client(sink: MemorySink) -> None:
    clients = [f"client-{i}" for i in range(10)]
    everyone_in = asyncio.Event()
    inside = 0

    async def work(i: int, client_id: str) -> None:
        nonlocal inside
        async with jobtrace.client_run(client_id):
            inside += 1
            if inside == len(clients):
                everyone_in.set()
            await everyone_in.wait()  # all client runs are open at once
            assert jobtrace.current_client_id() == client_id
            for _ in range(i + 1):
                jobtrace.incr(posts_processed=1)
                await asyncio.sleep(0)
            jobtrace.incr(token_usage=100 * i)
            assert jobtrace.current_client_id() == client_id

    async with jobtrace.tracked_job("post-scoring"):
        await asyncio.gather(*(work(i, c) for i, c in enumerate(clients)))

    records = {r["Client ID"]: r for r in sink.client_records()}
    assert len(records) == len(clients)
    for i, client_id in enumerate(clients):
        assert records[client_id]["Posts Processed"] == i + 1
        assert records[client_id].get("Token Usage", 0) == 100 * i
    job = only(sink.job_records())
    assert job["Posts Processed"] == sum(range(1, len(clients) + 1))
    assert job["Token Usage"] == sum(100 * i for i in range(len(clients)))


def test_client_runs_in_threads_behind_a_barrier_each_see_their_own_client(sink: MemorySink) -> None:
    n = 8
    barrier = threading.Barrier(n)
    seen: dict[str, str | None] = {}

    with jobtrace.tracked_job("post-scoring") as job:

        def worker(client_id: str, amount: int) -> None:
            with jobtrace.client_run(client_id, run_id=job.run_id):
                barrier.wait()
                jobtrace.incr(posts_processed=amount)
                barrier.wait()
                seen[client_id] = jobtrace.current_client_id()

        threads = [threading.Thread(target=worker, args=(f"c{i}", i + 1)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert seen == {f"c{i}": f"c{i}" for i in range(n)}
    records = {r["Client ID"]: r for r in sink.client_records()}
    assert {c: r["Posts Processed"] for c, r in records.items()} == {f"c{i}": i + 1 for i in range(n)}
    record = only(sink.job_records())
    assert record["Clients Processed"] == n
    assert record["Posts Processed"] == sum(range(1, n + 1))


async def test_a_task_created_inside_a_job_carries_its_run_id() -> None:
    async with jobtrace.tracked_job("post-scoring") as job:

        async def in_task() -> str | None:
            return jobtrace.current_run_id()

        assert await asyncio.create_task(in_task()) == job.run_id
        assert await asyncio.to_thread(jobtrace.current_run_id) == job.run_id


def test_nested_client_run_of_the_same_client_joins_it(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme") as outer:
        with jobtrace.client_run("acme") as inner:
            assert inner is outer
            inner.incr(posts_processed=1)
        assert only(sink.client_records())["Status"] == "Running"
        outer.incr(posts_processed=1)
    record = only(sink.client_records())
    assert record["Status"] == "Completed"
    assert record["Posts Processed"] == 2


def test_a_client_run_again_after_a_resume_continues_its_record_and_replaces_its_share(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        with pytest.raises(ValueError), jobtrace.client_run("acme") as client:
            client.incr(posts_processed=3)
            raise ValueError("first try")
        with jobtrace.client_run("globex") as client:
            client.incr(posts_processed=1)
    assert only(sink.job_records())["Status"] == "Completed with Errors"

    # The resume script retries the client that failed.
    with jobtrace.tracked_job("post-scoring", run_id=job.run_id), jobtrace.client_run("acme") as client:
        client.incr(posts_processed=2)

    clients = {r["Client ID"]: r for r in sink.client_records()}
    assert len(clients) == 2
    assert clients["acme"]["Status"] == "Completed"
    assert clients["acme"]["Posts Processed"] == 5  # continued from the record, not restarted
    record = only(sink.job_records())
    assert (record["Clients Processed"], record["Clients Succeeded"], record["Clients Failed"]) == (2, 2, 0)
    assert record["Posts Processed"] == 6
    assert record["Status"] == "Completed"
