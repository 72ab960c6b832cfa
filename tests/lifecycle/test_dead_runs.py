"""Dead runs on the same host: found by the OS lock their process held, closed after their leftovers."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import jobtrace
from jobtrace.sinks import AirtableSink
from jobtrace.testing import AirtableEmulator

from .conftest import BASE_ID, JOBS, by_client, child_env, records, spawn, wait_for_line

KILLED = """
    import time
    import jobtrace
    jobtrace.configure_from_env()
    with jobtrace.tracked_job("killed") as job:
        for i in range(10):
            with jobtrace.client_run(f"done-{i}") as client:
                client.incr(posts_processed=2)
        with jobtrace.client_run("in-flight") as client:
            client.incr(posts_processed=1)
            time.sleep(0.5)
            print("ready", time.time(), flush=True)
            time.sleep(60)
"""


def _parse(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_the_next_start_delivers_a_killed_processes_changes_then_closes_its_open_runs_despite_pid_reuse(
    emulator: AirtableEmulator, journal_path: Path
) -> None:
    emulator.set_down(True)  # nothing reaches Airtable while the job runs: all of it is in the journal
    proc = spawn(KILLED, child_env(emulator, journal_path))
    ready_at = float(wait_for_line(proc, "ready"))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_at = time.time()
    # PID reuse, as in a restarted container (PID 1 again): the dead owner's PID is now a live process,
    # and its heartbeat (seconds old) looks fresh. Only the OS lock can tell it is gone.
    conn = sqlite3.connect(journal_path, isolation_level=None)
    conn.execute("UPDATE owners SET pid = ?", (os.getpid(),))
    conn.close()
    emulator.set_down(False)

    sink = AirtableSink(
        emulator.api_key, BASE_ID, endpoint_url=emulator.url, journal_path=journal_path, rate_limit_penalty=1.0
    )
    previous = jobtrace.configure([sink], strict=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = records(emulator, JOBS)
            if jobs and jobs[0].get("Status") == "Interrupted":
                break
            time.sleep(0.1)
        assert jobtrace.flush(20)
    finally:
        jobtrace.shutdown(5)
        jobtrace.restore(previous)
    [job] = records(emulator, JOBS)
    clients = by_client(emulator)
    assert {c: f["Status"] for c, f in clients.items()} == {
        **{f"done-{i}": "Completed" for i in range(10)},
        "in-flight": "Interrupted",
    }
    for record in (job, clients["in-flight"]):
        assert record["Status"] == "Interrupted"
        line = record["System Notes"].splitlines()[-1]
        assert "the process stopped" in line and "last seen at" in line
        assert f"pid {proc.pid}" not in line or "host" in line
        # End Time: when the process was last seen, before it was killed (not when it was found).
        assert ready_at - 6.0 <= _parse(record["End Time"]) <= killed_at
    assert job["Clients Processed"] == 10 and job["Posts Processed"] == 20
    assert clients["in-flight"]["Posts Processed"] == 1


def test_a_live_processes_rows_and_runs_are_never_taken(emulator: AirtableEmulator, journal_path: Path) -> None:
    emulator.set_down(True)
    proc = spawn(KILLED, child_env(emulator, journal_path))
    try:
        wait_for_line(proc, "ready")
        emulator.set_down(False)
        from jobtrace.sinks.airtable import replay

        result = replay(emulator.api_key, BASE_ID, journal_path=journal_path, endpoint_url=emulator.url, timeout=5)
        assert (result.claimed, result.closed) == (0, 0)
        assert result.live_rows > 0
        # The live process may deliver its own records now that Airtable is up; none was closed for it.
        assert all(job.get("Status") == "Running" for job in records(emulator, JOBS))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
