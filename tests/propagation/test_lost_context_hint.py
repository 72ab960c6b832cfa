"""Item 12: NoActiveRunError from a thread that lost the run's context points to jobtrace.bind / ThreadPoolExecutor."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator

import pytest

import jobtrace
from jobtrace.sinks import MemorySink

HINT = ("jobtrace.bind", "jobtrace.ThreadPoolExecutor", "does not carry")


@pytest.fixture(autouse=True)
def memory() -> Iterator[MemorySink]:
    sink = MemorySink()
    previous = jobtrace.configure([sink], strict=True)
    yield sink
    jobtrace.restore(previous)


def _error_in_plain_thread(fn: object) -> BaseException:
    caught: list[BaseException] = []

    def target() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(5)
    (exc,) = caught
    return exc


@pytest.mark.parametrize(
    "call",
    [
        lambda: jobtrace.incr(posts_processed=1),
        lambda: jobtrace.note("x"),
        lambda: jobtrace.client_run("acme").__enter__(),
    ],
    ids=["incr", "note", "client_run"],
)
def test_a_plain_thread_inside_a_job_is_told_to_bind(call: object) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        exc = _error_in_plain_thread(call)
    assert isinstance(exc, jobtrace.NoActiveRunError)
    message = str(exc)
    assert all(part in message for part in HINT), message
    assert job.run_id in message


async def test_run_in_executor_inside_a_job_is_told_to_bind() -> None:
    loop = asyncio.get_running_loop()
    async with jobtrace.tracked_job("post-scoring"):
        with concurrent.futures.ThreadPoolExecutor(1) as pool, pytest.raises(jobtrace.NoActiveRunError) as caught:
            await loop.run_in_executor(pool, lambda: jobtrace.incr(posts_processed=1))
    assert all(part in str(caught.value) for part in HINT)


def test_outside_any_job_there_is_no_hint() -> None:
    exc = _error_in_plain_thread(lambda: jobtrace.incr(posts_processed=1))
    assert isinstance(exc, jobtrace.NoActiveRunError)
    assert "jobtrace.bind" not in str(exc)
