"""Resuming an interrupted run: job.remaining(), exact roll-ups, no duplicate records."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import jobtrace
from jobtrace import cli
from jobtrace.sinks import AirtableSink
from jobtrace.testing import AirtableEmulator

from .conftest import BASE_ID, JOBS, by_client, child_env, records, spawn, wait_for_line

CLIENTS = [f"c{i}" for i in range(6)]

FIRST_ATTEMPT = """
    import time
    import jobtrace
    jobtrace.configure_from_env()
    with jobtrace.tracked_job("post-scoring") as job:
        print("run", job.run_id, flush=True)
        for i in range(6):
            try:
                with jobtrace.client_run(f"c{i}") as client:
                    client.incr(posts_processed=10)
                    if i == 1:
                        raise RuntimeError("scoring failed")
                    if i == 3:
                        print("ready", flush=True)
                        time.sleep(60)   # SIGTERM here
            except RuntimeError:
                pass
"""


def test_an_interrupted_run_resumes_redoing_only_unfinished_clients_with_exact_rollups(
    emulator: AirtableEmulator, journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = child_env(emulator, journal_path)
    proc = spawn(FIRST_ATTEMPT, env)
    run_id = wait_for_line(proc, "run")
    wait_for_line(proc, "ready")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert records(emulator, JOBS)[0]["Status"] == "Interrupted"

    # What there is to resume
    emulator.reset_rate_limit()  # the child just used this second's budget
    assert cli.main(["runs", "--status", "interrupted"], env=env) == 0
    listed = capsys.readouterr().out
    assert run_id in listed and "Interrupted" in listed

    sink = AirtableSink(
        emulator.api_key, BASE_ID, endpoint_url=emulator.url, journal_path=journal_path, rate_limit_penalty=1.0
    )
    previous = jobtrace.configure([sink], strict=True)
    try:
        with jobtrace.tracked_job("post-scoring", run_id=run_id) as job:
            todo = job.remaining(CLIENTS)
            assert todo == ["c1", "c3", "c4", "c5"]  # c1 failed, c3 was interrupted, c4-c5 never ran
            for client_id in todo:
                with jobtrace.client_run(client_id) as client:
                    client.incr(posts_processed=10)
            assert job.remaining(CLIENTS) == []
        assert jobtrace.flush(20)
    finally:
        jobtrace.shutdown(5)
        jobtrace.restore(previous)
    [record] = records(emulator, JOBS)
    clients = by_client(emulator)  # fails on a duplicate record
    assert sorted(clients) == CLIENTS
    assert {c: f["Status"] for c, f in clients.items()} == dict.fromkeys(CLIENTS, "Completed")
    assert record["Status"] == "Completed"
    assert (record["Clients Processed"], record["Clients Succeeded"], record.get("Clients Failed", 0)) == (6, 6, 0)
    # c1 and c3 continued their records' counters (10 from the first attempt, 10 from the redo)
    assert record["Posts Processed"] == sum(f["Posts Processed"] for f in clients.values())
