"""``job.expect_clients(n)``: the job record's Progress counts client runs against the total."""

from __future__ import annotations

import pytest

import jobtrace
from jobtrace.sinks import MemorySink


def test_progress_reads_done_of_expected_with_the_failures(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        job.expect_clients(3)
        assert sink.job_record(job.run_id)["Progress"] == "0 of 3 clients"  # type: ignore[index]
        with jobtrace.client_run("acme"):
            pass
        with pytest.raises(RuntimeError), jobtrace.client_run("initech"):
            raise RuntimeError("down")
        job.refresh_rollups()
        assert sink.job_record(job.run_id)["Progress"] == "2 of 3 clients, 1 failed"  # type: ignore[index]
        with jobtrace.client_run("globex"):
            pass
    record = sink.job_record(job.run_id)
    assert record is not None
    assert record["Progress"] == "3 of 3 clients, 1 failed"
    assert record["Clients Processed"] == 3 and record["Status"] == "Completed with Errors"


def test_progress_the_code_sets_itself_wins(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        job.expect_clients(2)
        jobtrace.update(progress="halfway there")
        for client_id in ("acme", "globex"):
            with jobtrace.client_run(client_id):
                pass
    record = sink.job_record(job.run_id)
    assert record is not None and record["Progress"] == "halfway there"


@pytest.mark.parametrize("bad", [-1, 2.5, "50", True, None])
def test_expect_clients_takes_a_whole_number(bad: object) -> None:
    with jobtrace.tracked_job("post-scoring") as job, pytest.raises(jobtrace.InvalidValueError, match="whole number"):
        job.expect_clients(bad)  # type: ignore[arg-type]
