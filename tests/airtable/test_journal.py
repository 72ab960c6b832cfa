"""The journal: what could not be delivered survives the process and is delivered once, later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jobtrace
from jobtrace.changes import CLIENT, JOB
from jobtrace.delivery import DeliveryEngine, MemoryTransport, RetryAfter
from jobtrace.delivery.journal import Journal, JournalRow, record_key
from jobtrace.sinks.airtable import replay
from jobtrace.sinks.airtable.throttle import Throttle
from jobtrace.testing import AirtableEmulator

from .conftest import BASE_ID, CLIENTS, JOBS, PENALTY, SinkFactory, fields_by_client

REPO = Path(jobtrace.__file__).resolve().parents[1]

KILLED_JOB = textwrap.dedent(
    """
    import sys, time
    import jobtrace
    from jobtrace.sinks import AirtableSink

    sink = AirtableSink.from_env(rate_limit_penalty=1.0, backoff_initial=0.05, backoff_max=0.2)
    jobtrace.configure([sink])
    with jobtrace.tracked_job("killed-mid-job") as job:
        for i in range(20):
            with jobtrace.client_run(f"client-{i:03d}") as client:
                client.incr(posts_processed=i, token_usage=10 * i)
                client.update(progress="scored")
        job.update(progress="20 of 40 clients")
        time.sleep(0.5)  # the writer journals within a tenth of a second
        print(job.run_id, flush=True)
        time.sleep(60)   # killed here, mid-job
    """
)


def test_a_process_killed_mid_job_leaves_a_journal_that_replay_delivers_once(
    emulator: AirtableEmulator, journal_path: Path
) -> None:
    emulator.inject("503", count=None, method="PATCH")  # Airtable refuses every write meanwhile
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AIRTABLE_API_KEY": emulator.api_key,
        "AIRTABLE_BASE_ID": BASE_ID,
        "AIRTABLE_ENDPOINT_URL": emulator.url,
        "JOBTRACE_JOURNAL": str(journal_path),
    }
    proc = subprocess.Popen([sys.executable, "-c", KILLED_JOB], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert run_id, "the job did not get going"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert emulator.records(BASE_ID, CLIENTS) == []
    for path in (p for p in journal_path.parent.rglob("*") if p.is_file()):  # the database, its WAL, owner locks
        assert emulator.api_key.encode() not in path.read_bytes()

    emulator.clear_faults()
    result = replay(
        emulator.api_key,
        BASE_ID,
        journal_path=journal_path,
        endpoint_url=emulator.url,
        timeout=30,
        rate_limit_penalty=PENALTY,
        backoff_initial=0.05,
    )
    assert result.ok
    assert (result.claimed, result.delivered, result.remaining, result.undeliverable) == (21, 21, 0, 0)
    jobs = emulator.records(BASE_ID, JOBS)
    assert len(jobs) == 1
    job = jobs[0]["fields"]
    # The dead process's changes first, then its open run closed (issue 9: no run is left Running).
    assert (job["Run ID"], job["Status"], job["Progress"]) == (run_id, "Interrupted", "20 of 40 clients")
    assert result.closed == 1
    assert "the process stopped" in job["System Notes"].splitlines()[-1]
    assert job["Clients Processed"] == 20
    records = fields_by_client(emulator)
    assert len(records) == 20
    for i in range(20):
        record = records[f"client-{i:03d}"]
        assert (record["Status"], record["Progress"]) == ("Completed", "scored")
        assert record.get("Posts Processed", 0) == i  # Airtable omits 0

    again = replay(emulator.api_key, BASE_ID, journal_path=journal_path, endpoint_url=emulator.url, timeout=5)
    assert (again.claimed, again.delivered, again.remaining, again.closed) == (0, 0, 0, 0)
    assert len(emulator.records(BASE_ID, CLIENTS)) == 20


def test_what_a_closed_sink_could_not_deliver_goes_out_with_the_next_start(
    emulator: AirtableEmulator, make_sink: SinkFactory
) -> None:
    first = make_sink()
    previous = jobtrace.configure([first], strict=True)
    try:
        emulator.set_down(True)
        with jobtrace.tracked_job("post-scoring") as job:
            for i in range(5):
                with jobtrace.client_run(f"client-{i}") as client:
                    client.incr(posts_processed=1)
        first.close(0.5)
        assert first.diagnostics()["backlog"] == 6
        emulator.set_down(False)
        second = make_sink()
        jobtrace.configure([second], strict=True)
        assert jobtrace.flush(30)
    finally:
        jobtrace.restore(previous)
    assert [r["fields"]["Status"] for r in emulator.records(BASE_ID, JOBS)] == ["Completed"]
    assert emulator.records(BASE_ID, JOBS)[0]["fields"]["Run ID"] == job.run_id
    assert sorted(fields_by_client(emulator)) == [f"client-{i}" for i in range(5)]
    assert second.diagnostics()["leftovers_claimed"] == 6


def test_a_live_owners_rows_are_not_claimed_and_a_released_owners_are(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    keys = ("Run ID",)
    old = JournalRow(JOBS, record_key(keys, {"Run ID": "r1"}), keys, {"Run ID": "r1", "Status": "Running", "A": 1})
    journal.register("live")
    journal.save(BASE_ID, "live", [(old, 1)])
    assert journal.claim(BASE_ID, "me") == []

    journal.release("live")
    mine = JournalRow(JOBS, old.record_key, keys, {"Run ID": "r1", "Status": "Completed"})
    journal.register("me")
    journal.save(BASE_ID, "me", [(mine, 7)])
    claimed = journal.claim(BASE_ID, "me")
    # The leftovers go under the claimer's newer fields: a stale "Running" never wins.
    assert [r.fields for r in claimed] == [{"Run ID": "r1", "Status": "Completed", "A": 1}]
    assert [r.fields for r in journal.rows(BASE_ID)] == [{"Run ID": "r1", "Status": "Completed", "A": 1}]
    journal.delete(BASE_ID, "me", [(JOBS, old.record_key, 7)])
    assert journal.rows(BASE_ID) == []


def test_coalescing_keeps_the_terminal_status_under_later_updates(tmp_path: Path) -> None:
    down = MemoryTransport()
    down.fail(RetryAfter(0.0, "HTTP 503"), count=None)  # nothing is delivered: the changes stay coalesced
    engine = DeliveryEngine(down, journal=Journal(tmp_path / "j"), destination=BASE_ID, limiter=Throttle())
    keys = ("Run ID", "Client ID")
    key = (CLIENT, "251005-210247", "c1")
    base = {"Run ID": "251005-210247-c1", "Client ID": "c1"}
    # start, two updates, the end (Failed), then a late update of another field
    for fields in [
        {"Status": "Running", "Start Time": "2025-10-05T21:02:47.000Z"},
        {"Posts Processed": 1, "Progress": "1/2"},
        {"Posts Processed": 2},
        {"Status": "Failed", "End Time": "2025-10-05T21:03:00.000Z", "Errors": "boom"},
        {"Progress": "2/2"},
    ]:
        engine.submit(CLIENTS, keys, {**fields, **base}, key=key)
    engine.submit(JOBS, ("Run ID",), {"Run ID": "251005-210247", "Status": "Running"}, key=(JOB, "251005-210247", None))
    assert engine.backlog == 2
    assert engine.pending_fields(CLIENTS, record_key(keys, base)) == {
        **base,
        "Status": "Failed",
        "Start Time": "2025-10-05T21:02:47.000Z",
        "End Time": "2025-10-05T21:03:00.000Z",
        "Errors": "boom",
        "Posts Processed": 2,
        "Progress": "2/2",
    }
    engine.close(0.5)


EXITING_JOB = textwrap.dedent(
    """
    import jobtrace

    jobtrace.configure_from_env()
    with jobtrace.tracked_job("exits-without-flush"):
        for i in range(10):
            with jobtrace.client_run(f"client-{i}") as client:
                client.incr(posts_processed=i + 1)
    # no flush: jobtrace closes its sinks at interpreter exit
    """
)


def test_a_process_that_exits_without_flushing_still_delivers_everything(
    emulator: AirtableEmulator, journal_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AIRTABLE_API_KEY": emulator.api_key,
        "AIRTABLE_BASE_ID": BASE_ID,
        "AIRTABLE_ENDPOINT_URL": emulator.url,
        "JOBTRACE_JOURNAL": str(journal_path),
    }
    subprocess.run([sys.executable, "-c", EXITING_JOB], env=env, check=True, timeout=60)
    assert [r["fields"]["Status"] for r in emulator.records(BASE_ID, JOBS)] == ["Completed"]
    records = fields_by_client(emulator)
    assert {c: r["Posts Processed"] for c, r in records.items()} == {f"client-{i}": i + 1 for i in range(10)}
    assert Journal(journal_path).counts(BASE_ID) == (0, 0)
