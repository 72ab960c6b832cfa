"""SIGTERM, Ctrl-C under asyncio.run and the exit path: real processes, real signals, the emulator."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

import jobtrace
from jobtrace.sinks import MemorySink
from jobtrace.testing import AirtableEmulator

from .conftest import CLIENTS, JOBS, by_client, child_env, records, spawn, wait_for_line

SYNC_JOB = """
    import sys, time
    import jobtrace
    jobtrace.configure_from_env()
    with jobtrace.tracked_job("sigterm-sync") as job:
        print("run", job.run_id, flush=True)
        for i in range(100):
            with jobtrace.client_run(f"client-{i:03d}") as client:
                client.incr(posts_processed=i + 1)
                if i == 5:
                    print("ready", flush=True)
                time.sleep(0.05)
"""

ASYNC_JOB = """
    import asyncio
    import jobtrace
    jobtrace.configure_from_env()

    @jobtrace.tracked_job("sigterm-async")
    async def main():
        print("run", jobtrace.current_run_id(), flush=True)
        for i in range(100):
            async with jobtrace.client_run(f"client-{i:03d}") as client:
                client.incr(posts_processed=i + 1)
                if i == 5:
                    print("ready", flush=True)
                await asyncio.sleep(0.05)

    asyncio.run(main())
"""


def _check_interrupted(emulator: AirtableEmulator, signame: str) -> None:
    [job] = records(emulator, JOBS)
    assert job["Status"] == "Interrupted"
    assert signame in job["System Notes"].splitlines()[-1]
    assert "End Time" in job
    clients = by_client(emulator)
    finished = [c for c, f in clients.items() if f["Status"] == "Completed"]
    interrupted = [c for c, f in clients.items() if f["Status"] == "Interrupted"]
    assert len(interrupted) == 1, clients
    assert signame in clients[interrupted[0]]["System Notes"].splitlines()[-1]
    assert "End Time" in clients[interrupted[0]]
    assert len(finished) == len(clients) - 1
    # Roll-ups exact: the finished clients, not the one the signal cut short, and none counted failed.
    assert job["Clients Processed"] == len(finished)
    assert job.get("Clients Failed", 0) == 0
    assert job["Posts Processed"] == sum(clients[c]["Posts Processed"] for c in finished)


@pytest.mark.parametrize("code", [SYNC_JOB, ASYNC_JOB], ids=["sync", "asyncio.run"])
def test_sigterm_ends_the_job_and_its_client_run_as_interrupted_delivers_and_exits_143(
    emulator: AirtableEmulator, journal_path: Path, code: str
) -> None:
    proc = spawn(code, child_env(emulator, journal_path))
    wait_for_line(proc, "ready")
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode in (-signal.SIGTERM, 143)  # killed by SIGTERM, as a shell's $? says: 143
    assert took < 10.0
    _check_interrupted(emulator, "SIGTERM")


def test_sigterm_keeps_the_grace_bound_while_airtable_hangs(emulator: AirtableEmulator, journal_path: Path) -> None:
    code = """
    import time
    import jobtrace
    from jobtrace.sinks import AirtableSink
    jobtrace.configure([AirtableSink.from_env(timeout=(2.0, 60.0))], exit_timeout=2.0)
    with jobtrace.tracked_job("hangs") as job:
        with jobtrace.client_run("acme") as client:
            client.incr(posts_processed=3)
            print("ready", flush=True)
            time.sleep(60)
    """
    emulator.inject("delay", count=None, method="PATCH", delay=30.0)  # Airtable answers nothing for 30 s
    proc = spawn(code, child_env(emulator, journal_path))
    wait_for_line(proc, "ready")
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode in (-signal.SIGTERM, 143)
    assert took < 3.5, f"took {took:.1f} s for a 2 s bound"
    assert "kept in the journal" in err
    # What could not be delivered in time is in the journal: replay delivers it, Interrupted.
    emulator.clear_faults()
    from jobtrace.sinks.airtable import replay

    result = replay(
        emulator.api_key,
        "appJobtraceLife01",
        journal_path=journal_path,
        endpoint_url=emulator.url,
        timeout=30,
        rate_limit_penalty=1.0,
    )
    assert result.ok
    [job] = records(emulator, JOBS)
    [client] = records(emulator, CLIENTS)
    assert (job["Status"], client["Status"], client["Posts Processed"]) == ("Interrupted", "Interrupted", 3)


def test_an_application_sigterm_handler_is_never_replaced_and_the_exit_path_ends_open_runs(
    emulator: AirtableEmulator, journal_path: Path
) -> None:
    code = """
    import signal, sys, threading, time
    import jobtrace
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: (print("app handler", flush=True), stop.set()))
    jobtrace.configure_from_env()
    print("handler kept", signal.getsignal(signal.SIGTERM).__name__ == "<lambda>", flush=True)

    def work():
        with jobtrace.tracked_job("in-a-thread"), jobtrace.client_run("acme"):
            print("ready", flush=True)
            time.sleep(60)

    threading.Thread(target=work, daemon=True).start()
    stop.wait(30)
    # the application ends its own way; the daemon thread's runs are still open
    """
    proc = spawn(code, child_env(emulator, journal_path))
    assert wait_for_line(proc, "handler kept") == "True"
    wait_for_line(proc, "ready")
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert "app handler" in out
    assert proc.returncode == 0  # the application's handler decided, not jobtrace
    [job] = records(emulator, JOBS)
    [client] = records(emulator, CLIENTS)
    for record in (job, client):
        assert record["Status"] == "Interrupted"
        assert record["System Notes"].splitlines()[-1].endswith("the process exited while the run was open")


def test_configure_handle_signals_false_installs_no_handler(emulator: AirtableEmulator, journal_path: Path) -> None:
    code = """
    import signal
    import jobtrace
    jobtrace.configure_from_env(); jobtrace.configure(None, handle_signals=False)
    with jobtrace.tracked_job("x"):
        print("default", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
    jobtrace.configure(None)
    print("installed", signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, flush=True)
    """
    proc = spawn(code, child_env(emulator, journal_path))
    assert wait_for_line(proc, "default") == "True"
    assert wait_for_line(proc, "installed") == "True"
    proc.communicate(timeout=30)


def test_ctrl_c_under_asyncio_run_interrupts_and_does_not_count_clients_failed(
    emulator: AirtableEmulator, journal_path: Path
) -> None:
    code = ASYNC_JOB.replace(
        "await asyncio.sleep(0.05)",
        "await asyncio.gather(asyncio.sleep(0.05), asyncio.sleep(0.05))",
    )
    proc = spawn(code, child_env(emulator, journal_path))
    wait_for_line(proc, "ready")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    _check_interrupted(emulator, "Ctrl-C")


def test_a_task_cancelled_while_the_process_goes_on_is_cancelled() -> None:
    sink = MemorySink()
    previous = jobtrace.configure([sink], strict=True)
    try:

        @jobtrace.tracked_job("cancelled")
        async def job() -> None:
            async with jobtrace.client_run("acme"):
                await asyncio.sleep(10)

        async def main() -> None:
            task = asyncio.create_task(job())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
    finally:
        jobtrace.restore(previous)
    assert [r["Status"] for r in sink.job_records()] == ["Cancelled"]
    assert [r["Status"] for r in sink.client_records()] == ["Cancelled"]


def test_sigterm_ends_the_process_within_the_bound_even_when_a_non_daemon_thread_keeps_it_alive(
    emulator: AirtableEmulator, journal_path: Path
) -> None:
    code = """
    import threading, time
    import jobtrace
    from jobtrace.sinks import AirtableSink
    jobtrace.configure([AirtableSink.from_env()], exit_timeout=3.0)

    def work():
        with jobtrace.tracked_job("worker-thread"), jobtrace.client_run("acme"):
            print("ready", flush=True)
            time.sleep(60)   # never returns in time: the interpreter would wait for this thread

    worker = threading.Thread(target=work)   # not a daemon
    worker.start()
    worker.join()
    """
    proc = spawn(code, child_env(emulator, journal_path))
    wait_for_line(proc, "ready")
    time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode in (-signal.SIGTERM, 143)
    assert took < 4.5, f"took {took:.1f} s for a 3 s bound"
    [job] = records(emulator, JOBS)
    [client] = records(emulator, CLIENTS)
    assert (job["Status"], client["Status"]) == ("Interrupted", "Interrupted")
    assert "SIGTERM" in client["System Notes"].splitlines()[-1]
