"""Delivery off the job's thread: order, exact counters, read barriers, isolation, exit.

These tests configure sinks *without* ``strict`` (as production does), so
changes reach the sinks through the dispatcher thread, not on the job's
thread. (Strict mode delivers on the caller's thread; the rest of the suite
runs that way.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

import jobtrace
from jobtrace.changes import CLIENT, END, JOB, START, UPDATE, Change
from jobtrace.records import utc_iso
from jobtrace.sinks import LogSink, MemorySink, Sink
from jobtrace.testing import RecordingSink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def relaxed() -> Iterator[tuple[MemorySink, RecordingSink]]:
    """A MemorySink and a RecordingSink, configured without strict (delivery through the dispatcher)."""
    memory, recorder = MemorySink(), RecordingSink()
    prev = jobtrace.configure([memory, recorder])
    yield memory, recorder
    jobtrace.restore(prev)


class ThreadNoting(Sink):
    """Remembers which thread wrote each change, and can be made slow."""

    def __init__(self, delay: float = 0.0) -> None:
        self.writes: list[tuple[str, str, int]] = []
        self.delay = delay

    def write(self, change: Change) -> None:
        self.writes.append((change.kind, change.event, threading.get_ident()))
        if self.delay:
            time.sleep(self.delay)

    def client_writes(self) -> list[tuple[str, str, int]]:
        return [w for w in self.writes if w[0] == CLIENT]


def test_client_runs_are_handed_to_sinks_off_the_jobs_thread() -> None:
    noting = ThreadNoting()
    prev = jobtrace.configure([noting])
    try:
        with jobtrace.tracked_job("post-scoring"):
            for i in range(50):
                with jobtrace.client_run(f"c{i}") as client:
                    client.incr(posts_processed=1)
        assert jobtrace.flush(10)
    finally:
        jobtrace.restore(prev)
    me = threading.get_ident()
    assert len(noting.client_writes()) == 50 * 3  # every client change arrived ...
    assert all(thread != me for _, _, thread in noting.client_writes())  # ... none on the job's thread
    # The job's own start and end are delivered in line (after what is queued): sync points.
    assert [(kind, event) for kind, event, thread in noting.writes if thread == me] == [(JOB, START), (JOB, END)]
    assert noting.writes[-1][:2] == (JOB, END)


def test_a_slow_sink_does_not_slow_the_client_runs() -> None:
    slow = ThreadNoting(delay=0.02)  # 20 ms a change: 60 ms a client run if it were in line
    prev = jobtrace.configure([slow])
    try:
        with jobtrace.tracked_job("post-scoring"):
            started = time.perf_counter()
            for i in range(20):
                with jobtrace.client_run(f"c{i}") as client:
                    client.incr(posts_processed=1)
            elapsed = time.perf_counter() - started
        assert jobtrace.flush(10)
    finally:
        jobtrace.restore(prev)
    assert elapsed < 0.5, f"20 client runs took {elapsed:.2f} s with a sink that needs 1.2 s"
    assert len(slow.client_writes()) == 20 * 3  # nothing lost
    assert slow.writes[-1][:2] == (JOB, END)


def test_a_hung_sink_holds_a_jobs_end_for_a_bounded_time_only() -> None:
    release = threading.Event()

    class Hung(Sink):
        def write(self, change: Change) -> None:
            if change.kind == CLIENT:
                release.wait(30)

    prev = jobtrace.configure([Hung()])
    try:
        started = time.monotonic()
        with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("c1"):
            pass
        waited = time.monotonic() - started
    finally:
        release.set()
        jobtrace.flush(10)
        jobtrace.restore(prev)
    from jobtrace.records import JOB_END_WAIT

    assert JOB_END_WAIT - 0.5 <= waited < JOB_END_WAIT + 3.0


def test_each_records_changes_arrive_in_order_with_exact_counters(relaxed: tuple[MemorySink, RecordingSink]) -> None:
    memory, recorder = relaxed
    increments = 200

    def work(client_id: str) -> None:
        with jobtrace.client_run(client_id) as client:
            for _ in range(increments):
                client.incr(posts_processed=1, token_usage=10)

    with jobtrace.tracked_job("post-scoring") as job:
        threads = [threading.Thread(target=jobtrace.bind(work), args=(f"c{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i in range(6):
        changes = recorder.changes_of(CLIENT, f"c{i}")
        assert [c.event for c in changes] == [START] + [UPDATE] * increments + [END]
        totals = [c.fields["Posts Processed"] for c in changes if c.event == UPDATE]
        assert totals == list(range(1, increments + 1))  # absolute values, in order, none skipped
        times = [c.time for c in changes]
        assert times == sorted(times)
    job_changes = recorder.changes_of(JOB, run_id=job.run_id)
    assert job_changes[0].event == START and job_changes[-1].event == END
    final = memory.job_record(job.run_id)
    assert final is not None
    assert final["Posts Processed"] == 6 * increments and final["Token Usage"] == 6 * increments * 10
    assert final["Clients Processed"] == 6


def test_reads_see_every_change_made_before_them_from_any_thread(relaxed: tuple[MemorySink, RecordingSink]) -> None:
    memory, recorder = relaxed
    with jobtrace.tracked_job("post-scoring") as job:
        for i in range(300):
            with jobtrace.client_run(f"c{i}") as client:
                client.incr(posts_processed=2)
        # Still inside the job: no flush, no job end; the reads alone wait for the dispatcher.
        assert len(memory.client_records()) == 300
        assert all(r["Status"] == "Completed" for r in memory.client_records())
        assert memory.client_record(job.run_id, "c299") is not None
        assert len(recorder.changes_of(CLIENT)) == 900
        with jobtrace.client_run("late") as late:
            late.incr(posts_processed=5)
            assert late.fields()["Posts Processed"] == 5
            assert memory.client_record(job.run_id, "late")["Posts Processed"] == 5  # type: ignore[index]
    seen: list[int] = []
    with jobtrace.tracked_job("other") as other:
        t = threading.Thread(target=jobtrace.bind(lambda: [jobtrace.incr(posts_processed=1) for _ in range(100)]))
        t.start()
        t.join()
        seen.append(memory.job_record(other.run_id)["Posts Processed"])  # type: ignore[index]
    assert seen == [100]


def test_change_carries_the_time_it_happened(relaxed: tuple[MemorySink, RecordingSink]) -> None:
    _, recorder = relaxed
    before = time.time()
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("c1") as client:
        time.sleep(0.01)
        client.incr(posts_processed=1)
    after = time.time()
    start, update, end = recorder.changes_of(CLIENT, "c1")
    assert before <= start.time < update.time < end.time <= after
    assert start.fields["Start Time"] == utc_iso(start.time)
    assert end.fields["End Time"] == utc_iso(end.time)


def test_the_log_sink_logs_every_transition_in_order_with_run_and_client_ids() -> None:
    prev = jobtrace.configure([LogSink(logger=structlog.get_logger("jobtrace"))])
    try:
        with capture_logs() as logs:
            with jobtrace.tracked_job("post-scoring") as job:
                for cid in ("a", "b"):
                    with jobtrace.client_run(cid) as client:
                        client.incr(posts_processed=1)
            jobtrace.flush(5)
    finally:
        jobtrace.restore(prev)
    mine = [(e["event"], e.get("client_id")) for e in logs if e.get("run_id") == job.run_id]
    # The job's roll-up updates (at most one a second) may fall in between; the rest is exact.
    assert mine.index(("job.update", None)) > mine.index(("client.end", "a"))
    mine = [event for event in mine if event != ("job.update", None)]
    assert mine == [
        ("job.start", None),
        ("client.start", "a"),
        ("client.update", "a"),
        ("client.end", "a"),
        ("client.start", "b"),
        ("client.update", "b"),
        ("client.end", "b"),
        ("job.end", None),
    ]


def test_structlog_binding_for_the_users_own_lines_stays_in_line() -> None:
    prev = jobtrace.configure([LogSink(logger=structlog.get_logger("jobtrace"))])
    try:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme"):
                structlog.get_logger("user").info("scoring")
            jobtrace.flush(5)
    finally:
        jobtrace.restore(prev)
    (line,) = [e for e in logs if e["event"] == "scoring"]
    assert line["run_id"] == job.run_id and line["client_id"] == "acme"


def test_a_failing_sink_is_counted_per_change_and_never_reaches_the_job() -> None:
    class Failing(Sink):
        def write(self, change: Change) -> None:
            raise ConnectionError("down")

    good = MemorySink()
    before = jobtrace.diagnostics()["sink_errors"]
    prev = jobtrace.configure([Failing(), good])
    try:
        with jobtrace.tracked_job("post-scoring"):
            for i in range(10):
                with jobtrace.client_run(f"c{i}") as client:
                    client.incr(posts_processed=1)
        errors = jobtrace.diagnostics()["sink_errors"] - before
    finally:
        jobtrace.restore(prev)
    assert errors == good.write_count >= 10 * 3 + 2  # one error per change the healthy sink got
    assert len(good.client_records()) == 10


def _run_script(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBTRACE_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_nothing_queued_is_lost_when_the_process_exits(tmp_path: Path) -> None:
    out = tmp_path / "changes.txt"
    proc = _run_script(
        f"""
        import threading, time, jobtrace
        from jobtrace.sinks import Sink

        class Slow(Sink):
            def write(self, change):
                time.sleep(0.002)
                with open({str(out)!r}, "a") as fh:
                    fh.write(f"{{change.kind}} {{change.event}} {{change.client_id}}\\n")

        jobtrace.configure([Slow()])
        job = jobtrace.tracked_job("post-scoring").__enter__()   # never ended: the exit must still drain
        for i in range(200):
            with jobtrace.client_run(f"c{{i}}") as client:
                client.incr(posts_processed=1)
        print("queued", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    client_lines = [line for line in lines if line.startswith("client ")]
    assert len(client_lines) == 200 * 3
    assert client_lines[-1] == "client end c199"
    assert lines[0] == "job start None"


def test_the_exit_drain_is_bounded_when_a_sink_hangs(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = _run_script(
        """
        import threading, time, jobtrace
        from jobtrace.sinks import Sink

        class Hung(Sink):
            def write(self, change):
                if change.kind == "client":
                    threading.Event().wait()

        jobtrace.configure([Hung()], exit_timeout=1.0)
        job = jobtrace.tracked_job("post-scoring").__enter__()
        for i in range(3):
            with jobtrace.client_run(f"c{i}"):
                pass
        """,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "changes were still queued for the sinks at exit" in proc.stderr
    assert elapsed < 1.0 + 8.0  # the bound, plus an interpreter's start and exit on a loaded machine


def test_sinks_that_need_only_records_get_a_batchs_changes_of_a_record_merged() -> None:
    merged, every = MemorySink(), MemorySink()
    prev = jobtrace.configure([merged])
    try:
        with jobtrace.tracked_job("post-scoring") as job:
            for i in range(500):
                with jobtrace.client_run(f"c{i}") as client:
                    client.incr(posts_processed=1)
                    client.update(progress="done")
            records = merged.client_records()
            writes = merged.write_count
    finally:
        jobtrace.restore(prev)
    # The same job with a RecordingSink next to it: every change, so nothing is merged for either.
    recorder = RecordingSink()
    prev = jobtrace.configure([every, recorder])
    try:
        with jobtrace.tracked_job("post-scoring"):
            for i in range(500):
                with jobtrace.client_run(f"c{i}") as client:
                    client.incr(posts_processed=1)
                    client.update(progress="done")
        assert len(recorder.changes_of(CLIENT)) == 500 * 4
        assert every.write_count >= 500 * 4
    finally:
        jobtrace.restore(prev)
    assert len(records) == 500
    for record in records:
        assert record["Status"] == "Completed" and record["Posts Processed"] == 1 and record["Progress"] == "done"
        assert record["Start Time"] <= record["End Time"]
        assert record["Run ID"] == f"{job.run_id}-{record['Client ID']}"
    assert writes < 500 * 4  # merged: fewer changes handed over than transitions recorded
    strip = {"Run ID", "Start Time", "End Time"}
    assert [{k: v for k, v in r.items() if k not in strip} for r in records] == [
        {k: v for k, v in r.items() if k not in strip} for r in every.client_records()
    ]
