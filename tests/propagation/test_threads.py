"""Runs carried into threads: jobtrace.ThreadPoolExecutor, jobtrace.bind, threading.Thread."""

from __future__ import annotations

import concurrent.futures
import threading

import jobtrace
from jobtrace.sinks import MemorySink

WORKERS = 8
PER_WORKER = 500


def _where() -> tuple[str | None, str | None]:
    return jobtrace.current_run_id(), jobtrace.current_client_id()


def test_thread_pool_tasks_run_in_the_submitters_run_and_client(sink: MemorySink) -> None:
    barrier = threading.Barrier(WORKERS)

    def work() -> tuple[str | None, str | None]:
        barrier.wait()  # all eight threads increment at the same time
        for _ in range(PER_WORKER):
            jobtrace.incr(posts_processed=1, token_usage=2)
        return _where()

    with (
        jobtrace.tracked_job("fan-out") as job,
        jobtrace.client_run("acme"),
        jobtrace.ThreadPoolExecutor(WORKERS) as pool,
    ):
        futures = [pool.submit(work) for _ in range(WORKERS)]
        seen = [f.result() for f in futures]

    assert seen == [(job.run_id, "acme")] * WORKERS
    record = sink.client_record(job.run_id, "acme")
    assert record is not None
    assert record["Posts Processed"] == WORKERS * PER_WORKER
    assert record["Token Usage"] == 2 * WORKERS * PER_WORKER
    assert record["Status"] == "Completed"
    assert len(sink.job_records()) == 1
    assert sink.job_records()[0]["Posts Processed"] == WORKERS * PER_WORKER


def test_thread_pool_map_carries_the_run_and_each_task_sees_its_own_client(sink: MemorySink) -> None:
    def per_client(client_id: str) -> tuple[str | None, str | None]:
        with jobtrace.client_run(client_id):
            jobtrace.incr(posts_processed=len(client_id))
            return _where()

    clients = [f"client-{i}" for i in range(WORKERS * 2)]
    with jobtrace.tracked_job("fan-out") as job, jobtrace.ThreadPoolExecutor(4) as pool:
        seen = list(pool.map(per_client, clients))

    assert seen == [(job.run_id, c) for c in clients]
    assert {r["Client ID"]: r["Posts Processed"] for r in sink.client_records()} == {c: len(c) for c in clients}
    assert sink.job_records()[0]["Clients Processed"] == len(clients)


def test_a_plain_stdlib_pool_loses_the_run_which_is_why_the_drop_in_exists() -> None:
    with jobtrace.tracked_job("fan-out"), concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert pool.submit(_where).result() == (None, None)


def test_pool_started_in_one_run_serves_tasks_of_later_runs_in_their_own_run(sink: MemorySink) -> None:
    with jobtrace.ThreadPoolExecutor(2) as pool:
        with jobtrace.tracked_job("first") as first:
            a = pool.submit(_where).result()
        with jobtrace.tracked_job("second") as second:
            b = pool.submit(_where).result()
    assert (a, b) == ((first.run_id, None), (second.run_id, None))


def test_bound_function_in_eight_plain_threads_counts_exactly_on_the_right_client(sink: MemorySink) -> None:
    barrier = threading.Barrier(WORKERS)
    seen: list[tuple[str | None, str | None]] = []

    def work() -> None:
        barrier.wait()
        for _ in range(PER_WORKER):
            jobtrace.incr(posts_processed=1)
        seen.append(_where())

    with jobtrace.tracked_job("threads") as job:
        with jobtrace.client_run("globex"):
            target = jobtrace.bind(work)  # one bound callable, run by eight threads at once
            threads = [threading.Thread(target=target) for _ in range(WORKERS)]
        # The threads start after the client block: the context was captured at bind time.
        with jobtrace.client_run("initech"):
            for t in threads:
                t.start()
            for t in threads:
                t.join()

    assert seen == [(job.run_id, "globex")] * WORKERS
    assert sink.client_record(job.run_id, "globex")["Posts Processed"] == WORKERS * PER_WORKER  # type: ignore[index]
    assert "Posts Processed" not in sink.client_record(job.run_id, "initech")  # type: ignore[operator]


def test_bind_outside_a_run_binds_no_run() -> None:
    bound = jobtrace.bind(_where)
    with jobtrace.tracked_job("later"):
        assert bound() == (None, None)


def test_bind_keeps_name_and_passes_arguments_and_return_value() -> None:
    def add(a: int, b: int = 0) -> int:
        """Adds."""
        return a + b

    bound = jobtrace.bind(add)
    assert bound(2, b=3) == 5
    assert (bound.__name__, bound.__doc__) == ("add", "Adds.")


def test_context_set_inside_a_bound_call_does_not_leak_into_the_next_call(sink: MemorySink) -> None:
    def open_client(client_id: str) -> tuple[str | None, str | None]:
        before = _where()
        jobtrace.client_run(client_id).__enter__()  # left open on purpose
        return before

    with jobtrace.tracked_job("job") as job:
        bound = jobtrace.bind(open_client)
    assert bound("a") == (job.run_id, None)
    assert bound("b") == (job.run_id, None)
