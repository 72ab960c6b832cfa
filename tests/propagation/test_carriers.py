"""Runs carried through a dict: jobtrace.inject / jobtrace.extract."""

from __future__ import annotations

import threading

import pytest

import jobtrace
from jobtrace.sinks import MemorySink


def test_inject_writes_run_and_client_and_extract_reads_them_back() -> None:
    assert jobtrace.inject({"other": 1}) == {"other": 1}
    with jobtrace.tracked_job("job") as job, jobtrace.client_run("acme"):
        headers = jobtrace.inject({"other": 1})
    assert headers == {"other": 1, "jobtrace-run-id": job.run_id, "jobtrace-client-id": "acme"}
    ctx = jobtrace.extract(headers)
    assert (ctx.run_id, ctx.client_id) == (job.run_id, "acme")


def test_extract_reads_an_environment_from_child_env_too() -> None:
    with jobtrace.tracked_job("job") as job:
        env = jobtrace.child_env()
    assert jobtrace.extract(env) == jobtrace.RunContext(job.run_id)


def test_extracted_run_from_another_process_gets_client_runs_but_no_job_record(sink: MemorySink) -> None:
    with jobtrace.extract({"jobtrace-run-id": "251005-210247"}) as ctx:
        assert jobtrace.current_run_id() == ctx.run_id
        with jobtrace.tracked_job("nested") as job:  # joins, does not start a run
            assert job.run_id == "251005-210247"
        with jobtrace.client_run("acme") as client:
            client.incr(posts_processed=2)
    assert jobtrace.current_run_id() is None
    assert sink.job_records() == []
    assert [(r["Run ID"], r["Status"], r["Posts Processed"]) for r in sink.client_records()] == [
        ("251005-210247-acme", "Completed", 2)
    ]


def test_extracted_client_run_is_continued_not_completed(sink: MemorySink) -> None:
    with jobtrace.tracked_job("job") as job, jobtrace.client_run("acme") as client:
        client.incr(posts_processed=3)
        carrier = jobtrace.inject({})
        result: list[object] = []

        def webhook() -> None:  # another thread, no context: only the carrier
            with jobtrace.extract(carrier), jobtrace.client_run("acme") as c:
                c.update(apify_run_id="apify-123")
                result.append(c.ended)

        t = threading.Thread(target=webhook)
        t.start()
        t.join()
        record = sink.client_record(job.run_id, "acme")
        assert record is not None
        assert (record["Status"], record["Apify Run ID"], result) == ("Running", "apify-123", [False])
    assert sink.client_record(job.run_id, "acme")["Status"] == "Completed"  # type: ignore[index]


def test_extract_in_the_process_owning_the_run_joins_the_live_job(sink: MemorySink) -> None:
    with jobtrace.tracked_job("job"):
        carrier = jobtrace.inject({})

        def webhook() -> None:
            with jobtrace.extract(carrier), jobtrace.client_run("late") as c:
                c.incr(posts_processed=4)

        t = threading.Thread(target=webhook)
        t.start()
        t.join()
    [record] = sink.job_records()
    assert (record["Clients Processed"], record["Posts Processed"], record["Status"]) == (1, 4, "Completed")


def test_extract_inside_another_runs_client_does_not_leak_that_client(sink: MemorySink) -> None:
    with (
        jobtrace.tracked_job("job"),
        jobtrace.client_run("outer"),
        jobtrace.extract({"jobtrace-run-id": "251005-210247"}),
    ):
        assert (jobtrace.current_run_id(), jobtrace.current_client_id()) == ("251005-210247", None)


def test_empty_carrier_gives_an_empty_context_that_does_nothing() -> None:
    ctx = jobtrace.extract({})
    assert not ctx
    with ctx:
        assert jobtrace.current_run_id() is None


@pytest.mark.parametrize(
    "carrier",
    [
        {"jobtrace-run-id": "yesterday"},
        {"jobtrace-run-id": "251005-210247-acme"},  # a client run ID is not a job run ID
        {"jobtrace-run-id": 251005},
        {"jobtrace-run-id": "251005-210247", "jobtrace-client-id": "bad\nclient"},
    ],
)
def test_malformed_carrier_raises_a_clear_value_error(carrier: dict[str, object]) -> None:
    with pytest.raises(jobtrace.JobtraceError) as info:
        jobtrace.extract(carrier)
    assert isinstance(info.value, ValueError)
    assert "run ID" in str(info.value) or "client ID" in str(info.value)


def test_a_handed_over_client_travels_on_to_the_next_hop() -> None:
    with jobtrace.extract({"jobtrace-run-id": "251005-210247", "jobtrace-client-id": "acme"}):
        assert jobtrace.child_env() == {"JOBTRACE_RUN_ID": "251005-210247", "JOBTRACE_CLIENT_ID": "acme"}
        with jobtrace.tracked_job("nested"):
            assert jobtrace.inject({}) == {"jobtrace-run-id": "251005-210247", "jobtrace-client-id": "acme"}
