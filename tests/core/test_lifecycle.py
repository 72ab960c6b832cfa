"""Record lifecycle: statuses, times, errors, notes, explicit terminal statuses; in every form."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import jobtrace
from jobtrace.records import NOTES_LIMIT
from jobtrace.sinks import MemorySink

from .forms import FORMS, run_in
from .helpers import only


def parse_time(value: str) -> datetime:
    """Parse an ISO 8601 UTC time as jobtrace writes it, checking it is UTC."""
    assert value.endswith("Z"), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)
    return parsed


# -- statuses, in every form -----------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_normal_exit_completes_the_run_with_start_and_end_time(sink: MemorySink, form: str) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    mid: dict[str, Any] = {}

    def body() -> None:
        mid.update(only(sink.job_records()))

    run_in(form, body)
    after = datetime.now(timezone.utc) + timedelta(seconds=1)
    assert mid["Status"] == "Running"
    assert "End Time" not in mid
    record = only(sink.job_records())
    assert record["Status"] == "Completed"
    assert record["Start Time"] == mid["Start Time"]
    start, end = parse_time(record["Start Time"]), parse_time(record["End Time"])
    assert before <= start <= end <= after
    assert "Error Summary" not in record


@pytest.mark.parametrize("form", FORMS)
def test_an_exception_fails_the_run_and_propagates_unchanged(sink: MemorySink, form: str) -> None:
    boom = ValueError("Airtable said no")

    def body() -> None:
        raise boom

    with pytest.raises(ValueError) as info:
        run_in(form, body)
    assert info.value is boom
    record = only(sink.job_records())
    assert record["Status"] == "Failed"
    assert record["Error Summary"] == "ValueError: Airtable said no"
    assert record["System Notes"].splitlines()[-1].endswith("ValueError: Airtable said no")
    assert "End Time" in record


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_interrupt_the_run_and_propagate(
    sink: MemorySink, form: str, interrupt: type[BaseException]
) -> None:
    exc = interrupt()

    def body() -> None:
        raise exc

    with pytest.raises(interrupt) as info:
        run_in(form, body)
    assert info.value is exc
    record = only(sink.job_records())
    assert record["Status"] == "Interrupted"
    assert "End Time" in record
    assert "Error Summary" not in record
    assert "Interrupted" in record["System Notes"]


@pytest.mark.parametrize("form", FORMS)
def test_an_explicit_terminal_status_wins_over_completed(sink: MemorySink, form: str) -> None:
    def body() -> None:
        jobtrace.update(status="No Leads To Score")
        # Set, but not applied before the run ends.
        assert only(sink.job_records())["Status"] == "Running"

    run_in(form, body)
    record = only(sink.job_records())
    assert record["Status"] == "No Leads To Score"
    assert "End Time" in record


@pytest.mark.parametrize("form", FORMS)
def test_an_exception_wins_over_an_explicit_status(sink: MemorySink, form: str) -> None:
    def body() -> None:
        jobtrace.update(status="No Leads To Score")
        raise RuntimeError("late failure")

    with pytest.raises(RuntimeError):
        run_in(form, body)
    record = only(sink.job_records())
    assert record["Status"] == "Failed"
    assert record["Error Summary"] == "RuntimeError: late failure"


@pytest.mark.parametrize("form", FORMS)
def test_a_failed_client_run_completes_the_job_with_errors(sink: MemorySink, form: str) -> None:
    def body() -> None:
        with jobtrace.client_run("acme"):
            pass
        with pytest.raises(KeyError), jobtrace.client_run("globex"):
            raise KeyError("missing profile")

    run_in(form, body)
    assert only(sink.job_records())["Status"] == "Completed with Errors"
    records = {r["Client ID"]: r for r in sink.client_records()}
    assert records["acme"]["Status"] == "Completed"
    assert records["globex"]["Status"] == "Failed"
    assert records["globex"]["Errors"] == "KeyError: 'missing profile'"
    assert "KeyError: 'missing profile'" in records["globex"]["System Notes"]


@pytest.mark.parametrize("status", ["completed", "COMPLETED", " Completed ", "no leads to score", "no_leads_to_score"])
def test_an_explicit_status_is_normalised_to_the_tables_choice(sink: MemorySink, status: str) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        job.update(status=status)
    expected = "Completed" if "omplet" in status.lower() else "No Leads To Score"
    assert only(sink.job_records())["Status"] == expected


def test_an_explicit_completed_wins_over_completed_with_errors(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        with pytest.raises(ValueError), jobtrace.client_run("acme"):
            raise ValueError("x")
        job.update(status="completed")
    assert only(sink.job_records())["Status"] == "Completed"


def test_an_unknown_status_raises_at_the_call(sink: MemorySink) -> None:
    with (
        jobtrace.tracked_job("post-scoring") as job,
        pytest.raises(jobtrace.InvalidValueError, match="No Leads To Score"),
    ):
        job.update(status="Done-ish")
    assert only(sink.job_records())["Status"] == "Completed"


def test_a_client_run_can_set_its_own_terminal_status(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme") as client:
        client.update(status="No Leads To Score")
    assert only(sink.client_records())["Status"] == "No Leads To Score"
    assert only(sink.job_records())["Status"] == "Completed"


def test_a_client_run_explicitly_set_failed_counts_as_failed(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme") as client:
        client.update(status="Failed")
    assert only(sink.client_records())["Status"] == "Failed"
    job = only(sink.job_records())
    assert job["Status"] == "Completed with Errors"
    assert job["Clients Failed"] == 1


# -- cancellation ------------------------------------------------------------------


async def test_a_cancelled_async_job_is_cancelled_and_the_cancellation_propagates(sink: MemorySink) -> None:
    started = asyncio.Event()

    @jobtrace.tracked_job("post-scoring")
    async def job() -> None:
        async with jobtrace.client_run("acme"):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(job())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = only(sink.job_records())
    assert record["Status"] == "Cancelled"
    assert "End Time" in record
    assert "Cancelled" in record["System Notes"]
    assert only(sink.client_records())["Status"] == "Cancelled"


async def test_a_cancelled_async_with_block_is_cancelled(sink: MemorySink) -> None:
    started = asyncio.Event()

    async def job() -> None:
        async with jobtrace.tracked_job("post-scoring"):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(job())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert only(sink.job_records())["Status"] == "Cancelled"


async def test_a_cancelled_async_generator_job_is_cancelled(sink: MemorySink) -> None:
    started = asyncio.Event()

    @jobtrace.tracked_job("post-scoring")
    async def job() -> Any:
        yield 1
        started.set()
        await asyncio.Event().wait()
        yield 2  # pragma: no cover - never reached

    async def consume() -> list[int]:
        return [i async for i in job()]

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert only(sink.job_records())["Status"] == "Cancelled"


def test_a_sync_job_raising_cancelled_error_is_cancelled(sink: MemorySink) -> None:
    with pytest.raises(asyncio.CancelledError), jobtrace.tracked_job("post-scoring"):
        raise asyncio.CancelledError()
    assert only(sink.job_records())["Status"] == "Cancelled"


# -- client runs: the same lifecycle ---------------------------------------------------


def test_a_client_run_records_start_and_end_time_and_completes(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"):
        with jobtrace.client_run("acme"):
            mid = only(sink.client_records())
        record = only(sink.client_records())
    assert mid["Status"] == "Running"
    assert "End Time" not in mid
    assert record["Status"] == "Completed"
    assert parse_time(record["Start Time"]) <= parse_time(record["End Time"])


def test_a_client_run_exception_fails_the_client_and_propagates_unchanged(sink: MemorySink) -> None:
    boom = RuntimeError("rate limited")
    with pytest.raises(RuntimeError) as info, jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme"):
        raise boom
    assert info.value is boom
    client = only(sink.client_records())
    assert client["Status"] == "Failed"
    assert client["Errors"] == "RuntimeError: rate limited"
    assert only(sink.job_records())["Status"] == "Failed"


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_a_client_run_interrupted_is_interrupted(sink: MemorySink, interrupt: type[BaseException]) -> None:
    with pytest.raises(interrupt), jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme"):
        raise interrupt()
    assert only(sink.client_records())["Status"] == "Interrupted"
    assert only(sink.job_records())["Status"] == "Interrupted"


def test_an_exception_without_a_message_is_described_by_its_type(sink: MemorySink) -> None:
    with pytest.raises(TimeoutError), jobtrace.tracked_job("post-scoring"):
        raise TimeoutError()
    assert only(sink.job_records())["Error Summary"] == "TimeoutError"


# -- notes -------------------------------------------------------------------------------


def test_notes_append_timestamped_lines(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        job.note("first")
        jobtrace.note("second")
        job.update(notes="third")
        with jobtrace.client_run("acme") as client:
            client.note("client line")
            jobtrace.note("client line 2")
    lines = only(sink.job_records())["System Notes"].splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["first", "second", "third"]
    for line in lines:
        stamp = line[1 : line.index("]")]
        parse_time(stamp)
    client_lines = only(sink.client_records())["System Notes"].splitlines()
    assert [line.split("] ", 1)[1] for line in client_lines] == ["client line", "client line 2"]


def test_notes_never_grow_past_the_long_text_limit_dropping_the_oldest_lines(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        for i in range(2_000):
            job.note(f"line {i:05d} " + "x" * 80)
            if i % 500 == 0:
                assert len(only(sink.job_records())["System Notes"]) <= NOTES_LIMIT
    notes = only(sink.job_records())["System Notes"]
    assert len(notes) <= NOTES_LIMIT
    assert len(notes) > NOTES_LIMIT - 200  # trimmed just enough, not emptied
    lines = notes.splitlines()
    assert "trimmed" in lines[0]  # the marker
    assert "line 00000 " not in notes
    # Whole lines, oldest gone first, newest kept, in order.
    kept = [int(line.split("line ")[1][:5]) for line in lines[1:]]
    assert kept == list(range(kept[0], 2_000))
    assert all(line.startswith("[") for line in lines[1:])


def test_a_single_huge_note_is_cut_to_the_limit(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        job.note("start")
        job.note("y" * (NOTES_LIMIT + 10))
        job.note("end")
    notes = only(sink.job_records())["System Notes"]
    assert len(notes) <= NOTES_LIMIT
    assert notes.endswith("end")


def test_a_failure_note_is_added_even_when_notes_are_full(sink: MemorySink) -> None:
    with pytest.raises(ValueError), jobtrace.tracked_job("post-scoring") as job:
        for _ in range(1_200):
            job.note("z" * 100)
        raise ValueError("final straw")
    notes = only(sink.job_records())["System Notes"]
    assert len(notes) <= NOTES_LIMIT
    assert notes.splitlines()[-1].endswith("ValueError: final straw")


# -- End Time is only ever written with a terminal status ------------------------------


def test_no_change_ever_writes_an_end_time_while_running(recorder: Any) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        with jobtrace.client_run("acme") as client:
            client.incr(posts_processed=1)
            client.note("x")
        job.update(progress="done")
    for change in recorder.changes:
        if change.fields.get("End Time") is not None:
            assert change.event == "end"
            assert change.fields["Status"] != "Running"
        if change.fields.get("Status") == "Running":
            assert change.fields.get("End Time") is None


def test_a_resumed_run_clears_its_end_time_while_running(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        pass
    assert "End Time" in only(sink.job_records())
    with jobtrace.tracked_job("post-scoring", run_id=job.run_id):
        mid = only(sink.job_records())
        assert mid["Status"] == "Running"
        assert "End Time" not in mid
    assert "End Time" in only(sink.job_records())


def test_a_resumed_run_whose_earlier_part_had_failed_clients_completes_with_errors(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job, pytest.raises(ValueError), jobtrace.client_run("acme"):
        raise ValueError("x")
    with jobtrace.tracked_job("post-scoring", run_id=job.run_id), jobtrace.client_run("globex"):
        pass
    record = only(sink.job_records())
    assert record["Clients Failed"] == 1
    assert record["Clients Processed"] == 2
    assert record["Status"] == "Completed with Errors"
