"""Item 2: no resume, attach or webhook update ever makes a record go backwards, even when reads fail.

The read-back is retried; when it still fails, the call that needed it raises
``RecordUnavailableError`` before anything is written (the choice documented
in README, "Reading back").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import jobtrace
from jobtrace import tracking
from jobtrace.sinks import AirtableSink
from jobtrace.testing import AirtableEmulator, Fault, reset

from .conftest import BASE_ID, JOBS, SinkFactory, fields_by_client


@pytest.fixture
def sink(make_sink: SinkFactory) -> Iterator[AirtableSink]:
    """An AirtableSink configured as a user would: not strict, so sink errors are only logged."""
    sink = make_sink()
    previous = jobtrace.configure([sink])
    yield sink
    jobtrace.restore(previous)


@pytest.fixture(autouse=True)
def _fresh_explicit_api() -> Iterator[None]:
    """The explicit API remembers nothing at the start (as in the webhook's own process)."""
    reset(keep_configuration=True)
    yield
    reset(keep_configuration=True)


def _job_fields(emulator: AirtableEmulator) -> dict[str, Any]:
    (job,) = emulator.records(BASE_ID, JOBS)
    fields: dict[str, Any] = job["fields"]
    return fields


def _first_run(sink: AirtableSink) -> str:
    with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme") as client:
        client.incr(posts_processed=100)
    assert jobtrace.flush(20)
    return job.run_id


def test_a_resume_whose_first_reads_are_dropped_continues_the_counters(
    emulator: AirtableEmulator, sink: AirtableSink
) -> None:
    run_id = _first_run(sink)
    before = _job_fields(emulator)
    emulator.inject(Fault.DROP, count=3, method="GET")
    with jobtrace.tracked_job("post-scoring", run_id=run_id), jobtrace.client_run("globex") as client:
        client.incr(posts_processed=5)
    assert jobtrace.flush(20)
    after = _job_fields(emulator)
    assert after["Posts Processed"] == 105
    assert after["Clients Processed"] == 2
    assert after["Start Time"] == before["Start Time"]
    assert after["Status"] == "Completed"


def test_an_attach_whose_first_reads_are_dropped_continues_the_client_record(
    emulator: AirtableEmulator, sink: AirtableSink
) -> None:
    run_id = _first_run(sink)
    before = fields_by_client(emulator)["acme"]
    emulator.inject(Fault.DROP, count=3, method="GET")
    with jobtrace.client_run("acme", run_id=run_id) as client:
        client.incr(posts_processed=1)
    assert jobtrace.flush(20)
    after = fields_by_client(emulator)["acme"]
    assert after["Posts Processed"] == 101
    assert after["Start Time"] == before["Start Time"]


def test_when_the_record_cannot_be_read_at_all_resume_attach_and_webhook_fail_and_write_nothing(
    emulator: AirtableEmulator, sink: AirtableSink
) -> None:
    run_id = _first_run(sink)
    jobs_before, clients_before = _job_fields(emulator), fields_by_client(emulator)
    emulator.inject(Fault.DROP, count=None, method="GET")
    with (
        pytest.raises(jobtrace.RecordUnavailableError, match=f"job run {run_id}.*nothing was written"),
        jobtrace.tracked_job("post-scoring", run_id=run_id),
    ):
        pytest.fail("the resumed job must not start")
    with (
        pytest.raises(jobtrace.RecordUnavailableError, match=f"client run {run_id}-acme"),
        jobtrace.client_run("acme", run_id=run_id),
    ):
        pytest.fail("the attached client run must not start")
    with pytest.raises(jobtrace.RecordUnavailableError):
        tracking.update_client_run_record(run_id, "acme", {"Posts Processed": 1})
    with pytest.raises(jobtrace.RecordUnavailableError):
        tracking.complete_job_tracking_record(run_id, "failed")
    emulator.clear_faults()
    assert jobtrace.flush(20)
    assert _job_fields(emulator) == jobs_before
    assert fields_by_client(emulator) == clients_before
    # Once Airtable answers again, the same webhook update goes through without reopening the record.
    tracking.update_client_run_record(run_id, "acme", {"Progress": "late webhook"})
    assert jobtrace.flush(20)
    acme = fields_by_client(emulator)["acme"]
    assert acme["Progress"] == "late webhook"
    assert (acme["Status"], acme["End Time"], acme["Start Time"], acme["Posts Processed"]) == (
        clients_before["acme"]["Status"],
        clients_before["acme"]["End Time"],
        clients_before["acme"]["Start Time"],
        100,
    )
