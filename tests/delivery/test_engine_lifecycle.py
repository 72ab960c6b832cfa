"""The engine's write-ahead journal, pacing, refusals and bounds, on in-memory transports with faults.

What the AirtableSink relies on, shown without HTTP: a change is journaled at
once (also while a request hangs), a rate limit pauses every send through the
limiter, what no request can carry is set aside, the bounds hold while another
process holds the journal's lock, a full disk is told truthfully, and a killed
process's rows are delivered by the next engine.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jobtrace
from jobtrace.delivery import DeliveryEngine, EngineSink, MemoryTransport, Outcome, Refused, RetryAfter, Throttle
from jobtrace.delivery.journal import Journal, RunEvent, record_key

TABLE = "Client Run Results"
KEY = ("Run ID",)
DEST = "memory:test"


@dataclass
class TimedTransport(MemoryTransport):
    """A MemoryTransport that notes when each send began, and can hold sends until ``gate`` is set."""

    gate: threading.Event = field(default_factory=threading.Event)
    times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate.set()

    def send(self, table: str, key_fields: Sequence[str], records: Sequence[Mapping[str, Any]]) -> Outcome:
        self.times.append(time.monotonic())
        self.gate.wait(10.0)
        return super().send(table, key_fields, records)


def _journaled(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path, timeout=5)
    try:
        return [json.loads(f) for (f,) in conn.execute("SELECT fields FROM pending")]
    finally:
        conn.close()


def test_a_change_reaches_the_journal_within_a_fraction_of_a_second_while_a_request_hangs(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    transport = TimedTransport()
    transport.gate.clear()  # every send hangs until the test lets it go
    engine = DeliveryEngine(transport, journal=Journal(path), destination=DEST, requests_per_second=1_000)
    try:
        engine.submit(TABLE, KEY, {"Run ID": "first", "Status": "Completed"})
        deadline = time.monotonic() + 5
        while not transport.times and time.monotonic() < deadline:
            time.sleep(0.01)
        assert transport.times, "the first record was never sent"
        engine.submit(TABLE, KEY, {"Run ID": "second", "Status": "Completed"})
        made = time.monotonic()
        while time.monotonic() - made < 2.0 and not any(f.get("Run ID") == "second" for f in _journaled(path)):
            time.sleep(0.01)
        took = time.monotonic() - made
        assert took < 0.5, f"the change took {took:.2f} s to reach the journal while a request was in flight"
    finally:
        transport.gate.set()
        assert engine.close(5)
    assert sorted(r["Run ID"] for r in transport.records(TABLE)) == ["first", "second"]
    assert _journaled(path) == []


def test_a_rate_limit_pauses_every_send_through_the_limiter() -> None:
    transport = TimedTransport()
    limiter = Throttle(1_000)
    transport.fail(RetryAfter(0.4, "HTTP 429", pause_all=True), count=1)
    engine = DeliveryEngine(transport, limiter=limiter, backoff_initial=5.0)
    try:
        engine.submit(TABLE, KEY, {"Run ID": "r-1", "Status": "Completed"})
        assert engine.flush(5)
    finally:
        engine.close(5)
    first, second = transport.times
    assert second - first >= 0.35  # the penalty, not the (longer) backoff
    assert second - first < 3.0
    assert engine.stats.rate_limited == 1 and engine.stats.retries == 0
    assert transport.records(TABLE) == [{"Run ID": "r-1", "Status": "Completed"}]


def test_sends_are_evenly_spaced_within_the_limiters_budget() -> None:
    transport = TimedTransport()
    engine = DeliveryEngine(transport, limiter=Throttle(10))  # one send every 0.1 s
    try:
        for table in ("A", "B", "C", "D"):  # four tables: four sends
            engine.submit(table, KEY, {"Run ID": "r-1", "Status": "Completed"})
        assert engine.flush(5)
    finally:
        engine.close(5)
    gaps = [b - a for a, b in zip(transport.times, transport.times[1:])]
    assert len(gaps) == 3 and min(gaps) >= 0.09, gaps


def test_a_delay_the_backend_names_is_capped_by_backoff_max() -> None:
    transport = MemoryTransport()
    transport.fail(RetryAfter(30.0, "HTTP 401: fix the token"), count=1)
    engine = DeliveryEngine(transport, requests_per_second=1_000, backoff_max=0.2)
    try:
        engine.submit(TABLE, KEY, {"Run ID": "r-1", "Status": "Completed"})
        started = time.monotonic()
        assert engine.flush(3)
        assert time.monotonic() - started < 1.0
    finally:
        engine.close(5)
    assert engine.stats.retries == 1


def test_a_value_no_request_can_carry_is_set_aside_and_the_rest_of_the_record_goes(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    transport = MemoryTransport()
    engine = DeliveryEngine(transport, journal=journal, destination=DEST, requests_per_second=1_000)
    try:
        engine.submit(TABLE, KEY, {"Run ID": "r-1", "Status": "Completed", "Score": math.nan})
        assert engine.flush(5)
    finally:
        engine.close(5)
    assert transport.records(TABLE) == [{"Run ID": "r-1", "Status": "Completed"}]
    assert [r.records for r in transport.requests] == [({"Run ID": "r-1", "Status": "Completed"},)]
    (aside,) = engine.set_aside
    assert aside.field == "Score" and math.isnan(aside.value)
    ((row, reason),) = journal.undeliverable(DEST)
    assert set(row.fields) == {"Run ID", "Score"} and "JSON" in reason


@dataclass
class RaisingTransport(MemoryTransport):
    """Raises on any batch holding a record with a ``Boom`` field, like a client that cannot encode a value."""

    def send(self, table: str, key_fields: Sequence[str], records: Sequence[Mapping[str, Any]]) -> Outcome:
        if any("Boom" in r for r in records):
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return super().send(table, key_fields, records)


def test_a_record_the_transport_raises_on_is_set_aside_and_the_others_go_through() -> None:
    transport = RaisingTransport()
    transport.fail(RetryAfter(0.05, "hold on"), count=1)  # let a batch of several pile up
    engine = DeliveryEngine(transport, requests_per_second=1_000, backoff_initial=0.01)
    try:
        for i in range(6):
            engine.submit(TABLE, KEY, {"Run ID": f"r-{i}", "Status": "Completed", **({"Boom": 1} if i == 2 else {})})
        assert engine.flush(5)
    finally:
        engine.close(5)
    assert sorted(r["Run ID"] for r in transport.records(TABLE)) == ["r-0", "r-1", "r-3", "r-4", "r-5"]
    (aside,) = engine.set_aside
    assert aside.field is None and aside.key == ("r-2",) and "UnicodeEncodeError" in aside.reason
    assert engine.stats.batches_split >= 1


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(60)
"""


def test_flush_and_close_keep_their_bounds_while_another_process_holds_the_journal_lock(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    transport = MemoryTransport()
    transport.fail(RetryAfter(0.0, "HTTP 503"), count=None)
    engine = DeliveryEngine(transport, journal=Journal(path), destination=DEST, requests_per_second=1_000)
    assert engine.wait_ready(5)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        for i in range(5):
            engine.submit(TABLE, KEY, {"Run ID": f"r-{i}", "Status": "Completed"})
        started = time.monotonic()
        assert engine.flush(1.0) is False
        assert time.monotonic() - started < 1.5
        started = time.monotonic()
        assert engine.close(1.0) is False
        assert time.monotonic() - started < 1.5
    finally:
        holder.kill()
        holder.wait()
    assert engine.not_kept() == 5  # the journal never got them, and the engine says so


FULL_DISK = """
import json, math, os, resource, signal, sys, time
from jobtrace.delivery import DeliveryEngine, MemoryTransport, RetryAfter
from jobtrace.delivery.journal import Journal

path = sys.argv[1]
down = MemoryTransport()
down.fail(RetryAfter(0.0, "HTTP 503"), count=None)
engine = DeliveryEngine(down, journal=Journal(path), destination="memory:test", requests_per_second=1_000,
                        backoff_max=0.2)
engine.wait_ready(5)
time.sleep(0.3)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
size = os.path.getsize(path) + os.path.getsize(path + "-wal")
resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))  # the disk is full from now on
for i in range(30):
    engine.submit("Client Run Results", ["Run ID"], {"Run ID": f"r-{i}", "Notes": "x" * 5000})
engine.close(2.0)
print(json.dumps({"backlog": engine.backlog, "not_kept": engine.not_kept()}), flush=True)
"""


def test_a_full_disk_is_told_truthfully(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    told = json.loads(proc.stdout.strip().splitlines()[-1])
    kept = Journal(path).counts(DEST)[0]
    assert told["backlog"] == 30
    assert told["not_kept"] > 0, proc.stderr[-2000:]
    assert told["backlog"] - told["not_kept"] == kept  # what it says it kept is what the journal holds
    assert "could NOT be kept" in proc.stderr


KILLED = """
import os, signal, sys, time
from jobtrace.delivery import DeliveryEngine, MemoryTransport, RetryAfter
from jobtrace.delivery.journal import Journal

down = MemoryTransport()
down.fail(RetryAfter(0.0, "HTTP 503"), count=None)
engine = DeliveryEngine(down, journal=Journal(sys.argv[1]), destination="memory:test", requests_per_second=1_000)
for i in range(5):
    engine.submit("Client Run Results", ["Run ID"], {"Run ID": f"r-{i}", "Posts Processed": i})
time.sleep(0.5)
print("journaled", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_processs_rows_are_delivered_by_the_next_engine(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED), str(path)], capture_output=True, text=True)
    assert proc.returncode == -9 and "journaled" in proc.stdout
    up = MemoryTransport()
    engine = DeliveryEngine(up, journal=Journal(path), destination=DEST, requests_per_second=1_000)
    try:
        assert engine.flush(5)
    finally:
        engine.close(5)
    assert engine.stats.leftovers_claimed == 5
    assert {r["Run ID"]: r["Posts Processed"] for r in up.records(TABLE)} == {f"r-{i}": i for i in range(5)}
    assert Journal(path).counts(DEST) == (0, 0)


def test_a_refused_record_is_never_retried_unchanged() -> None:
    transport = MemoryTransport()
    transport.fail(Refused(None, "INVALID_RECORDS"), count=None, table="Bad")
    engine = DeliveryEngine(transport, requests_per_second=1_000)
    try:
        engine.submit("Bad", KEY, {"Run ID": "r-1"})
        engine.submit(TABLE, KEY, {"Run ID": "r-2"})
        assert engine.flush(5)
    finally:
        engine.close(5)
    assert [len(r.records) for r in transport.requests if r.table == "Bad"] == [1]
    assert transport.records(TABLE) == [{"Run ID": "r-2"}]


KILLED_JOB = """
import os, signal, sys, time
import jobtrace
from jobtrace.delivery import EngineSink, MemoryTransport, RetryAfter
from jobtrace.delivery.journal import Journal

down = MemoryTransport()
down.fail(RetryAfter(0.0, "HTTP 503"), count=None)
jobtrace.configure([EngineSink(down, journal=Journal(sys.argv[1]), destination="dict", requests_per_second=1_000)])
with jobtrace.tracked_job("post-scoring", run_id="251005-210247"):
    with jobtrace.client_run("acme") as client:
        client.incr(posts_processed=3)
    time.sleep(0.5)
    print("journaled", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_engine_sink_with_a_journal_hands_a_killed_jobs_changes_to_the_next_process(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    proc = subprocess.run([sys.executable, "-c", KILLED_JOB, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9 and "journaled" in proc.stdout, proc.stderr[-2000:]
    up = MemoryTransport()
    sink = EngineSink(up, journal=Journal(path), destination="dict", requests_per_second=1_000)
    previous = jobtrace.configure([sink])
    try:
        assert sink.flush(5)
    finally:
        jobtrace.restore(previous)
        sink.close(5)
    (job,) = up.records("Job Tracking")
    assert job["Run ID"] == "251005-210247" and job["Status"] == "Running"  # what the killed job had delivered
    (client,) = up.records("Client Run Results")
    assert client["Client ID"] == "acme" and client["Status"] == "Completed" and client["Posts Processed"] == 3


def test_records_of_runs_that_opened_or_ended_go_first_and_their_tables_other_records_ride_along() -> None:
    transport = TimedTransport()
    transport.gate.clear()  # the first send hangs: what comes meanwhile queues up behind it
    engine = DeliveryEngine(transport, requests_per_second=1_000)
    clients, jobs, keys = "Client Run Results", "Job Tracking", ("Run ID", "Client ID")
    try:
        engine.submit(jobs, KEY, {"Run ID": "r", "Status": "Running"})
        deadline = time.monotonic() + 5
        while not transport.times and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.submit(jobs, KEY, {"Run ID": "r", "Clients Processed": 1})  # a roll-up: the run is still open
        engine.submit(clients, keys, {"Run ID": "r-b", "Client ID": "b", "Posts Processed": 4})  # an update
        ended = RunEvent(clients, record_key(keys, {"Run ID": "r-a", "Client ID": "a"}), keys, opened=False)
        engine.submit(clients, keys, {"Run ID": "r-a", "Client ID": "a", "Status": "Completed"}, event=ended)
        time.sleep(0.2)  # all journaled
        transport.gate.set()
        assert engine.flush(5)
    finally:
        transport.gate.set()
        engine.close(5)
    sent = [(r.table, [rec.get("Client ID") for rec in r.records]) for r in transport.requests]
    # The ended client run first, with the other client record riding along; the job's roll-up after it.
    assert sent == [(jobs, [None]), (clients, ["a", "b"]), (jobs, [None])], sent


def test_runs_that_ended_go_in_the_order_they_ended_so_a_job_never_ends_before_its_client_runs() -> None:
    transport = TimedTransport()
    transport.gate.clear()
    engine = DeliveryEngine(transport, requests_per_second=1_000)
    clients, jobs, keys = "Client Run Results", "Job Tracking", ("Run ID", "Client ID")
    try:
        engine.submit("Other", KEY, {"Run ID": "w"})  # in flight, hanging, while the rest queues up
        deadline = time.monotonic() + 5
        while not transport.times and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.submit(jobs, KEY, {"Run ID": "r", "Clients Processed": 0})  # the job's record waits first ...
        client_ended = RunEvent(clients, record_key(keys, {"Run ID": "r-a", "Client ID": "a"}), keys, opened=False)
        engine.submit(clients, keys, {"Run ID": "r-a", "Client ID": "a", "Status": "Completed"}, event=client_ended)
        job_ended = RunEvent(jobs, record_key(KEY, {"Run ID": "r"}), KEY, opened=False)
        engine.submit(jobs, KEY, {"Run ID": "r", "Status": "Completed", "Clients Processed": 1}, event=job_ended)
        time.sleep(0.2)
        transport.gate.set()
        assert engine.flush(5)
    finally:
        transport.gate.set()
        engine.close(5)
    # ... but the client run ended first, so it reaches the backend first.
    assert [r.table for r in transport.requests] == ["Other", clients, jobs]
