"""The migration guide's explicit functions: idempotent, same sinks and field mapping as the decorators."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import jobtrace
from jobtrace import tracking
from jobtrace.changes import START, Change
from jobtrace.sinks import MemorySink, Sink

from .conftest import forget

RUN = "251005-210247"


class Starts(Sink):
    """Counts record starts (creations) per record."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, str, str | None]] = []

    def write(self, change: Change) -> None:
        if change.event == START:
            self.starts.append(change.key)


def test_the_guides_flow_writes_one_job_and_one_client_record(sink: MemorySink) -> None:
    run_id = tracking.generate_run_id()
    job = tracking.create_job_tracking_record(run_id, "post-scoring", {"System Notes": "Started batch scoring job"})
    client = tracking.create_client_run_record(run_id, "Guy-Wilson", {"Posts Processed": 0})
    tracking.update_job_tracking_record(
        run_id, {"status": "Running", "progress": "50% complete", "notes": "Processing batch 2 of 4"}
    )
    tracking.update_client_run_record(run_id, "Guy-Wilson", {"postsProcessed": 42, "tokenUsage": 15000})
    tracking.complete_client_run_record(
        run_id, "Guy-Wilson", "completed", {"postsProcessed": 100, "notes": "All posts processed successfully"}
    )
    final = tracking.complete_job_tracking_record(run_id, "completed")

    assert (job["Run ID"], job["Status"], job["Job Type"]) == (run_id, "Running", "post-scoring")
    assert job["System Notes"].endswith("Started batch scoring job")
    assert (client["Run ID"], client["Client ID"], client["Posts Processed"]) == (
        f"{run_id}-Guy-Wilson",
        "Guy-Wilson",
        0,
    )
    [job_record] = sink.job_records()
    [client_record] = sink.client_records()
    assert final == job_record
    assert job_record["Progress"] == "50% complete"
    assert job_record["System Notes"].splitlines()[-1].endswith("Processing batch 2 of 4")
    assert (job_record["Status"], job_record["Clients Processed"], job_record["Posts Processed"]) == (
        "Completed",
        1,
        100,
    )
    assert (client_record["Status"], client_record["Posts Processed"], client_record["Token Usage"]) == (
        "Completed",
        100,
        15000,
    )
    assert "End Time" in client_record and "End Time" in job_record


def test_second_create_returns_the_existing_record_without_writing(sink: MemorySink) -> None:
    first = tracking.create_job_tracking_record(RUN, "post-scoring", {"progress": "first"})
    writes = sink.write_count
    second = tracking.create_job_tracking_record(RUN, "other-type", {"progress": "second"})
    assert second == first
    assert sink.write_count == writes
    forget()  # a new process: the record is found in the sink
    third = tracking.create_job_tracking_record(RUN, "other-type", {"progress": "third"})
    assert (third["Progress"], third["Job Type"]) == ("first", "post-scoring")
    assert sink.write_count == writes
    assert len(sink.job_records()) == 1


def test_second_client_create_returns_the_existing_record(sink: MemorySink) -> None:
    first = tracking.create_client_run_record(RUN, "acme", {"posts_processed": 3})
    assert tracking.create_client_run_record(RUN, "acme", {"posts_processed": 9}) == first
    forget()
    assert tracking.create_client_run_record(RUN, "acme")["Posts Processed"] == 3
    assert len(sink.client_records()) == 1


@pytest.mark.parametrize("fresh_process", [False, True])
def test_completing_twice_keeps_the_first_end_time_and_status(sink: MemorySink, fresh_process: bool) -> None:
    tracking.create_job_tracking_record(RUN, "post-scoring")
    tracking.create_client_run_record(RUN, "acme")
    first_job = tracking.complete_job_tracking_record(RUN, "failed")
    first_client = tracking.complete_client_run_record(RUN, "acme", "completed")
    if fresh_process:
        forget()
    writes = sink.write_count
    again_job = tracking.complete_job_tracking_record(RUN, "completed", {"progress": "late"})
    again_client = tracking.complete_client_run_record(RUN, "acme", "failed")
    assert sink.write_count == writes
    assert (again_job["Status"], again_job["End Time"]) == ("Failed", first_job["End Time"])
    assert (again_client["Status"], again_client["End Time"]) == ("Completed", first_client["End Time"])
    assert sink.job_record(RUN)["Status"] == "Failed"  # type: ignore[index]


def test_updating_a_run_no_sink_knows_creates_it_once(sink: MemorySink) -> None:
    starts = Starts()
    jobtrace.configure([sink, starts], strict=True)
    barrier = threading.Barrier(8)

    def webhook(i: int) -> None:
        barrier.wait()
        tracking.update_client_run_record(RUN, "acme", {"apify_run_id": f"apify-{i}"})
        tracking.update_job_tracking_record(RUN, {"progress": f"step {i}"})

    threads = [threading.Thread(target=webhook, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(starts.starts) == [("client", RUN, "acme"), ("job", RUN, None)]
    [client] = sink.client_records()
    assert (client["Status"], client["Run ID"]) == ("Running", f"{RUN}-acme")
    assert "End Time" not in client
    assert "Job Type" not in sink.job_record(RUN)  # type: ignore[operator]


@pytest.mark.parametrize(
    "key",
    ["posts_processed", "postsProcessed", "Posts Processed"],
)
def test_logical_camel_case_and_airtable_names_reach_the_same_field(sink: MemorySink, key: str) -> None:
    record = tracking.update_client_run_record(RUN, "acme", {key: 42})
    assert record["Posts Processed"] == 42
    assert sink.client_record(RUN, "acme")["Posts Processed"] == 42  # type: ignore[index]


@pytest.mark.parametrize("key", ["notes", "System Notes"])
def test_notes_append_timestamped_lines(sink: MemorySink, key: str) -> None:
    tracking.update_job_tracking_record(RUN, {key: "one"})
    tracking.update_job_tracking_record(RUN, {key: "two"})
    lines = sink.job_record(RUN)["System Notes"].splitlines()  # type: ignore[index]
    assert [line.split("] ", 1)[1] for line in lines] == ["one", "two"]
    assert all(line.startswith("[20") for line in lines)


@pytest.mark.parametrize("key", ["Notes", "Source"])
def test_notes_or_source_points_to_system_notes_and_touches_nothing(sink: MemorySink, key: str) -> None:
    with pytest.raises(jobtrace.UnknownFieldError, match="System Notes"):
        tracking.update_job_tracking_record(RUN, {key: "text"})
    with pytest.raises(jobtrace.UnknownFieldError, match="System Notes"):
        tracking.create_client_run_record(RUN, "acme", {key: "text"})
    assert sink.write_count == 0


def test_computed_and_unknown_fields_raise_before_any_record_is_touched(sink: MemorySink) -> None:
    with pytest.raises(jobtrace.ComputedFieldError, match="Success Rate"):
        tracking.create_job_tracking_record(RUN, "post-scoring", {"Success Rate": 1})
    with pytest.raises(jobtrace.UnknownFieldError, match="Writable fields"):
        tracking.complete_client_run_record(RUN, "acme", updates={"postsProcesed": 1})
    with pytest.raises(jobtrace.InvalidValueError):
        tracking.update_client_run_record(RUN, "acme", {"posts_processed": "many"})
    assert sink.write_count == 0


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("completed", "Completed"),
        ("COMPLETED", "Completed"),
        ("completed_with_errors", "Completed with Errors"),
        ("failed", "Failed"),
        ("Cancelled", "Cancelled"),
    ],
)
def test_statuses_are_normalised(sink: MemorySink, given: str, stored: str) -> None:
    assert tracking.complete_job_tracking_record(RUN, given)["Status"] == stored
    assert sink.job_record(RUN)["Status"] == stored  # type: ignore[index]


@pytest.mark.parametrize("status", ["running", "done-ish"])
def test_completing_with_a_non_terminal_or_unknown_status_raises(sink: MemorySink, status: str) -> None:
    with pytest.raises(jobtrace.InvalidValueError):
        tracking.complete_job_tracking_record(RUN, status)
    assert sink.write_count == 0


def test_status_given_in_updates_is_the_status_the_run_ends_with(sink: MemorySink) -> None:
    tracking.update_client_run_record(RUN, "acme", {"status": "Running"})
    assert sink.client_record(RUN, "acme")["Status"] == "Running"  # type: ignore[index]
    tracking.complete_client_run_record(RUN, "acme", "failed", {"errors": "scraper timed out"})
    record = sink.client_record(RUN, "acme")
    assert record is not None
    assert (record["Status"], record["Errors"]) == ("Failed", "scraper timed out")


@pytest.mark.parametrize("bad", ["2025-10-05", "251005-210247-acme", "", None])
def test_malformed_run_ids_raise(bad: Any, sink: MemorySink) -> None:
    with pytest.raises(jobtrace.InvalidRunIdError):
        tracking.update_job_tracking_record(bad, {"progress": "x"})
    assert sink.write_count == 0


def test_explicit_api_inside_a_tracked_job_updates_the_live_run(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        with jobtrace.client_run("acme") as client:
            client.incr(posts_processed=2)
        tracking.update_job_tracking_record(job.run_id, {"progress": "half way"})
        tracking.create_job_tracking_record(job.run_id, "post-scoring")
    [record] = sink.job_records()
    assert (record["Progress"], record["Status"], record["Posts Processed"]) == ("half way", "Completed", 2)


def test_client_completed_by_a_webhook_rolls_into_the_job_this_process_runs(sink: MemorySink) -> None:
    with jobtrace.tracked_job("harvest") as job:
        for i, client_id in enumerate(["acme", "globex"]):
            tracking.create_client_run_record(job.run_id, client_id)
            tracking.update_client_run_record(job.run_id, client_id, {"total_posts_harvested": 10 + i})
            tracking.complete_client_run_record(job.run_id, client_id, "failed" if i else "completed")
    [record] = sink.job_records()
    assert (record["Clients Processed"], record["Clients Succeeded"], record["Clients Failed"]) == (2, 1, 1)
    assert record["Status"] == "Completed with Errors"
