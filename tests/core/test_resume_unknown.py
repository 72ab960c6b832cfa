"""Item 9: resuming a run no sink knows starts it fresh, with a Start Time and a note saying so."""

from __future__ import annotations

import jobtrace
from jobtrace.sinks import MemorySink

from .helpers import only


def test_resuming_an_unknown_run_gives_it_a_start_time_and_a_note(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring", run_id="200101-000000") as job, jobtrace.client_run("acme") as c:
        c.incr(posts_processed=2)
    assert job.run_id == "200101-000000"
    record = only(sink.job_records())
    assert record["Run ID"] == "200101-000000"
    assert record["Start Time"] and record["End Time"] >= record["Start Time"]
    assert "Resume of run 200101-000000: no sink found its record, so it started fresh" in record["System Notes"]
    assert (record["Status"], record["Posts Processed"], record["Clients Processed"]) == ("Completed", 2, 1)


def test_resuming_a_known_run_keeps_its_start_time_and_says_nothing_of_the_sort(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        pass
    started = only(sink.job_records())["Start Time"]
    with jobtrace.tracked_job("post-scoring", run_id=job.run_id):
        pass
    record = only(sink.job_records())
    assert record["Start Time"] == started
    assert "started fresh" not in record.get("System Notes", "")
