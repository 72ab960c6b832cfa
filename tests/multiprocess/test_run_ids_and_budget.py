"""Several processes and "hosts" on one base: unique run IDs, one shared request budget, Redis coming and going.

Real parts only: job processes of their own, the emulator over HTTP with
Airtable's rate limit on, a real redis-server (see conftest).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pyairtable
import pytest

import jobtrace
from jobtrace import cli
from jobtrace.run_ids import next_run_id_candidate
from jobtrace.sinks import AirtableSink
from jobtrace.testing import AirtableEmulator

from .conftest import BASE_ID, JOBS, Hosts, RedisServer, records_by_key


def job_spec(job_type: str, clients: int = 8, **more: Any) -> dict[str, Any]:
    return {"job_type": job_type, "clients": clients, "updates": 2, **more}


def assert_all_delivered(
    emulator: AirtableEmulator, results: list[dict[str, Any]], clients: int, updates: int = 2
) -> None:
    jobs, client_records = records_by_key(emulator)
    assert sorted(jobs) == sorted(r["run_id"] for r in results)
    for result in results:
        assert result["delivered"] is True
        job = jobs[result["run_id"]]
        assert job["Status"] == "Completed"
        assert job["Clients Processed"] == clients
        assert job["Posts Processed"] == updates * clients
    assert len(client_records) == clients * len(results)
    for result in results:
        for key, fields in client_records.items():
            if key.startswith(result["run_id"] + "-"):
                assert fields["Status"] == "Completed"
                assert fields["Posts Processed"] == updates


def rate_limited(emulator: AirtableEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.status == 429]


def test_processes_started_in_the_same_second_get_distinct_run_ids_and_one_record_each(
    emulator: AirtableEmulator, hosts: Hosts
) -> None:
    jobs = [hosts.spawn("host-a", job_spec(f"job-{i}")) for i in range(4)]
    start = hosts.start_together(jobs)
    results = hosts.wait(jobs)
    started = {int(r["job_started"]) for r in results}
    assert started == {int(start)}, "the processes did not start their jobs in the same second"
    run_ids = [r["run_id"] for r in results]
    assert len(set(run_ids)) == 4, run_ids
    # The next-free-second rule, across processes: the run IDs are consecutive seconds from the start.
    first = datetime.fromtimestamp(int(start), timezone.utc)
    assert sorted(run_ids) == [(first + timedelta(seconds=i)).strftime("%y%m%d-%H%M%S") for i in range(4)]
    assert_all_delivered(emulator, results, clients=8)
    assert rate_limited(emulator) == []


def test_two_hosts_sharing_redis_get_distinct_run_ids_and_one_record_each(
    emulator: AirtableEmulator, hosts: Hosts, redis_server: RedisServer
) -> None:
    jobs = [hosts.spawn(host, job_spec(f"{host}-{i}"), redis_server.url) for host in ("a", "b") for i in range(2)]
    hosts.start_together(jobs)
    results = hosts.wait(jobs)
    assert len({r["run_id"] for r in results}) == 4
    assert all(r["run_id_checks"]["claimed_in_redis"] >= 1 for r in results)
    assert all(r["budget_shared_through"] == "redis" for r in results)
    assert_all_delivered(emulator, results, clients=8)
    assert rate_limited(emulator) == []


def test_two_hosts_without_redis_take_the_next_free_second_when_the_base_has_the_run_id(
    emulator: AirtableEmulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Another host" already wrote jobs for the next five seconds this process would take (earlier
    # tests in this process may have moved its next free second past the clock).
    last = jobtrace.parse_run_id(next_run_id_candidate()).timestamp
    taken = [(last + timedelta(seconds=i)).strftime("%y%m%d-%H%M%S") for i in range(1, 6)]
    other = pyairtable.Api(emulator.api_key, endpoint_url=emulator.url).table(BASE_ID, JOBS)
    other.batch_create([{"Run ID": run_id, "Status": "Running"} for run_id in taken])
    monkeypatch.setenv("JOBTRACE_STATE_DIR", str(tmp_path / "this-host"))
    sink = AirtableSink(emulator.api_key, BASE_ID, endpoint_url=emulator.url, journal_path=tmp_path / "j.sqlite3")
    previous = jobtrace.configure([sink], strict=True)
    try:
        with jobtrace.tracked_job("post-scoring") as job:
            pass
        assert jobtrace.flush(20)
    finally:
        jobtrace.shutdown(5)
        jobtrace.restore(previous)
    assert job.run_id not in taken
    assert job.run_id > taken[-1]
    assert sink.diagnostics()["run_id_checks"]["taken"] == 5
    records = [r["fields"] for r in emulator.records(BASE_ID, JOBS)]
    assert sorted(f["Run ID"] for f in records) == sorted([*taken, job.run_id])


def test_an_explicit_run_id_is_resumed_not_claimed_away(emulator: AirtableEmulator, tmp_path: Any) -> None:
    sink = AirtableSink(emulator.api_key, BASE_ID, endpoint_url=emulator.url, journal_path=tmp_path / "j.sqlite3")
    previous = jobtrace.configure([sink], strict=True)
    try:
        with jobtrace.tracked_job("post-scoring") as first, jobtrace.client_run("acme") as client:
            client.incr(posts_processed=2)
        assert jobtrace.flush(20)
        with jobtrace.tracked_job("post-scoring", run_id=first.run_id) as again, jobtrace.client_run("globex"):
            pass
        assert jobtrace.flush(20)
    finally:
        jobtrace.shutdown(5)
        jobtrace.restore(previous)
    assert again.run_id == first.run_id
    (job,) = [r["fields"] for r in emulator.records(BASE_ID, JOBS)]
    assert job["Run ID"] == first.run_id and job["Clients Processed"] == 2


def test_an_application_reading_once_a_second_through_api_beside_a_job_sees_no_429_and_is_not_locked_out(
    emulator: AirtableEmulator, tmp_path: Any
) -> None:
    sink = AirtableSink(
        emulator.api_key, BASE_ID, endpoint_url=emulator.url, journal_path=tmp_path / "j.sqlite3", rate_limit_penalty=2
    )
    previous = jobtrace.configure([sink], strict=True)
    app_calls: list[tuple[float, float]] = []
    app_errors: list[BaseException] = []
    stop = threading.Event()

    def application() -> None:
        table = sink.api().table(BASE_ID, JOBS)
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                table.all(max_records=3)
            except Exception as exc:  # reported by the test
                app_errors.append(exc)
            app_calls.append((t0, time.monotonic() - t0))
            stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

    thread = threading.Thread(target=application)
    try:
        thread.start()
        t0 = time.monotonic()
        # ~5 s of work over 150 client records: the writer has more than its share to send all along.
        with jobtrace.tracked_job("post-scoring") as job:
            for i in range(150):
                with jobtrace.client_run(f"client-{i:03d}") as client:
                    time.sleep(0.033)
                    client.incr(posts_processed=1)
        assert jobtrace.flush(60)
        job_wall = time.monotonic() - t0
    finally:
        stop.set()
        thread.join(10)
        jobtrace.shutdown(5)
        jobtrace.restore(previous)
    assert app_errors == []
    assert rate_limited(emulator) == []
    assert len(app_calls) >= 5
    # Never locked out: every application call got its answer within its second.
    assert max(duration for _, duration in app_calls) < 1.0
    jobs, clients = records_by_key(emulator)
    assert jobs[job.run_id]["Clients Processed"] == 150 and len(clients) == 150
    # The job was not locked out either: no penalty was ever waited out (the floor is 16+ requests at 4/s).
    assert job_wall < 12


def test_cli_reads_beside_a_job_draw_from_the_same_budget(
    emulator: AirtableEmulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = AirtableSink(
        emulator.api_key, BASE_ID, endpoint_url=emulator.url, journal_path=tmp_path / "j.sqlite3", rate_limit_penalty=2
    )
    previous = jobtrace.configure([sink], strict=True)
    env = {"AIRTABLE_API_KEY": emulator.api_key, "AIRTABLE_BASE_ID": BASE_ID, "AIRTABLE_ENDPOINT_URL": emulator.url}
    try:
        with jobtrace.tracked_job("post-scoring") as job:
            # `show` needs the job record in the base: wait for its first delivery (it races the first read
            # otherwise, while the schema check and the run-ID lookup hold the first second's slots).
            assert jobtrace.flush(30)
            for i in range(120):
                with jobtrace.client_run(f"client-{i:03d}"):
                    time.sleep(0.01)
                if i % 30 == 0:
                    assert cli.main(["runs"], env=env) == 0
                    assert cli.main(["show", job.run_id], env=env) == 0
                    assert cli.main(["check"], env=env) == 0
        assert jobtrace.flush(60)
    finally:
        jobtrace.shutdown(5)
        jobtrace.restore(previous)
    assert job.run_id in capsys.readouterr().out
    assert rate_limited(emulator) == []


@pytest.mark.parametrize("shared_by", ["one host", "two hosts sharing Redis"])
def test_a_429_seen_by_one_process_pauses_every_process_on_the_budget(
    emulator: AirtableEmulator, hosts: Hosts, request: pytest.FixtureRequest, shared_by: str
) -> None:
    penalty = 2.0
    redis_url = request.getfixturevalue("redis_server").url if shared_by != "one host" else None
    host_names = ["a", "a"] if redis_url is None else ["a", "b"]
    spec = job_spec("steady", clients=30, updates=1, pause=0.1, penalty=penalty)
    jobs = [hosts.spawn(h, {**spec, "job_type": f"steady-{i}"}, redis_url) for i, h in enumerate(host_names)]
    hosts.start_together(jobs)
    deadline = time.monotonic() + 10
    while sum(1 for r in emulator.requests if r.method == "PATCH") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    # Exactly one request (whichever process sends it) gets a 429; Airtable would refuse the base after it.
    emulator.inject("429", count=1, method="PATCH")
    results = hosts.wait(jobs)
    assert len({r["run_id"] for r in results}) == 2, [j.stderr for j in jobs]
    log = emulator.requests
    (refused,) = [r for r in log if r.status == 429]
    during = [r for r in log if refused.time + 0.05 < r.time < refused.time + penalty - 0.1]
    assert during == [], f"{len(during)} request(s) sent during the penalty"
    assert sum(r["rate_limited"] for r in results) == 1
    assert [r for r in log if r.time > refused.time + penalty - 0.1 and r.status == 200]
    assert_all_delivered(emulator, results, clients=30, updates=1)


def test_redis_killed_mid_job_loses_nothing_warns_once_and_rejoins(
    emulator: AirtableEmulator, hosts: Hosts, redis_server: RedisServer
) -> None:
    spec = job_spec("outage", clients=40, updates=1, pause=0.1)
    jobs = [hosts.spawn(h, {**spec, "job_type": f"outage-{h}"}, redis_server.url) for h in ("a", "b")]
    hosts.start_together(jobs)
    time.sleep(1.2)
    redis_server.kill()  # SIGKILL: connections drop mid-job
    time.sleep(1.2)
    redis_server.start()  # the same port: the processes find it again
    results = hosts.wait(jobs)
    assert_all_delivered(emulator, results, clients=40, updates=1)
    for job in jobs:
        assert job.stderr.count("cannot be reached") == 1, job.stderr
        assert "reachable again" in job.stderr, job.stderr
    assert all(r["budget_shared_through"] == "redis" for r in results)


def test_an_unreachable_redis_from_the_start_only_warns_and_run_ids_stay_unique(
    emulator: AirtableEmulator, hosts: Hosts
) -> None:
    closed = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    jobs = [hosts.spawn("a", job_spec(f"no-redis-{i}"), closed) for i in range(2)]
    hosts.start_together(jobs)
    results = hosts.wait(jobs)
    assert len({r["run_id"] for r in results}) == 2
    assert_all_delivered(emulator, results, clients=8)
    for job in jobs:
        assert job.stderr.count("cannot be reached") == 1, job.stderr
    assert all(r["budget_shared_through"] == "host" for r in results)


def test_a_429_met_by_the_application_through_api_pauses_the_sink_and_the_call_is_sent_again_after_it(
    emulator: AirtableEmulator, tmp_path: Any
) -> None:
    penalty = 1.5
    sink = AirtableSink(
        emulator.api_key,
        BASE_ID,
        endpoint_url=emulator.url,
        journal_path=tmp_path / "j.sqlite3",
        rate_limit_penalty=penalty,
    )
    previous = jobtrace.configure([sink], strict=True)
    try:
        emulator.inject("429", count=1, method="GET", path_contains="Job%20Tracking")
        t0 = time.monotonic()
        records = sink.api().table(BASE_ID, JOBS).all()  # 429, the penalty, then sent again
        assert time.monotonic() - t0 >= penalty
        assert records == []
        with jobtrace.tracked_job("post-scoring") as job:
            pass
        assert jobtrace.flush(20)
    finally:
        jobtrace.shutdown(5)
        jobtrace.restore(previous)
    log = emulator.requests
    (refused,) = [r for r in log if r.status == 429]
    assert [r for r in log if refused.time < r.time < refused.time + penalty - 0.1] == []
    assert job.run_id in records_by_key(emulator)[0]


def test_an_unusable_state_directory_only_warns_and_the_job_is_still_tracked(
    emulator: AirtableEmulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("JOBTRACE_STATE_DIR", str(blocker / "state"))  # cannot be created
    sink = AirtableSink(emulator.api_key, BASE_ID, endpoint_url=emulator.url, journal_path=tmp_path / "j.sqlite3")
    previous = jobtrace.configure([sink], strict=True)
    try:
        with jobtrace.tracked_job("post-scoring") as first, jobtrace.client_run("acme"):
            pass
        with jobtrace.tracked_job("post-scoring") as second:
            pass
        assert jobtrace.flush(20)
        assert sink.diagnostics()["budget_shared_through"] == "process"
    finally:
        jobtrace.shutdown(5)
        jobtrace.restore(previous)
    assert first.run_id != second.run_id
    assert sorted(records_by_key(emulator)[0]) == sorted([first.run_id, second.run_id])
    assert "cannot use the run-ID claims file" in caplog.text
    assert "cannot use the request budget file" in caplog.text
    assert rate_limited(emulator) == []
