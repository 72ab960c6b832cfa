"""Runs carried across asyncio's thread hand-offs: to_thread copies the context, run_in_executor needs bind."""

from __future__ import annotations

import asyncio

import jobtrace
from jobtrace.sinks import MemorySink


def _where() -> tuple[str | None, str | None]:
    return jobtrace.current_run_id(), jobtrace.current_client_id()


async def test_to_thread_carries_the_run_and_client(sink: MemorySink) -> None:
    async with jobtrace.tracked_job("async") as job, jobtrace.client_run("acme"):
        seen = await asyncio.gather(*(asyncio.to_thread(_where) for _ in range(4)))
        await asyncio.to_thread(jobtrace.incr, posts_processed=3)
    assert seen == [(job.run_id, "acme")] * 4
    assert sink.client_record(job.run_id, "acme")["Posts Processed"] == 3  # type: ignore[index]


async def test_run_in_executor_needs_bind() -> None:
    loop = asyncio.get_running_loop()
    async with jobtrace.tracked_job("async") as job:
        unbound = await loop.run_in_executor(None, _where)
        bound = await loop.run_in_executor(None, jobtrace.bind(_where))
    assert (unbound, bound) == ((None, None), (job.run_id, None))


async def test_jobtrace_pool_as_the_loops_default_executor() -> None:
    loop = asyncio.get_running_loop()
    pool = jobtrace.ThreadPoolExecutor(2)
    loop.set_default_executor(pool)
    async with jobtrace.tracked_job("async") as job:
        # run_in_executor submits from the loop's thread, inside this task's context.
        assert await loop.run_in_executor(None, _where) == (job.run_id, None)
