"""Run a piece of code inside a tracked job in each of the forms ``tracked_job`` supports.

Lets one test check a behaviour for every form at once: the sync and async
decorators, generators and async generators, and the ``with``/``async with``
context managers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import jobtrace

FORMS = ["function", "coroutine", "generator", "async-generator", "with", "async-with"]


def run_in(form: str, body: Callable[[], Any], job_type: str = "post-scoring", run_id: str | None = None) -> Any:
    """Call ``body()`` inside a tracked job of the given form; return its result or raise its exception."""
    tracked = jobtrace.tracked_job(job_type, run_id=run_id)
    if form == "function":

        @tracked
        def function() -> Any:
            return body()

        return function()
    if form == "coroutine":

        @tracked
        async def coroutine() -> Any:
            await asyncio.sleep(0)
            return body()

        return asyncio.run(coroutine())
    if form == "generator":

        @tracked
        def generator() -> Iterator[Any]:
            yield None
            yield body()

        return list(generator())[-1]
    if form == "async-generator":

        @tracked
        async def async_generator() -> AsyncIterator[Any]:
            yield None
            await asyncio.sleep(0)
            yield body()

        async def consume() -> Any:
            return [item async for item in async_generator()][-1]

        return asyncio.run(consume())
    if form == "with":
        with tracked:
            return body()
    if form == "async-with":

        async def block() -> Any:
            async with tracked:
                await asyncio.sleep(0)
                return body()

        return asyncio.run(block())
    raise AssertionError(form)
