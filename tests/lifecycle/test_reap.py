"""Lost hosts: the Last Heartbeat field, `jobtrace reap`, `jobtrace close`, `jobtrace check`."""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from jobtrace import cli
from jobtrace.sinks.airtable import make_api
from jobtrace.testing import AirtableEmulator

from .conftest import BASE_ID, CLIENTS, JOBS, by_client, child_env, records, wait_for_line

JOB = """
    import sys, time
    import jobtrace
    from jobtrace.sinks import AirtableSink
    jobtrace.configure([AirtableSink.from_env(heartbeat_interval=1.0)])
    with jobtrace.tracked_job("lost-host") as job:
        for i in range(3):
            with jobtrace.client_run(f"{sys.argv[1]}-done-{i}") as client:
                client.incr(posts_processed=5)
        with jobtrace.client_run(f"{sys.argv[1]}-open"):
            jobtrace.flush(10)
            print("run", job.run_id, flush=True)
            time.sleep(60)
"""


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _env(emulator: AirtableEmulator, journal: Path) -> dict[str, str]:
    return child_env(emulator, journal)


def _job(emulator: AirtableEmulator, run_id: str) -> dict[str, object]:
    return next(r for r in records(emulator, JOBS) if r["Run ID"] == run_id)


def test_a_live_job_refreshes_its_heartbeat_about_once_an_interval(
    hb_emulator: AirtableEmulator, tmp_path: Path
) -> None:
    proc, run_id = _start(hb_emulator, tmp_path / "j.sqlite3", "a")
    try:
        hb_emulator.clear_requests()
        first = _ts(str(_job(hb_emulator, run_id)["Last Heartbeat"]))
        time.sleep(3.2)
        last = _ts(str(_job(hb_emulator, run_id)["Last Heartbeat"]))
        writes = [r for r in hb_emulator.requests if r.method == "PATCH"]
        assert last - first >= 1.5
        assert time.time() - last < 2.0
        assert 2 <= len(writes) <= 5, writes  # about one a second here (heartbeat_interval=1.0)
    finally:
        proc.kill()  # type: ignore[attr-defined]
        proc.wait()  # type: ignore[attr-defined]


def _start(emulator: AirtableEmulator, journal: Path, name: str) -> tuple[object, str]:
    import subprocess
    import sys
    import textwrap

    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(JOB), name],
        env=_env(emulator, journal),
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, wait_for_line(proc, "run")  # type: ignore[arg-type]


def test_reap_ends_the_runs_of_a_lost_host_and_never_a_live_one(
    hb_emulator: AirtableEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hb_emulator.rate_limit = False  # two jobs and the command share the base; not what this is about
    dead, dead_run = _start(hb_emulator, tmp_path / "dead.sqlite3", "dead")
    time.sleep(1.1)  # run IDs are per second (unique across processes: issue 11)
    live, live_run = _start(hb_emulator, tmp_path / "live.sqlite3", "live")
    try:
        dead.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
        dead.wait()  # type: ignore[attr-defined]
        killed = time.time()
        for path in tmp_path.glob("dead.sqlite3*"):  # the host is lost, and its disk with it
            if path.is_file():
                path.unlink()
        time.sleep(3.5)
        env = _env(hb_emulator, tmp_path / "unused")
        assert cli.main(["reap", "--older-than", "3s", "--dry-run"], env=env) == 0
        out = capsys.readouterr().out
        assert dead_run in out and "would end" in out and live_run not in out
        assert _job(hb_emulator, dead_run)["Status"] == "Running"  # a dry run changes nothing

        assert cli.main(["reap", "--older-than", "3s"], env=env) == 0
        out = capsys.readouterr().out
        assert "2 run(s) ended" in out, out
        job = _job(hb_emulator, dead_run)
        assert job["Status"] == "Interrupted"
        assert _ts(str(job["End Time"])) <= killed  # when it was last seen, not when it was found
        assert "jobtrace reap" in str(job["System Notes"]).splitlines()[-1]
        assert (job["Clients Processed"], job["Posts Processed"]) == (3, 15)
        clients = by_client(hb_emulator)
        assert clients["dead-open"]["Status"] == "Interrupted"
        assert _job(hb_emulator, live_run)["Status"] == "Running"
        assert clients["live-open"]["Status"] == "Running"
    finally:
        live.kill()  # type: ignore[attr-defined]
        live.wait()  # type: ignore[attr-defined]


def test_reap_rereads_a_record_just_before_writing_so_a_run_that_ended_meanwhile_keeps_its_status(
    emulator: AirtableEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.rate_limit = False  # the command's requests come in a burst; the rate limit is not tested here
    api = make_api(emulator.api_key, emulator.url)
    table = api.table(BASE_ID, JOBS)
    record = table.create({"Run ID": "250101-000000", "Status": "Running", "Start Time": "2025-01-01T00:00:00.000Z"})
    # The re-read waits 1 s in the emulator; meanwhile the run ends by itself.
    emulator.inject("delay", count=1, method="GET", path_contains=f"/{record['id']}", delay=1.0)
    ender = threading.Timer(0.5, lambda: api.table(BASE_ID, JOBS).update(record["id"], {"Status": "Completed"}))
    ender.start()
    env = _env(emulator, tmp_path / "unused")
    assert cli.main(["reap", "--older-than", "1h"], env=env) == 0
    ender.join()
    out = capsys.readouterr().out
    assert "left alone" in out
    assert table.get(record["id"])["fields"]["Status"] == "Completed"


def test_reap_without_a_heartbeat_field_needs_older_than(
    emulator: AirtableEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.rate_limit = False  # the command's requests come in a burst; the rate limit is not tested here
    env = _env(emulator, tmp_path / "unused")
    assert cli.main(["reap"], env=env) == 1
    assert "no 'Last Heartbeat' field" in capsys.readouterr().err
    api = make_api(emulator.api_key, emulator.url)
    api.table(BASE_ID, JOBS).create(
        {"Run ID": "250101-000000", "Status": "Running", "Start Time": "2025-01-01T00:00:00.000Z"}
    )
    assert cli.main(["reap", "--older-than", "1d"], env=env) == 0
    out = capsys.readouterr().out
    assert "1 run(s) ended" in out and "judged by their Start Time" in out
    [job] = records(emulator, JOBS)
    assert job["Status"] == "Interrupted"


def test_close_ends_one_run_by_hand_once(
    emulator: AirtableEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.rate_limit = False  # the command's requests come in a burst; the rate limit is not tested here
    api = make_api(emulator.api_key, emulator.url)
    api.table(BASE_ID, CLIENTS).create({"Run ID": "250101-000000-acme", "Client ID": "acme", "Status": "Running"})
    env = _env(emulator, tmp_path / "unused")
    assert cli.main(["close", "250101-000000-acme", "--status", "failed", "--note", "host lost"], env=env) == 0
    [client] = records(emulator, CLIENTS)
    assert client["Status"] == "Failed" and "End Time" in client
    assert client["System Notes"].endswith("Closed by hand (jobtrace close): host lost")
    capsys.readouterr()
    assert cli.main(["close", "250101-000000-acme"], env=env) == 1
    assert "ended already (Failed)" in capsys.readouterr().err
    assert cli.main(["close", "250101-000000-acme", "--status", "running"], env=env) == 1
    assert cli.main(["close", "250101-000009"], env=env) == 1
    assert "no run 250101-000009" in capsys.readouterr().err


def test_check_says_what_a_missing_heartbeat_field_costs(
    emulator: AirtableEmulator, hb_emulator: AirtableEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["check"], env=_env(emulator, tmp_path / "j")) == 0
    out = capsys.readouterr().out
    assert "no 'Last Heartbeat' field" in out and "jobtrace reap" in out
    assert cli.main(["check"], env=_env(hb_emulator, tmp_path / "j")) == 0
    assert "Last Heartbeat" not in capsys.readouterr().out
