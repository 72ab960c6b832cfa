"""Sinks: error isolation and strict mode, the MemorySink, the LogSink and structlog binding."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

import jobtrace
from jobtrace import SinkError
from jobtrace.sinks import LogSink, MemorySink

from .helpers import FailingSink, RecordingSink, only

# -- a sink error never reaches the job ---------------------------------------------


def test_a_sink_error_never_reaches_the_job(caplog: pytest.LogCaptureFixture) -> None:
    good, bad = MemorySink(), FailingSink()
    before = jobtrace.diagnostics()["sink_errors"]
    prev = jobtrace.configure([bad, good], strict=False)
    try:
        with caplog.at_level(logging.ERROR, logger="jobtrace"), jobtrace.tracked_job("post-scoring") as job:
            with jobtrace.client_run("acme") as client:
                client.incr(posts_processed=1)
            job.note("still fine")
    finally:
        jobtrace.restore(prev)
    # The job ran to the end, and the healthy sink got everything.
    assert only(good.job_records())["Status"] == "Completed"
    assert only(good.client_records())["Posts Processed"] == 1
    errors = jobtrace.diagnostics()["sink_errors"] - before
    assert errors == bad.attempts > 0
    assert "ConnectionError" in jobtrace.diagnostics()["last_sink_error"]
    messages = [r.getMessage() for r in caplog.records if r.name == "jobtrace"]
    assert len(messages) == bad.attempts
    assert all(job.run_id in m and "backend unreachable" in m for m in messages)


def test_a_sink_error_does_not_mask_the_jobs_own_exception() -> None:
    prev = jobtrace.configure([FailingSink()], strict=False)
    boom = ValueError("the job's own error")
    try:
        with pytest.raises(ValueError) as info, jobtrace.tracked_job("post-scoring"):
            raise boom
    finally:
        jobtrace.restore(prev)
    assert info.value is boom


async def test_a_sink_error_never_reaches_an_async_job() -> None:
    prev = jobtrace.configure([FailingSink()], strict=False)
    try:

        @jobtrace.tracked_job("post-scoring")
        async def job() -> str:
            async with jobtrace.client_run("acme"):
                await asyncio.sleep(0)
            return "ok"

        assert await job() == "ok"
    finally:
        jobtrace.restore(prev)


def test_with_strict_a_sink_error_raises_sink_error() -> None:
    prev = jobtrace.configure([FailingSink()], strict=True)
    try:
        with pytest.raises(SinkError) as info, jobtrace.tracked_job("post-scoring"):
            pytest.fail("the job must not start when its record cannot be written")
    finally:
        jobtrace.restore(prev)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert "FailingSink" in str(info.value)


def test_a_sink_error_on_flush_is_counted_not_raised() -> None:
    class FlushFails(MemorySink):
        def flush(self, timeout: float = 10.0) -> bool:
            raise OSError("disk full")

    before = jobtrace.diagnostics()["sink_errors"]
    prev = jobtrace.configure([FlushFails()], strict=False)
    try:
        assert jobtrace.flush(timeout=1.0) is False
    finally:
        jobtrace.restore(prev)
    assert jobtrace.diagnostics()["sink_errors"] == before + 1


def test_flush_is_true_when_every_sink_delivered(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"):
        pass
    assert jobtrace.flush(timeout=1.0) is True


def test_configure_rejects_something_that_is_not_a_sink() -> None:
    with pytest.raises(jobtrace.ConfigurationError):
        jobtrace.configure([object()])  # type: ignore[list-item]


def test_configure_returns_the_previous_configuration_for_restore(sink: MemorySink) -> None:
    other = MemorySink()
    prev = jobtrace.configure([other], strict=True)
    with jobtrace.tracked_job("post-scoring"):
        pass
    jobtrace.restore(prev)
    with jobtrace.tracked_job("post-scoring"):
        pass
    assert len(other.job_records()) == 1
    assert len(sink.job_records()) == 1


# -- MemorySink ------------------------------------------------------------------------


def test_memory_sink_reads_are_snapshots(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        snapshot = sink.job_records()
        snapshot[0]["Status"] = "Tampered"
        one = sink.job_record(job.run_id)
        assert one is not None
        one["Status"] = "Tampered"
        assert only(sink.job_records())["Status"] == "Running"
    assert snapshot[0]["Status"] == "Tampered"  # a later write does not change an earlier snapshot
    assert only(sink.job_records())["Status"] == "Completed"


def test_memory_sink_clear_forgets_every_record(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme"):
        pass
    assert sink.job_records() and sink.client_records()
    sink.clear()
    assert sink.job_records() == []
    assert sink.client_records() == []
    assert sink.job_record(job.run_id) is None
    assert sink.client_record(job.run_id, "acme") is None
    with jobtrace.tracked_job("post-scoring"):
        pass
    assert len(sink.job_records()) == 1


def test_memory_sink_keeps_records_in_creation_order_and_by_key(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        for client_id in ("c", "a", "b"):
            with jobtrace.client_run(client_id):
                pass
    assert [r["Client ID"] for r in sink.client_records()] == ["c", "a", "b"]
    record = sink.client_record(job.run_id, "a")
    assert record is not None and record["Run ID"] == f"{job.run_id}-a"


def test_memory_sink_is_safe_to_read_while_many_threads_write(sink: MemorySink) -> None:
    n = 8
    barrier = threading.Barrier(n + 1)
    stop = threading.Event()
    errors: list[BaseException] = []

    with jobtrace.tracked_job("post-scoring") as job:

        def writer(i: int) -> None:
            barrier.wait()
            for k in range(50):
                with jobtrace.client_run(f"c{i}-{k}", run_id=job.run_id) as client:
                    client.incr(posts_processed=1)

        def reader() -> None:
            barrier.wait()
            try:
                while not stop.is_set():
                    for record in sink.client_records():
                        assert record["Run ID"].startswith(job.run_id)
                    sink.job_records()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        readers = [threading.Thread(target=reader)]
        writers = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
        for t in readers + writers:
            t.start()
        # The barrier has n + 1 parties: n writers and the reader.
        for t in writers:
            t.join()
        stop.set()
        for t in readers:
            t.join()
    assert errors == []
    assert len(sink.client_records()) == n * 50
    assert only(sink.job_records())["Clients Processed"] == n * 50


def test_a_none_value_clears_a_field(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        job.update(progress="half")
        job.update(progress=None)
    assert "Progress" not in only(sink.job_records())


# -- LogSink and structlog ------------------------------------------------------------------


@pytest.fixture
def log_sink() -> Iterator[LogSink]:
    """A LogSink configured (strict) for one test, with structlog binding on as it is by default."""
    log_sink = LogSink()
    prev = jobtrace.configure([log_sink], strict=True)
    yield log_sink
    jobtrace.restore(prev)


def run_small_job() -> str:
    with jobtrace.tracked_job("post-scoring") as job:
        with jobtrace.client_run("acme") as client:
            client.incr(posts_processed=1)
        job.update(progress="done")
    return job.run_id


def test_log_sink_emits_one_event_per_record_transition() -> None:
    recorder = RecordingSink()
    prev = jobtrace.configure([LogSink(), recorder], strict=True)
    try:
        with capture_logs() as logs:
            run_id = run_small_job()
    finally:
        jobtrace.restore(prev)
    events = [e for e in logs if e["event"].startswith(("job.", "client."))]
    assert [e["event"] for e in events] == [f"{c.kind}.{c.event}" for c in recorder.changes]
    assert events[0]["event"] == "job.start" and events[-1]["event"] == "job.end"
    assert {"client.start", "client.update", "client.end"} <= {e["event"] for e in events}
    for event, change in zip(events, recorder.changes):
        assert event["run_id"] == run_id
        assert event["table"] == change.table
        assert event["fields"] == dict(change.fields)
        assert event.get("client_id") == change.client_id
    assert events[-1]["fields"]["Status"] == "Completed"


def test_while_a_run_is_active_the_users_structlog_lines_carry_its_ids(log_sink: LogSink) -> None:
    logger = structlog.get_logger("user")
    with capture_logs(processors=[merge_contextvars]) as logs:
        logger.info("before")
        with jobtrace.tracked_job("post-scoring") as job:
            logger.info("in job")
            with jobtrace.client_run("acme"):
                logger.info("in client")
            logger.info("back in job")
        logger.info("after")
    user = {e["event"]: e for e in logs if not e["event"].startswith(("job.", "client."))}
    assert "run_id" not in user["before"] and "client_id" not in user["before"]
    assert user["in job"]["run_id"] == job.run_id and "client_id" not in user["in job"]
    assert user["in client"]["run_id"] == job.run_id and user["in client"]["client_id"] == "acme"
    assert user["back in job"]["run_id"] == job.run_id and "client_id" not in user["back in job"]
    assert "run_id" not in user["after"]


async def test_structlog_ids_are_bound_in_async_runs_and_per_task(log_sink: LogSink) -> None:
    logger = structlog.get_logger("user")

    @jobtrace.tracked_job("post-scoring")
    async def job() -> str | None:
        async def client(client_id: str) -> None:
            async with jobtrace.client_run(client_id):
                await asyncio.sleep(0)
                logger.info("client work", who=client_id)

        await asyncio.gather(client("acme"), client("globex"))
        return jobtrace.current_run_id()

    with capture_logs(processors=[merge_contextvars]) as logs:
        run_id = await job()
    work = [e for e in logs if e["event"] == "client work"]
    assert len(work) == 2
    assert all(e["run_id"] == run_id and e["client_id"] == e["who"] for e in work)
    assert structlog.contextvars.get_contextvars() == {}


def test_structlog_ids_are_bound_inside_a_generator_body_and_not_outside_it(log_sink: LogSink) -> None:
    logger = structlog.get_logger("user")

    @jobtrace.tracked_job("post-scoring")
    def job() -> Iterator[int]:
        for i in range(2):
            logger.info("inside", i=i)
            yield i

    with capture_logs(processors=[merge_contextvars]) as logs:
        for i in job():
            logger.info("outside", i=i)
    inside = [e for e in logs if e["event"] == "inside"]
    outside = [e for e in logs if e["event"] == "outside"]
    assert len(inside) == 2 and len(outside) == 2
    run_ids = {e["run_id"] for e in inside}
    assert len(run_ids) == 1
    assert all("run_id" not in e for e in outside)


async def test_structlog_ids_are_bound_inside_an_async_generator_body_and_not_outside_it(log_sink: LogSink) -> None:
    logger = structlog.get_logger("user")

    @jobtrace.tracked_job("post-scoring")
    async def job() -> Any:
        for i in range(2):
            await asyncio.sleep(0)
            logger.info("inside", i=i)
            yield i

    with capture_logs(processors=[merge_contextvars]) as logs:
        async for i in job():
            logger.info("outside", i=i)
    assert all("run_id" in e for e in logs if e["event"] == "inside")
    assert all("run_id" not in e for e in logs if e["event"] == "outside")
    assert len([e for e in logs if e["event"] == "inside"]) == 2


def test_structlog_binding_is_off_with_only_a_memory_sink(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"):
        assert structlog.contextvars.get_contextvars() == {}


def test_structlog_binding_can_be_turned_on_for_any_sink(sink: MemorySink) -> None:
    prev = jobtrace.configure([sink], strict=True, bind_structlog=True)
    try:
        with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme"):
            assert structlog.contextvars.get_contextvars() == {"run_id": job.run_id, "client_id": "acme"}
    finally:
        jobtrace.restore(prev)
    assert structlog.contextvars.get_contextvars() == {}


def test_with_no_configuration_jobtrace_uses_the_log_sink() -> None:
    jobtrace.restore(None)  # unconfigured; the autouse fixture puts its configuration back afterwards
    with capture_logs(processors=[merge_contextvars]) as logs, jobtrace.tracked_job("post-scoring") as job:
        structlog.get_logger("user").info("mine")
    events = [e["event"] for e in logs]
    assert events == ["job.start", "mine", "job.end"]
    assert all(e["run_id"] == job.run_id for e in logs)


def test_reconfiguring_while_a_run_is_active_does_not_break_the_run(sink: MemorySink) -> None:
    log_sink = LogSink()
    prev = jobtrace.configure([log_sink, sink], strict=True)
    try:
        with jobtrace.tracked_job("post-scoring") as job:
            jobtrace.configure([sink], strict=True)  # binding is off in the new configuration
            job.note("after reconfiguring")
    finally:
        jobtrace.restore(prev)
    assert only(sink.job_records())["Status"] == "Completed"
    assert structlog.contextvars.get_contextvars() == {}


def test_a_different_run_nested_in_a_client_run_binds_its_own_ids_only(log_sink: LogSink) -> None:
    with jobtrace.tracked_job("post-scoring") as outer, jobtrace.client_run("acme"):
        with jobtrace.tracked_job("post-scoring", run_id="251005-210247") as other:
            assert jobtrace.current_client_id() is None
            assert structlog.contextvars.get_contextvars() == {"run_id": other.run_id}
        assert structlog.contextvars.get_contextvars() == {"run_id": outer.run_id, "client_id": "acme"}
    assert structlog.contextvars.get_contextvars() == {}
