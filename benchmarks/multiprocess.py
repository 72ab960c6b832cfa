"""Many processes, one base: 4 job processes and an application sharing Airtable's 5 requests per second.

One emulator base with Airtable's rate limit on (5 requests per second, then
30 s of 429s for everyone). Four job processes start their jobs at the same
instant, each of N client runs (3 progress updates, 2 counter updates, a
completion each); the first process also runs an application thread making
one request per second through ``AirtableSink.api()``. Rows:

- *one host*: the four processes share a state directory, so the budget file
  (and the run-ID claims) beside the journal;
- *two hosts sharing Redis*: two state directories of two processes each, and
  a real ``redis-server`` (``JOBTRACE_REDIS_URL``) between them;
- *four hosts without Redis* (the peer): four state directories and nothing
  shared, so each process keeps to the budget alone, as every process did
  before the budget was shared.

The floor is what the shared budget allows jobtrace: its requests during the
run divided by its share of the base (5 requests per second less the one left
to the application). Wall time is from the common start until the last
process has delivered everything.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._report import table, verdict

BASE_ID = "appBENCHMULTIPRC1"
REPO = Path(__file__).resolve().parent.parent
PROCESSES = 4
PROGRESS_UPDATES = 3
COUNTER_UPDATES = 2
FLOOR_FACTOR_TARGET = 1.2
#: Requests per second jobtrace leaves to the application (the sink's default).
HEADROOM = 1
RATE = 5


@dataclass
class Row:
    name: str
    clients: int
    requests: int = 0
    app_requests: int = 0
    app_failures: int = 0
    app_slowest: float = 0.0
    rate_limited: int = 0
    wall: float = 0.0
    job_records: int = 0
    client_records: int = 0
    duplicates: int = 0
    completed: int = 0
    distinct_run_ids: int = 0
    delivered: bool = False
    shared: list[str] = field(default_factory=list)

    @property
    def floor(self) -> float:
        return self.requests / (RATE - HEADROOM)


# -- a job process ---------------------------------------------------------------------------------


def _child(spec: dict[str, Any]) -> int:
    """One job process: configure, say ready, start at the given instant, run the job, report."""
    sys.path.insert(0, str(REPO))
    import jobtrace
    from jobtrace.sinks import AirtableSink

    sink = AirtableSink.from_env()
    jobtrace.configure([sink])
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    app: dict[str, Any] = {"requests": 0, "failures": 0, "slowest": 0.0}
    stop = threading.Event()

    def application() -> None:
        jobs = sink.api().table(os.environ["AIRTABLE_BASE_ID"], "Job Tracking")
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                jobs.all(max_records=5)
            except Exception:
                app["failures"] += 1
            took = time.monotonic() - t0
            app["requests"] += 1
            app["slowest"] = max(app["slowest"], took)
            stop.wait(max(0.0, 1.0 - took))

    time.sleep(max(0.0, start_at - time.time()))
    thread = threading.Thread(target=application, daemon=True)
    if spec["application"]:
        thread.start()
    with jobtrace.tracked_job(spec["job_type"]) as job:
        for i in range(spec["clients"]):
            with jobtrace.client_run(f"{spec['job_type']}-{i:03d}", name=f"Client {i}") as client:
                for step in range(1, PROGRESS_UPDATES + 1):
                    client.update(progress=f"step {step} of {PROGRESS_UPDATES}")
                    if step <= COUNTER_UPDATES:
                        client.incr(posts_processed=10, token_usage=1500)
    delivered = jobtrace.flush(timeout=600)
    finished = time.time()
    stop.set()
    if spec["application"]:
        thread.join(5)
    counts = sink.diagnostics()
    jobtrace.shutdown(10)
    report = {"run_id": job.run_id, "delivered": delivered, "finished": finished, "app": app, **counts}
    print(json.dumps(report), flush=True)
    return 0


# -- the parent ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Redis:
    def __init__(self, directory: str) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run_row(name: str, clients: int, hosts: list[str], redis_url: str | None) -> Row:
    """One row: a fresh emulator, one process per entry of ``hosts`` (its state directory's name)."""
    from jobtrace.schema import default_base_metadata
    from jobtrace.testing import AirtableEmulator

    row = Row(name, clients * len(hosts))
    tmp = tempfile.mkdtemp(prefix="jobtrace-bench-mp-")
    emu = AirtableEmulator(bases={BASE_ID: default_base_metadata()}, rate_limit=True).start()
    procs: list[subprocess.Popen[str]] = []
    try:
        for i, host in enumerate(hosts):
            state = Path(tmp) / host
            env = {
                **os.environ,
                "AIRTABLE_API_KEY": emu.api_key,
                "AIRTABLE_BASE_ID": BASE_ID,
                "AIRTABLE_ENDPOINT_URL": emu.url,
                "JOBTRACE_STATE_DIR": str(state),
                "JOBTRACE_JOURNAL": str(state / "journal.sqlite3"),
                "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
            }
            env.pop("JOBTRACE_REDIS_URL", None)
            if redis_url:
                env["JOBTRACE_REDIS_URL"] = redis_url
            spec = {"job_type": f"bench-mp-{i}", "clients": clients, "application": i == 0}
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.multiprocess", "--child", json.dumps(spec)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                    cwd=str(REPO),
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a job process failed to start")
        start = time.time() + 0.3
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start}\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            out, _ = proc.communicate(timeout=900)
            reports.append(json.loads(out.strip().splitlines()[-1]))
        end = max(r["finished"] for r in reports)
        log = [e for e in emu.requests if start <= e.time <= end]
        row.app_requests = sum(r["app"]["requests"] for r in reports)
        row.app_failures = sum(r["app"]["failures"] for r in reports)
        row.app_slowest = max(r["app"]["slowest"] for r in reports)
        row.requests = len(log) - row.app_requests
        row.rate_limited = sum(1 for e in emu.requests if e.status == 429)
        row.wall = end - start
        row.delivered = all(r["delivered"] for r in reports)
        row.distinct_run_ids = len({r["run_id"] for r in reports})
        row.shared = sorted({r["budget_shared_through"] for r in reports})
        jobs = emu.records(BASE_ID, "Job Tracking")
        client_records = emu.records(BASE_ID, "Client Run Results")
        row.job_records = len(jobs)
        row.client_records = len(client_records)
        keys = [r["fields"]["Run ID"] for r in client_records] + [r["fields"]["Run ID"] for r in jobs]
        row.duplicates = len(keys) - len(set(keys))
        row.completed = sum(1 for r in client_records if r["fields"].get("Status") == "Completed")
        return row
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        emu.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run_multiprocess(clients: int = 50, peer: bool = True, verbose: bool = True) -> dict[str, Any]:
    rows = [run_row("one host, 4 processes", clients, ["host"] * PROCESSES, None)]
    if shutil.which("redis-server"):
        tmp = tempfile.mkdtemp(prefix="jobtrace-bench-redis-")
        redis = _Redis(tmp)
        try:
            rows.append(run_row("two hosts x 2 processes, Redis", clients, ["a", "a", "b", "b"], redis.url))
        finally:
            redis.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    if peer:
        rows.append(run_row("peer: 4 hosts, nothing shared", clients, ["a", "b", "c", "d"], None))
    header = [
        "setup",
        "client runs",
        "jobtrace requests",
        "app requests",
        "429s",
        "records (jobs/clients)",
        "dupes",
        "wall s",
        "floor s",
        "wall/floor",
        "app slowest s",
        "budget shared through",
    ]
    body = [
        [
            r.name,
            r.clients,
            r.requests,
            f"{r.app_requests} ({r.app_failures} failed)",
            r.rate_limited,
            f"{r.job_records}/{r.client_records}",
            r.duplicates,
            r.wall,
            r.floor,
            r.wall / r.floor if r.floor else 0.0,
            r.app_slowest,
            ",".join(r.shared),
        ]
        for r in rows
    ]
    title = (
        f"Many processes, one base (emulator, 5 req/s, 30 s penalty; {PROCESSES} processes x {clients} client runs "
        f"+ an application thread at 1 request/s through AirtableSink.api(); floor = jobtrace requests / "
        f"{RATE - HEADROOM} per s)"
    )
    out = table(title, header, body)
    checks: list[list[object]] = []
    for r in rows:
        if r.name.startswith("peer"):
            continue
        complete = (
            r.delivered
            and r.distinct_run_ids == PROCESSES
            and r.job_records == PROCESSES
            and r.client_records == r.clients == r.completed
            and r.duplicates == 0
        )
        checks += [
            [f"{r.name}: no 429s", str(r.rate_limited), verdict(r.rate_limited == 0)],
            [
                f"{r.name}: all delivered, one record per run and client",
                f"{r.distinct_run_ids} run IDs, {r.job_records} + {r.client_records} records, {r.completed} completed",
                verdict(complete),
            ],
            [
                f"{r.name}: wall <= {FLOOR_FACTOR_TARGET}x the shared budget's floor",
                f"{r.wall:.2f} s / {r.floor:.2f} s = {r.wall / r.floor:.2f}x",
                verdict(r.wall <= FLOOR_FACTOR_TARGET * r.floor),
            ],
        ]
    out += "\n" + table("Many processes, one base: targets", ["target", "measured", "verdict"], checks)
    if verbose:
        print(out)
    return {"rows": [r.__dict__ | {"floor": r.floor} for r in rows], "checks": checks, "text": out}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child(json.loads(sys.argv[2])))
    sys.path.insert(0, str(REPO))
    run_multiprocess()
