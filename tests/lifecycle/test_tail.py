"""The tail is never lost: journaled at once, bounded exits, journal failures told truthfully."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jobtrace
from jobtrace import cli
from jobtrace.delivery.journal import Journal
from jobtrace.sinks import AirtableSink
from jobtrace.testing import AirtableEmulator

from .conftest import BASE_ID, child_env, spawn, wait_for_line


def _sink(emulator: AirtableEmulator, journal: Path, **kwargs: object) -> AirtableSink:
    return AirtableSink(
        emulator.api_key,
        BASE_ID,
        endpoint_url=emulator.url,
        journal_path=journal,
        rate_limit_penalty=1.0,
        backoff_initial=0.05,
        backoff_max=0.5,
        **kwargs,  # type: ignore[arg-type]
    )


def _journaled(journal: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect(journal, timeout=5)
    try:
        return [json.loads(f) for (f,) in conn.execute("SELECT fields FROM pending")]
    finally:
        conn.close()


def test_a_change_is_journaled_within_a_fraction_of_a_second_while_a_request_is_in_flight(
    emulator: AirtableEmulator, journal_path: Path
) -> None:
    sink = _sink(emulator, journal_path, timeout=(2.0, 30.0))
    previous = jobtrace.configure([sink], strict=True)
    try:
        emulator.inject("delay", count=None, method="PATCH", delay=5.0)  # every write hangs 5 s
        with jobtrace.tracked_job("slow-airtable"):
            with jobtrace.client_run("first"):
                pass
            time.sleep(0.5)  # the writer is now inside its 5-second request
            with jobtrace.client_run("second") as client:
                client.incr(posts_processed=7)
            made = time.monotonic()
            while time.monotonic() - made < 2.0:
                if any(
                    f.get("Client ID") == "second" and f.get("Status") == "Completed" for f in _journaled(journal_path)
                ):
                    break
                time.sleep(0.02)
            took = time.monotonic() - made
            assert took < 0.5, f"the change took {took:.2f} s to reach the journal"
    finally:
        emulator.clear_faults()
        jobtrace.shutdown(10.0)
        jobtrace.restore(previous)


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(60)
"""


def test_flush_and_shutdown_keep_their_bounds_while_another_process_holds_the_journal_lock(
    emulator: AirtableEmulator, journal_path: Path
) -> None:
    sink = _sink(emulator, journal_path)
    previous = jobtrace.configure([sink], strict=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(journal_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        emulator.set_down(True)
        with jobtrace.tracked_job("locked-journal"):
            for i in range(5):
                with jobtrace.client_run(f"c{i}"):
                    pass
        start = time.monotonic()
        assert jobtrace.flush(timeout=1.0) is False
        assert time.monotonic() - start < 1.5
        start = time.monotonic()
        jobtrace.shutdown(2.0)
        assert time.monotonic() - start < 2.5
    finally:
        holder.kill()
        holder.wait()
        emulator.set_down(False)
        jobtrace.restore(previous)


def test_the_exit_bound_is_one_for_all_sinks_together(emulator: AirtableEmulator, journal_path: Path) -> None:
    code = """
    import time
    import jobtrace
    from jobtrace.sinks import AirtableSink
    sinks = [AirtableSink.from_env(check_schema=False, backoff_max=0.2) for _ in range(3)]
    jobtrace.configure(sinks, exit_timeout=1.5)
    with jobtrace.tracked_job("three-sinks"):
        with jobtrace.client_run("acme"):
            pass
    print("done", flush=True)
    """
    emulator.set_down(True)
    proc = spawn(code, child_env(emulator, journal_path))
    wait_for_line(proc, "done")
    start = time.monotonic()
    proc.communicate(timeout=30)
    took = time.monotonic() - start
    assert proc.returncode == 0
    assert took < 3.0, f"exit took {took:.1f} s for a total bound of 1.5 s over 3 sinks (not 4.5 s)"


def test_a_full_disk_is_told_truthfully_at_exit(emulator: AirtableEmulator, journal_path: Path) -> None:
    code = """
    import os, resource, signal
    import jobtrace
    jobtrace.configure_from_env(); jobtrace.configure(None)  # creates nothing yet
    from jobtrace.sinks import AirtableSink
    sink = AirtableSink.from_env(check_schema=False, backoff_max=0.2)
    jobtrace.configure([sink], exit_timeout=2.0)
    import time; time.sleep(0.5)  # the journal exists; now the disk is full
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    size = sum(os.path.getsize(p) for p in [os.environ["JOBTRACE_JOURNAL"]])
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    with jobtrace.tracked_job("full-disk"):
        for i in range(30):
            with jobtrace.client_run(f"c{i}") as client:
                client.note("x" * 5000)
    """
    emulator.set_down(True)
    proc = spawn(code, child_env(emulator, journal_path))
    _, err = proc.communicate(timeout=60)
    assert "could NOT be kept" in err, err[-3000:]
    line = next(x for x in err.splitlines() if "could NOT be kept" in x)
    kept = Journal(journal_path).counts(BASE_ID)[0]
    # "N record(s) not delivered; K kept in the journal ..., M could NOT be kept": K matches the journal.
    words = line.split()
    not_delivered = int(words[words.index("record(s)") - 1])
    said_kept = int(words[words.index("kept") - 1])
    assert said_kept == kept
    assert not_delivered == 31
    assert said_kept < not_delivered


@pytest.mark.parametrize("kind", ["corrupt", "directory"])
def test_replay_exits_1_with_one_line_on_a_journal_it_cannot_use(
    emulator: AirtableEmulator, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "journal.sqlite3"
    if kind == "corrupt":
        path.write_bytes(b"this is not a database" * 100)
    else:
        path.mkdir()
    env = {
        "AIRTABLE_API_KEY": emulator.api_key,
        "AIRTABLE_BASE_ID": BASE_ID,
        "AIRTABLE_ENDPOINT_URL": emulator.url,
        "JOBTRACE_JOURNAL": str(path),
    }
    assert cli.main(["replay"], env=env) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("jobtrace: error: cannot use the journal")


def test_replay_tells_what_it_did_not_take(emulator: AirtableEmulator, journal_path: Path) -> None:
    # A live process's rows (the child still runs) and another base's rows stay where they are.
    code = """
    import time
    import jobtrace
    jobtrace.configure_from_env()
    with jobtrace.tracked_job("still-running"):
        print("ready", flush=True)
        time.sleep(60)
    """
    emulator.set_down(True)
    proc = spawn(code, child_env(emulator, journal_path))
    other = spawn(code, {**child_env(emulator, journal_path), "AIRTABLE_BASE_ID": "appOtherBase00001"})
    try:
        wait_for_line(proc, "ready")
        wait_for_line(other, "ready")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # both jobs' starts are journaled
            conn = sqlite3.connect(journal_path, timeout=5)
            try:
                bases = {b for (b,) in conn.execute("SELECT DISTINCT base_id FROM pending")}
            finally:
                conn.close()
            if len(bases) == 2:
                break
            time.sleep(0.05)
        other.kill()
        other.wait()
        # Airtable stays down: the live job keeps its rows, and replay has nothing of this base to send.
        out = subprocess.run(
            [sys.executable, "-m", "jobtrace.cli", "replay", "--timeout", "5"],
            env=child_env(emulator, journal_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "1 row(s) owned by a live process" in out.stdout, out.stdout + out.stderr
        assert "1 row(s) of other bases" in out.stdout
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_an_unusable_journal_is_told_at_exit_as_records_not_kept(emulator: AirtableEmulator, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the journal's directory should be")
    code = """
    import jobtrace
    from jobtrace.sinks import AirtableSink
    jobtrace.configure([AirtableSink.from_env(check_schema=False, backoff_max=0.2)], exit_timeout=1.0)
    with jobtrace.tracked_job("no-journal"):
        for i in range(4):
            with jobtrace.client_run(f"c{i}"):
                pass
    """
    emulator.set_down(True)
    proc = spawn(code, child_env(emulator, blocker / "journal.sqlite3"))
    _, err = proc.communicate(timeout=60)
    assert "cannot open the journal" in err
    line = next(x for x in err.splitlines() if "could NOT be kept" in x)
    assert "5 record(s)" in line and "0 kept" in line and "5 could NOT be kept" in line and "memory" in line
