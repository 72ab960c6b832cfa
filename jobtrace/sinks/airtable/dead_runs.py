"""Closing the runs a dead process left open on this host (the journal knows them).

An engine that claims a dead owner's journal rows also takes over the runs it
had open (``open_runs``). Once the leftovers are delivered, :func:`close_dead_runs`
reads those records back and ends each one that is still ``Running`` as
``Interrupted``: ``End Time`` is when the process was last seen (its last
journal write or heartbeat), and ``System Notes`` gets a line saying the
process stopped and when it was last seen. A record is left alone when it
ended meanwhile, when a live process (this one, or another on this host) has
it open again (a resumed run), or when its ``Last Heartbeat`` is newer than
the dead process's last sighting (someone elsewhere runs it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyairtable import Api, formulas

from ...changes import utc_iso
from ...delivery.engine import DeliveryEngine
from ...delivery.journal import DeadRun, Journal, RunEvent
from ...delivery.limiter import RequestLimiter
from ...notes import append_note
from ...statuses import Status
from .reads import BaseReader

__all__ = ["ClosedRuns", "close_dead_runs", "closing_fields", "job_rollups", "parse_time", "read_client_records"]

logger = logging.getLogger("jobtrace")

#: Airtable's limit of records per request, and a formula length that stays well inside its URL limit.
_CHUNK = 10


@dataclass(frozen=True)
class ClosedRuns:
    """What :func:`close_dead_runs` did."""

    closed: int
    skipped: int
    waiting: int
    """Runs still to close (their leftovers were not delivered in time); closed by a later start or replay."""


def parse_time(value: Any) -> float | None:
    """An Airtable dateTime (``2025-10-05T21:02:47.123Z``) as Unix time, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def read_client_records(reader: BaseReader, roles: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """Every client record of job run ``run_id`` (one request per 100 records); ``AirtableError`` if it fails."""
    return reader.client_runs(str(roles["client_table"]), str(roles["client_run_id"]), run_id)


def job_rollups(roles: dict[str, Any], clients: list[dict[str, Any]]) -> dict[str, Any]:
    """A job's roll-ups counted from its client records, as the job itself counts them.

    Ended client runs count; ``Failed`` and ``Cancelled`` ones as failed. ``Running`` (their process
    died) and ``Interrupted`` ones are not counted: they did not finish, and a resumed run redoes them.
    """
    status = roles["client_status"]
    counted = [c for c in clients if c.get(status) not in (None, Status.RUNNING, Status.INTERRUPTED)]
    failed = sum(1 for c in counted if c.get(status) in (Status.FAILED, Status.CANCELLED))
    fields: dict[str, Any] = {}
    for role, value in (
        ("clients_processed", len(counted)),
        ("clients_succeeded", len(counted) - failed),
        ("clients_failed", failed),
    ):
        if roles.get(role):
            fields[roles[role]] = value
    for name in roles.get("counters") or ():
        total = sum(c.get(name) or 0 for c in counted)
        fields[name] = int(total) if float(total).is_integer() else total
    return fields


def closing_fields(
    roles: dict[str, Any], record: dict[str, Any], status: str, end: float | None, note: str
) -> dict[str, Any]:
    """The fields that end ``record``: its status, ``End Time`` and a ``System Notes`` line appended."""
    fields: dict[str, Any] = {}
    if roles.get("status"):
        fields[str(roles["status"])] = status
    if roles.get("end_time"):
        fields[str(roles["end_time"])] = utc_iso(end)
    notes = roles.get("notes")
    if notes:
        current = record.get(notes)
        fields[notes] = append_note(current if isinstance(current, str) else "", note)
    return fields


def close_dead_runs(
    api: Api,
    base_id: str,
    engine: DeliveryEngine,
    journal: Journal,
    throttle: RequestLimiter,
    deadline: float,
    *,
    open_here: Callable[[str, str], bool] | None = None,
    guard: threading.Lock | None = None,
) -> ClosedRuns:
    """Close the runs ``engine`` took over from dead owners, after their leftovers are delivered."""
    runs = journal.dead_runs(base_id, engine.owner)
    if not runs:
        return ClosedRuns(0, 0, 0)
    # First deliver what the dead process left: its changes come before its end.
    while time.monotonic() < deadline and any(engine.pending_fields(r.table, r.record_key) for r in runs):
        time.sleep(0.05)
    ready = [r for r in runs if not engine.pending_fields(r.table, r.record_key)]
    closed = skipped = 0
    for table in sorted({r.table for r in ready}):
        group = [r for r in ready if r.table == table]
        for i in range(0, len(group), _CHUNK):
            chunk = group[i : i + _CHUNK]
            records = _read(api, base_id, table, chunk, throttle, deadline)
            if records is None:
                continue  # Airtable unreachable: a later start or replay closes them
            for run in chunk:
                if _close_one(api, base_id, engine, journal, throttle, run, records, open_here, guard):
                    closed += 1
                else:
                    skipped += 1
    if closed:
        logger.warning(
            "jobtrace: %d run(s) left open by a process that stopped were ended as Interrupted (base %s)",
            closed,
            base_id,
        )
    return ClosedRuns(closed, skipped, len(runs) - closed - skipped)


def _read(
    api: Api, base_id: str, table: str, runs: list[DeadRun], throttle: RequestLimiter, deadline: float
) -> list[dict[str, Any]] | None:
    formula: formulas.Formula = (
        formulas.OR(*(formulas.match(r.key_values) for r in runs))
        if len(runs) > 1
        else formulas.match(runs[0].key_values)
    )
    while time.monotonic() < deadline:
        slot = throttle.acquire(timeout=max(0.0, deadline - time.monotonic()))
        if slot is None:
            return None
        try:
            return [r["fields"] for r in BaseReader.over(api, base_id).records(table, formula=formula)]
        except Exception as exc:
            logger.warning("jobtrace: reading runs left open by a dead process failed: %s", exc)
        finally:
            throttle.done(slot)
        time.sleep(0.5)
    return None


def _close_one(
    api: Api,
    base_id: str,
    engine: DeliveryEngine,
    journal: Journal,
    throttle: RequestLimiter,
    run: DeadRun,
    records: list[dict[str, Any]],
    open_here: Callable[[str, str], bool] | None,
    guard: threading.Lock | None,
) -> bool:
    record = next((r for r in records if all(r.get(k) == v for k, v in run.key_values.items())), None)
    status_field = run.roles.get("status")
    heartbeat = run.roles.get("heartbeat")
    reason: str | None = None
    if record is None:
        reason = "not in Airtable"
    elif status_field and record.get(status_field) != run.roles.get("running", Status.RUNNING):
        reason = "ended meanwhile"
    elif heartbeat and (parse_time(record.get(heartbeat)) or 0.0) > run.last_seen + 5.0:
        reason = "alive elsewhere (newer heartbeat)"
    elif journal.live_open(base_id, run.table, run.record_key, engine.owner):
        reason = "open in a live process"
    rollups: dict[str, Any] = {}
    if reason is None and run.roles.get("client_table"):
        # A job: its roll-ups as its client records say (what the throttle held back died with the process).
        slot = throttle.acquire(timeout=30.0)
        try:
            run_id = run.key_values.get(str(run.roles.get("run_id")))
            reader = BaseReader.over(api, base_id)  # under the slot taken above
            rollups = job_rollups(run.roles, read_client_records(reader, run.roles, str(run_id)))
        except Exception as exc:
            logger.warning("jobtrace: could not count the client runs of %s: %s", run.record_key, exc)
        finally:
            if slot is not None:
                throttle.done(slot)
    if reason is None:
        lock = guard or threading.Lock()
        with lock:
            if open_here is not None and open_here(run.table, run.record_key):
                reason = "resumed by this process"
            else:
                assert record is not None
                note = f"Interrupted: the process stopped ({run.stopped}); last seen at {utc_iso(run.last_seen)}"
                interrupted = run.roles.get("interrupted", Status.INTERRUPTED)
                end = closing_fields(run.roles, record, interrupted, run.last_seen, note)
                fields = {**run.key_values, **rollups, **end}
                engine.submit(
                    run.table,
                    run.key_fields,
                    fields,
                    key=("dead-run", run.table, run.record_key),
                    event=RunEvent(run.table, run.record_key, run.key_fields, opened=False),
                )
                return True
    journal.drop_dead_run(base_id, engine.owner, run.table, run.record_key)
    logger.info("jobtrace: run %s in %r left open by a dead process: %s", run.record_key, run.table, reason)
    return False
