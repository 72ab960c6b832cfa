"""Airtable efficiency: jobtrace's AirtableSink against the migration guide's approach.

Both track the same job against the local emulator with Airtable's rate limit
on (5 requests per second per base, then 30 seconds of 429s): N client runs,
each with 3 progress updates, 2 counter updates and a completion.

The baseline is written the way the migration guide describes its service,
with pyairtable directly and its default retry strategy: look the record up by
formula before creating it, look it up again before each update and at
completion, one request per call. It runs twice:

- *paced*: a careful user who spaces requests 0.21 s apart (just under
  Airtable's 5 per second), the best this approach can do;
- *as written*: no pacing, the way the guide's code runs; after five requests
  the base is refused for 30 s and pyairtable's retry (about 3 s) gives up,
  so calls fail. It runs for a fixed time budget and reports what it got done.

Each row uses a fresh emulator, so one row's penalty never slows the next.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jobtrace
from jobtrace.schema import default_base_metadata

from ._report import table, verdict

BASE_ID = "appBENCHMARK00001"
RATE = 5.0  # Airtable: requests per second per base
#: Simulated work before each progress update in the second jobtrace row.
STEP_DELAY = 0.005
PROGRESS_UPDATES = 3
COUNTER_UPDATES = 2

#: Targets for jobtrace's sink.
REQUESTS_PER_RUN_TARGET = 0.25
FLOOR_FACTOR_TARGET = 1.2


@dataclass
class Row:
    name: str
    clients: int
    requests: int
    rate_limited: int
    failed_calls: int
    wall: float
    setup_requests: int = 0
    note: str = ""

    @property
    def per_run(self) -> float | str:
        return self.requests / self.clients if self.clients else "-"

    @property
    def floor(self) -> float:
        return self.requests / RATE


def _emulator() -> Any:
    from jobtrace.testing import AirtableEmulator

    return AirtableEmulator(bases={BASE_ID: default_base_metadata()}, rate_limit=True).start()


def _client_ids(n: int) -> list[str]:
    return [f"client-{i:04d}" for i in range(n)]


# -- jobtrace ------------------------------------------------------------------------


def run_jobtrace(clients: int, step_delay: float = 0.0) -> Row:
    """The job tracked by jobtrace's AirtableSink; wall time until everything is delivered.

    ``step_delay`` seconds of simulated work before each of a client run's steps,
    so the job lasts long enough for the delivery engine to send while it runs.
    """
    from jobtrace.sinks import AirtableSink

    emu = _emulator()
    tmp = tempfile.mkdtemp(prefix="jobtrace-bench-")
    try:
        journal = Path(tmp) / "journal.sqlite3"
        # Nothing else uses this base: jobtrace may take the whole budget (no headroom for an application).
        sink = AirtableSink(
            api_key=emu.api_key, base_id=BASE_ID, endpoint_url=emu.url, journal_path=journal, application_headroom=0
        )
        previous = jobtrace.configure(sinks=[sink])
        setup = len(emu.requests)  # the schema check at configuration, once per process
        emu.clear_requests()
        try:
            t0 = time.perf_counter()
            with jobtrace.tracked_job("bench-airtable"):
                for cid in _client_ids(clients):
                    with jobtrace.client_run(cid, name=f"Client {cid}") as client:
                        for step in range(1, PROGRESS_UPDATES + 1):
                            if step_delay:
                                time.sleep(step_delay)
                            client.update(progress=f"step {step} of {PROGRESS_UPDATES}")
                            if step <= COUNTER_UPDATES:
                                client.incr(posts_processed=10, token_usage=1500)
            delivered = jobtrace.flush(timeout=600)
            wall = time.perf_counter() - t0
        finally:
            jobtrace.shutdown(timeout=30)
            jobtrace.restore(previous)
        log = emu.requests
        records = emu.records(BASE_ID, "Client Run Results")
        done = sum(1 for r in records if r["fields"].get("Status") == "Completed")
        note = "all delivered" if delivered and done == clients else f"delivered={delivered}, {done} completed"
        return Row(
            f"jobtrace AirtableSink, {step_delay * 1000:.0f} ms work per step"
            if step_delay
            else "jobtrace AirtableSink",
            clients,
            len(log),
            sum(1 for e in log if e.status == 429),
            0,
            wall,
            setup_requests=setup,
            note=note,
        )
    finally:
        emu.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# -- the migration guide's approach ----------------------------------------------------


class _OutOfTime(Exception):
    """The time budget of the run is spent."""


class GuideTracker:
    """The guide's ``simpleJobTracking`` service, in Python with pyairtable: find, then write."""

    def __init__(self, api: Any, pace: float | None, deadline: float | None = None) -> None:
        self.jobs = api.table(BASE_ID, "Job Tracking")
        self.clients = api.table(BASE_ID, "Client Run Results")
        self.pace = pace
        self.deadline = deadline
        self._last = 0.0
        self.failed_calls = 0

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API call; the guide's service logs a failure and carries on."""
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _OutOfTime
        if self.pace is not None:
            wait = self._last + self.pace - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last = time.monotonic()
        try:
            return fn(*args, **kwargs)
        except Exception:
            self.failed_calls += 1
            return None

    def _find(self, table: Any, fields: dict[str, str]) -> Any:
        from pyairtable.formulas import match

        return self._call(table.first, formula=match(fields))

    def _upsert_by_lookup(self, table: Any, key: dict[str, str], fields: dict[str, Any]) -> None:
        found = self._find(table, key)
        if found is None:
            self._call(table.create, {**key, **fields})
        else:
            self._call(table.update, found["id"], fields)

    def _update(self, table: Any, key: dict[str, str], fields: dict[str, Any]) -> None:
        found = self._find(table, key)
        if found is not None:
            self._call(table.update, found["id"], fields)

    # The service's verbs.
    def create_job(self, run_id: str, job_type: str) -> None:
        now = jobtrace.records.utc_iso()
        self._upsert_by_lookup(
            self.jobs, {"Run ID": run_id}, {"Job Type": job_type, "Status": "Running", "Start Time": now}
        )

    def complete_job(self, run_id: str, fields: dict[str, Any]) -> None:
        end = jobtrace.records.utc_iso()
        self._update(self.jobs, {"Run ID": run_id}, {**fields, "Status": "Completed", "End Time": end})

    def create_client(self, run_id: str, client_id: str, name: str) -> None:
        key = {"Run ID": f"{run_id}-{client_id}", "Client ID": client_id}
        now = jobtrace.records.utc_iso()
        self._upsert_by_lookup(self.clients, key, {"Client Name": name, "Status": "Running", "Start Time": now})

    def update_client(self, run_id: str, client_id: str, fields: dict[str, Any]) -> None:
        self._update(self.clients, {"Run ID": f"{run_id}-{client_id}", "Client ID": client_id}, fields)

    def complete_client(self, run_id: str, client_id: str, fields: dict[str, Any]) -> None:
        end = jobtrace.records.utc_iso()
        self.update_client(run_id, client_id, {**fields, "Status": "Completed", "End Time": end})


def run_baseline(clients: int, pace: float | None, budget: float | None = None) -> Row:
    """The job tracked the guide's way; with ``budget``, stops making calls after that many seconds."""
    from pyairtable import Api

    emu = _emulator()
    try:
        api = Api(emu.api_key, endpoint_url=emu.url)  # default retry strategy, as a user would
        t0 = time.perf_counter()
        guide = GuideTracker(api, pace, deadline=t0 + budget if budget is not None else None)
        run_id = jobtrace.generate_run_id()
        counts = [0, 0, 0]
        with contextlib.suppress(_OutOfTime):
            _guide_job(guide, run_id, clients, counts)
        done = counts[0]
        wall = time.perf_counter() - t0
        log = emu.requests
        name = "guide's approach, paced to 5/s" if pace is not None else "guide's approach, as written"
        note = f"{guide.failed_calls} calls failed" if guide.failed_calls else "all calls succeeded"
        if budget is not None and done < clients:
            note += f"; {done} client runs done when its {budget:.0f} s budget ran out"
        return Row(name, done, len(log), sum(1 for e in log if e.status == 429), guide.failed_calls, wall, note=note)
    finally:
        emu.stop()


def _guide_job(guide: GuideTracker, run_id: str, clients: int, counts: list[int]) -> None:
    """The job: counts[0..2] are client runs completed, posts and tokens so far."""
    guide.create_job(run_id, "bench-airtable")
    for cid in _client_ids(clients):
        guide.create_client(run_id, cid, f"Client {cid}")
        client_posts = client_tokens = 0
        for step in range(1, PROGRESS_UPDATES + 1):
            guide.update_client(run_id, cid, {"Progress": f"step {step} of {PROGRESS_UPDATES}"})
            if step <= COUNTER_UPDATES:
                client_posts += 10
                client_tokens += 1500
                guide.update_client(run_id, cid, {"Posts Processed": client_posts, "Token Usage": client_tokens})
        guide.complete_client(run_id, cid, {})
        counts[0] += 1
        counts[1] += client_posts
        counts[2] += client_tokens
    done, posts, tokens = counts
    guide.complete_job(run_id, {"Clients Processed": done, "Posts Processed": posts, "Token Usage": tokens})


# -- report ------------------------------------------------------------------------------


def run_airtable(
    clients: int = 200, baseline_clients: int = 200, quick: bool = False, verbose: bool = True
) -> dict[str, Any]:
    """Run the three rows; print the table and the targets."""
    rows: list[Row] = []
    have_sink = _have_airtable_sink()
    if have_sink:
        rows.append(run_jobtrace(clients))
        rows.append(run_jobtrace(clients, step_delay=STEP_DELAY))
    rows.append(run_baseline(baseline_clients, pace=0.21))
    # As written, the guide's code spends ~3 s per failed call while the base is refused.
    rows.append(run_baseline(baseline_clients, pace=None, budget=6.0 if quick else 40.0))
    header = [
        "tracker",
        "client runs",
        "requests",
        "per client run",
        "429s",
        "failed calls",
        "wall s",
        "floor s",
        "wall/floor",
        "note",
    ]
    body = [
        [
            r.name,
            r.clients,
            r.requests,
            r.per_run,
            r.rate_limited,
            r.failed_calls,
            r.wall,
            r.floor,
            r.wall / r.floor if r.floor else 0.0,
            r.note,
        ]
        for r in rows
    ]
    title = (
        f"Airtable efficiency (emulator, 5 req/s, 30 s penalty; each client run: {PROGRESS_UPDATES} progress "
        f"updates, {COUNTER_UPDATES} counter updates, completion)"
    )
    out = table(title, header, body)
    checks: list[list[object]] = []
    if have_sink:
        ours = rows[0]
        paced = next(r for r in rows if "paced" in r.name)
        out += f"(jobtrace's one-off schema check at configure: {ours.setup_requests} request(s), not counted above)\n"
        checks = [
            [
                f"<= {REQUESTS_PER_RUN_TARGET} requests per client run",
                f"{ours.per_run:.3f}",
                verdict(ours.per_run <= REQUESTS_PER_RUN_TARGET),
            ],
            ["no 429s", str(ours.rate_limited), verdict(ours.rate_limited == 0)],
            [
                f"wall <= {FLOOR_FACTOR_TARGET}x its floor",
                f"{ours.wall:.2f} s / {ours.floor:.2f} s = {ours.wall / ours.floor:.2f}x",
                verdict(ours.wall <= FLOOR_FACTOR_TARGET * ours.floor),
            ],
            ["baseline (paced) requests per client run (about 10 expected)", f"{paced.per_run:.2f}", "-"],
        ]
        out += "\n" + table("Airtable targets (jobtrace AirtableSink)", ["target", "measured", "verdict"], checks)
    else:
        out += "(jobtrace.sinks.AirtableSink is not available in this checkout: only the baseline ran)\n"
    if verbose:
        print(out)
    return {
        "rows": [r.__dict__ | {"per_run": r.per_run, "floor": r.floor} for r in rows],
        "checks": checks,
        "text": out,
    }


def _have_airtable_sink() -> bool:
    try:
        from jobtrace.sinks import AirtableSink  # noqa: F401
    except (ImportError, AttributeError):
        return False
    return True
