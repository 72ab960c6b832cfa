"""tracked_job as a decorator of every kind of callable, and both context-manager forms."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import jobtrace
from jobtrace.sinks import MemorySink

from .forms import FORMS, run_in
from .helpers import only


@pytest.mark.parametrize("form", FORMS)
def test_every_form_runs_the_body_inside_one_completed_run(sink: MemorySink, form: str) -> None:
    seen: list[str | None] = []

    def body() -> str:
        seen.append(jobtrace.current_run_id())
        record = only(sink.job_records())
        assert record["Status"] == "Running"
        assert "End Time" not in record
        return "result"

    assert run_in(form, body) == "result"
    record = only(sink.job_records())
    assert seen == [record["Run ID"]]
    assert record["Status"] == "Completed"
    assert record["Job Type"] == "post-scoring"
    assert jobtrace.current_run_id() is None


# -- keeping the decorated function's identity -----------------------------------


def test_sync_decorated_function_keeps_name_docstring_signature_and_kind() -> None:
    def score(client_id: str, limit: int = 10) -> int:
        """Score one client's posts."""
        return limit

    tracked = jobtrace.tracked_job("post-scoring")(score)
    assert tracked.__name__ == "score"
    assert tracked.__doc__ == "Score one client's posts."
    assert inspect.signature(tracked) == inspect.signature(score)
    assert not inspect.iscoroutinefunction(tracked)
    assert not inspect.isgeneratorfunction(tracked)
    assert not inspect.isasyncgenfunction(tracked)
    assert tracked("acme", limit=3) == 3


def test_async_decorated_function_keeps_name_docstring_signature_and_kind() -> None:
    async def score(client_id: str, limit: int = 10) -> int:
        """Score one client's posts."""
        return limit

    tracked = jobtrace.tracked_job("post-scoring")(score)
    assert tracked.__name__ == "score"
    assert tracked.__doc__ == "Score one client's posts."
    assert inspect.signature(tracked) == inspect.signature(score)
    assert inspect.iscoroutinefunction(tracked)
    assert not inspect.isasyncgenfunction(tracked)
    assert asyncio.run(tracked("acme", limit=3)) == 3


def test_generator_decorated_function_keeps_name_docstring_signature_and_kind() -> None:
    def posts(client_id: str, limit: int = 10) -> Iterator[int]:
        """Yield post numbers."""
        yield from range(limit)

    tracked = jobtrace.tracked_job("post-scoring")(posts)
    assert tracked.__name__ == "posts"
    assert tracked.__doc__ == "Yield post numbers."
    assert inspect.signature(tracked) == inspect.signature(posts)
    assert inspect.isgeneratorfunction(tracked)
    assert not inspect.iscoroutinefunction(tracked)
    assert inspect.isgenerator(tracked("acme"))
    assert list(tracked("acme", limit=3)) == [0, 1, 2]


def test_async_generator_decorated_function_keeps_name_docstring_signature_and_kind() -> None:
    async def posts(client_id: str, limit: int = 10) -> AsyncIterator[int]:
        """Yield post numbers."""
        for i in range(limit):
            yield i

    tracked = jobtrace.tracked_job("post-scoring")(posts)
    assert tracked.__name__ == "posts"
    assert tracked.__doc__ == "Yield post numbers."
    assert inspect.signature(tracked) == inspect.signature(posts)
    assert inspect.isasyncgenfunction(tracked)
    assert not inspect.iscoroutinefunction(tracked)

    async def consume() -> list[int]:
        return [i async for i in tracked("acme", limit=3)]

    assert asyncio.run(consume()) == [0, 1, 2]


# -- coroutines: the run covers the awaited body -----------------------------------


async def test_creating_a_coroutine_without_awaiting_it_makes_no_record(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    async def job() -> None:
        pass

    coro = job()
    assert sink.job_records() == []
    assert jobtrace.current_run_id() is None
    coro.close()
    assert sink.job_records() == []


async def test_a_coroutines_run_starts_when_it_is_awaited_and_ends_with_the_body(sink: MemorySink) -> None:
    release = asyncio.Event()

    @jobtrace.tracked_job("post-scoring")
    async def job() -> str | None:
        await release.wait()
        return jobtrace.current_run_id()

    coro = job()
    await asyncio.sleep(0)
    assert sink.job_records() == []
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0)
    assert only(sink.job_records())["Status"] == "Running"  # suspended inside the body
    release.set()
    run_id = await task
    record = only(sink.job_records())
    assert record["Run ID"] == run_id
    assert record["Status"] == "Completed"


# -- generators: the run lasts from the first next() to exhaustion or close --------


def test_creating_a_generator_makes_no_record_until_the_first_next(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    def job() -> Iterator[int]:
        yield 1

    gen = job()
    assert sink.job_records() == []
    assert next(gen) == 1
    assert only(sink.job_records())["Status"] == "Running"
    assert list(gen) == []
    assert only(sink.job_records())["Status"] == "Completed"


def test_an_unstarted_generator_closed_makes_no_record(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    def job() -> Iterator[int]:
        yield 1

    job().close()
    assert sink.job_records() == []


def test_generator_run_context_is_active_only_while_its_body_runs(sink: MemorySink) -> None:
    inside: list[str | None] = []

    @jobtrace.tracked_job("post-scoring")
    def job() -> Iterator[int]:
        for i in range(3):
            inside.append(jobtrace.current_run_id())
            yield i

    outside: list[str | None] = []
    for _ in job():
        outside.append(jobtrace.current_run_id())  # consumer code between yields
    run_id = only(sink.job_records())["Run ID"]
    assert inside == [run_id] * 3
    assert outside == [None] * 3


def test_generator_closed_early_is_cancelled(sink: MemorySink) -> None:
    cleaned_up: list[str | None] = []

    @jobtrace.tracked_job("post-scoring")
    def job() -> Iterator[int]:
        try:
            yield 1
            yield 2
        finally:
            cleaned_up.append(jobtrace.current_run_id())

    gen = job()
    next(gen)
    gen.close()
    record = only(sink.job_records())
    assert record["Status"] == "Cancelled"
    assert "End Time" in record
    assert "Cancelled" in record["System Notes"]
    assert cleaned_up == [record["Run ID"]]  # the body's cleanup still runs inside the run


def test_generator_left_by_break_and_closed_is_cancelled(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    def job() -> Iterator[int]:
        yield from range(10)

    gen = job()
    for i in gen:
        if i == 2:
            break
    gen.close()
    assert only(sink.job_records())["Status"] == "Cancelled"


def test_generator_passes_sent_values_thrown_exceptions_and_its_return_value(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    def job() -> Any:
        received = yield "ready"
        try:
            yield f"got {received}"
        except KeyError:
            yield "recovered"
        return "done"

    def outer() -> Any:
        result = yield from job()
        yield result

    gen = outer()
    assert next(gen) == "ready"
    assert gen.send(42) == "got 42"
    assert gen.throw(KeyError("x")) == "recovered"
    assert next(gen) == "done"
    assert only(sink.job_records())["Status"] == "Completed"


def test_generator_body_exception_fails_the_run_and_propagates_unchanged(sink: MemorySink) -> None:
    boom = ValueError("bad post")

    @jobtrace.tracked_job("post-scoring")
    def job() -> Iterator[int]:
        yield 1
        raise boom

    gen = job()
    next(gen)
    with pytest.raises(ValueError) as info:
        next(gen)
    assert info.value is boom
    record = only(sink.job_records())
    assert record["Status"] == "Failed"
    assert record["Error Summary"] == "ValueError: bad post"


async def test_creating_an_async_generator_makes_no_record_until_the_first_step(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    async def job() -> AsyncIterator[int]:
        yield 1

    agen = job()
    assert sink.job_records() == []
    assert await agen.__anext__() == 1
    assert only(sink.job_records())["Status"] == "Running"
    assert [i async for i in agen] == []
    assert only(sink.job_records())["Status"] == "Completed"


async def test_async_generator_run_context_is_active_only_while_its_body_runs(sink: MemorySink) -> None:
    inside: list[str | None] = []

    @jobtrace.tracked_job("post-scoring")
    async def job() -> AsyncIterator[int]:
        for i in range(3):
            inside.append(jobtrace.current_run_id())
            await asyncio.sleep(0)
            inside.append(jobtrace.current_run_id())
            yield i

    outside: list[str | None] = []
    async for _ in job():
        outside.append(jobtrace.current_run_id())
        await asyncio.sleep(0)
    run_id = only(sink.job_records())["Run ID"]
    assert inside == [run_id] * 6
    assert outside == [None] * 3


async def test_async_generator_closed_early_is_cancelled(sink: MemorySink) -> None:
    cleaned_up: list[str | None] = []

    @jobtrace.tracked_job("post-scoring")
    async def job() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            cleaned_up.append(jobtrace.current_run_id())

    agen = job()
    await agen.__anext__()
    await agen.aclose()
    record = only(sink.job_records())
    assert record["Status"] == "Cancelled"
    assert "End Time" in record
    assert cleaned_up == [record["Run ID"]]


async def test_async_generator_passes_sent_values_and_thrown_exceptions(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    async def job() -> Any:
        received = yield "ready"
        try:
            yield f"got {received}"
        except KeyError:
            yield "recovered"

    agen = job()
    assert await agen.asend(None) == "ready"
    assert await agen.asend(42) == "got 42"
    assert await agen.athrow(KeyError("x")) == "recovered"
    with pytest.raises(StopAsyncIteration):
        await agen.__anext__()
    assert only(sink.job_records())["Status"] == "Completed"


async def test_async_generator_body_exception_fails_the_run_and_propagates_unchanged(sink: MemorySink) -> None:
    boom = ValueError("bad post")

    @jobtrace.tracked_job("post-scoring")
    async def job() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(0)
        raise boom

    agen = job()
    await agen.__anext__()
    with pytest.raises(ValueError) as info:
        await agen.__anext__()
    assert info.value is boom
    assert only(sink.job_records())["Status"] == "Failed"


# -- methods ---------------------------------------------------------------------


class Scorer:
    """A class whose methods are jobs, with the decorator above and below classmethod/staticmethod."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    @jobtrace.tracked_job("method")
    def method(self, x: int) -> tuple[int, str | None]:
        """A method."""
        return x * self.factor, jobtrace.current_run_id()

    @jobtrace.tracked_job("async-method")
    async def async_method(self, x: int) -> tuple[int, str | None]:
        """An async method."""
        await asyncio.sleep(0)
        return x * self.factor, jobtrace.current_run_id()

    @jobtrace.tracked_job("generator-method")
    def generator_method(self, x: int) -> Iterator[tuple[int, str | None]]:
        yield x * self.factor, jobtrace.current_run_id()

    @jobtrace.tracked_job("classmethod")
    @classmethod
    def class_method_outer(cls, x: int) -> tuple[Any, str | None]:
        """A classmethod, tracked_job outermost."""
        return (cls, x), jobtrace.current_run_id()

    @classmethod
    @jobtrace.tracked_job("classmethod")
    def class_method_inner(cls, x: int) -> tuple[Any, str | None]:
        """A classmethod, classmethod outermost."""
        return (cls, x), jobtrace.current_run_id()

    @jobtrace.tracked_job("classmethod")
    @classmethod
    async def async_class_method_outer(cls, x: int) -> tuple[Any, str | None]:
        await asyncio.sleep(0)
        return (cls, x), jobtrace.current_run_id()

    @classmethod
    @jobtrace.tracked_job("classmethod")
    async def async_class_method_inner(cls, x: int) -> tuple[Any, str | None]:
        await asyncio.sleep(0)
        return (cls, x), jobtrace.current_run_id()

    @jobtrace.tracked_job("staticmethod")
    @staticmethod
    def static_method_outer(x: int) -> tuple[Any, str | None]:
        """A staticmethod, tracked_job outermost."""
        return x, jobtrace.current_run_id()

    @staticmethod
    @jobtrace.tracked_job("staticmethod")
    def static_method_inner(x: int) -> tuple[Any, str | None]:
        """A staticmethod, staticmethod outermost."""
        return x, jobtrace.current_run_id()

    @jobtrace.tracked_job("staticmethod")
    @staticmethod
    async def async_static_method_outer(x: int) -> tuple[Any, str | None]:
        await asyncio.sleep(0)
        return x, jobtrace.current_run_id()

    @staticmethod
    @jobtrace.tracked_job("staticmethod")
    async def async_static_method_inner(x: int) -> tuple[Any, str | None]:
        await asyncio.sleep(0)
        return x, jobtrace.current_run_id()


def test_a_decorated_method_runs_as_a_job_with_its_instance(sink: MemorySink) -> None:
    value, run_id = Scorer(3).method(2)
    assert value == 6
    record = only(sink.job_records())
    assert (record["Run ID"], record["Job Type"], record["Status"]) == (run_id, "method", "Completed")
    assert Scorer.method.__name__ == "method"
    assert Scorer.method.__doc__ == "A method."
    assert list(inspect.signature(Scorer(1).method).parameters) == ["x"]


async def test_a_decorated_async_method_runs_as_a_job_with_its_instance(sink: MemorySink) -> None:
    scorer = Scorer(3)
    assert inspect.iscoroutinefunction(scorer.async_method)
    assert inspect.iscoroutinefunction(Scorer.async_method)
    value, run_id = await scorer.async_method(2)
    assert value == 6
    record = only(sink.job_records())
    assert (record["Run ID"], record["Status"]) == (run_id, "Completed")


def test_a_decorated_generator_method_runs_as_a_job_with_its_instance(sink: MemorySink) -> None:
    scorer = Scorer(3)
    assert inspect.isgeneratorfunction(scorer.generator_method)
    [(value, run_id)] = list(scorer.generator_method(2))
    assert value == 6
    assert only(sink.job_records())["Run ID"] == run_id


@pytest.mark.parametrize("name", ["class_method_outer", "class_method_inner"])
def test_a_decorated_classmethod_runs_as_a_job_with_its_class_in_both_decorator_orders(
    sink: MemorySink, name: str
) -> None:
    for owner in (Scorer, Scorer(1)):
        (cls, x), run_id = getattr(owner, name)(5)
        assert (cls, x) == (Scorer, 5)
        assert run_id is not None
    records = sink.job_records()
    assert len(records) == 2
    assert all(r["Job Type"] == "classmethod" and r["Status"] == "Completed" for r in records)
    assert getattr(Scorer, name).__name__ == name
    assert getattr(Scorer, name).__doc__.startswith("A classmethod")
    assert list(inspect.signature(getattr(Scorer, name)).parameters) == ["x"]


@pytest.mark.parametrize("name", ["async_class_method_outer", "async_class_method_inner"])
async def test_a_decorated_async_classmethod_runs_as_a_job_in_both_decorator_orders(
    sink: MemorySink, name: str
) -> None:
    method = getattr(Scorer, name)
    assert inspect.iscoroutinefunction(method)
    (cls, x), run_id = await method(5)
    assert (cls, x) == (Scorer, 5)
    assert only(sink.job_records())["Run ID"] == run_id


@pytest.mark.parametrize("name", ["static_method_outer", "static_method_inner"])
def test_a_decorated_staticmethod_runs_as_a_job_in_both_decorator_orders(sink: MemorySink, name: str) -> None:
    for owner in (Scorer, Scorer(1)):
        x, run_id = getattr(owner, name)(5)
        assert x == 5
        assert run_id is not None
    records = sink.job_records()
    assert len(records) == 2
    assert all(r["Job Type"] == "staticmethod" and r["Status"] == "Completed" for r in records)
    assert getattr(Scorer, name).__name__ == name
    assert getattr(Scorer, name).__doc__.startswith("A staticmethod")
    assert list(inspect.signature(getattr(Scorer, name)).parameters) == ["x"]


@pytest.mark.parametrize("name", ["async_static_method_outer", "async_static_method_inner"])
async def test_a_decorated_async_staticmethod_runs_as_a_job_in_both_decorator_orders(
    sink: MemorySink, name: str
) -> None:
    method = getattr(Scorer(1), name)
    assert inspect.iscoroutinefunction(method)
    x, run_id = await method(5)
    assert x == 5
    assert only(sink.job_records())["Run ID"] == run_id


# -- the context-manager forms ------------------------------------------------------


def test_with_tracked_job_gives_the_run_to_update(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        job.update(progress="50% complete", notes="Processing batch 2 of 4")
        assert isinstance(job, jobtrace.JobRun)
        assert jobtrace.current_run_id() == job.run_id
    record = only(sink.job_records())
    assert record["Progress"] == "50% complete"
    assert record["System Notes"].endswith("Processing batch 2 of 4")


async def test_async_with_tracked_job_gives_the_run_to_update(sink: MemorySink) -> None:
    async with jobtrace.tracked_job("post-scoring") as job:
        await asyncio.sleep(0)
        job.update(progress="50% complete")
        assert jobtrace.current_run_id() == job.run_id
    assert only(sink.job_records())["Progress"] == "50% complete"


def test_one_tracked_job_object_used_twice_makes_two_runs(sink: MemorySink) -> None:
    tracked = jobtrace.tracked_job("post-scoring")
    with tracked as first:
        pass
    with tracked as second:
        pass
    assert first.run_id != second.run_id
    assert len(sink.job_records()) == 2


def test_with_client_run_and_async_with_client_run_track_the_client(sink: MemorySink) -> None:
    async def async_part() -> None:
        async with jobtrace.client_run("globex", name="Globex Corp") as client:
            await asyncio.sleep(0)
            client.incr(posts_processed=2)

    with jobtrace.tracked_job("post-scoring"):
        with jobtrace.client_run("acme", name="Acme Inc") as client:
            assert isinstance(client, jobtrace.ClientRun)
            client.incr(posts_processed=1)
        asyncio.run(async_part())
    records = {r["Client ID"]: r for r in sink.client_records()}
    assert records["acme"]["Client Name"] == "Acme Inc"
    assert records["acme"]["Posts Processed"] == 1
    assert records["globex"]["Client Name"] == "Globex Corp"
    assert records["globex"]["Posts Processed"] == 2
    assert all(r["Status"] == "Completed" for r in records.values())


def test_tracked_job_rejects_an_empty_job_type() -> None:
    with pytest.raises(jobtrace.InvalidValueError):
        jobtrace.tracked_job("")


def test_a_generator_dropped_without_close_is_cancelled(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    def job() -> Iterator[int]:
        yield from range(10)

    gen = job()
    next(gen)
    del gen  # CPython closes it as soon as the last reference goes
    gc.collect()
    assert only(sink.job_records())["Status"] == "Cancelled"


def test_an_async_generator_abandoned_mid_way_is_cancelled_when_its_loop_closes_it(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    async def job() -> AsyncIterator[int]:
        for i in range(10):
            yield i

    async def consume() -> None:
        async for i in job():
            if i == 2:
                break

    asyncio.run(consume())  # asyncio.run finalises the abandoned async generator
    assert only(sink.job_records())["Status"] == "Cancelled"


def test_two_interleaved_generators_of_one_decorated_function_are_two_runs(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    def job(n: int) -> Iterator[str | None]:
        for _ in range(n):
            yield jobtrace.current_run_id()

    first, second = job(3), job(2)
    seen = [next(first), next(second), next(first), next(second), next(first)]
    assert list(second) == [] and list(first) == []
    assert seen[0] == seen[2] == seen[4]
    assert seen[1] == seen[3]
    assert seen[0] != seen[1]
    assert [r["Status"] for r in sink.job_records()] == ["Completed", "Completed"]


async def test_two_interleaved_async_generators_of_one_decorated_function_are_two_runs(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    async def job(n: int) -> AsyncIterator[str | None]:
        for _ in range(n):
            await asyncio.sleep(0)
            yield jobtrace.current_run_id()

    first, second = job(3), job(2)
    seen = [await first.__anext__(), await second.__anext__(), await first.__anext__(), await second.__anext__()]
    assert [i async for i in second] == []
    assert len([i async for i in first]) == 1
    assert seen[0] == seen[2] != seen[1] == seen[3]
    assert [r["Status"] for r in sink.job_records()] == ["Completed", "Completed"]


def test_a_client_run_open_across_a_yield_is_invisible_to_the_consumer(sink: MemorySink) -> None:
    @jobtrace.tracked_job("post-scoring")
    def job() -> Iterator[str | None]:
        with jobtrace.client_run("acme"):
            yield jobtrace.current_client_id()
            jobtrace.incr(posts_processed=1)
            yield jobtrace.current_client_id()

    consumer_saw = []
    for inside in job():
        assert inside == "acme"
        consumer_saw.append(jobtrace.current_client_id())
    assert consumer_saw == [None, None]
    assert only(sink.client_records())["Posts Processed"] == 1
