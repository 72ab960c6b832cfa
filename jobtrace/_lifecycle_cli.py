"""``jobtrace reap`` and ``jobtrace close``: end runs whose process is gone, from anywhere.

``reap`` ends ``Running`` runs whose ``Last Heartbeat`` is stale (the base has
the field), or, in a base without it, whose ``Start Time`` is older than
``--older-than``. Each record is read again just before it is written, and
left alone when it ended or beat meanwhile. ``close`` ends one run by hand with
the same care. Registered by :mod:`jobtrace.cli`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, TextIO

from .errors import JobtraceError
from .records import Status, utc_iso
from .run_ids import parse_run_id
from .schema import Schema

__all__ = ["add_parsers"]

#: A run whose heartbeat is older than this many heartbeat intervals is taken for dead.
STALE_INTERVALS = 5


def add_parsers(sub: Any) -> None:
    """Add ``reap`` and ``close`` to the ``jobtrace`` command's subparsers."""
    reap = sub.add_parser(
        "reap",
        help="end Running runs whose process is gone (stale heartbeat)",
        description="End Running job and client runs whose Last Heartbeat is stale (default: older than "
        f"{STALE_INTERVALS} heartbeat intervals, 5m), or, in a base without a Last Heartbeat field, whose "
        "Start Time is older than --older-than. Each record is read again just before it is written.",
    )
    reap.add_argument("--older-than", help="a heartbeat (or, without the field, a start) older than this: 10m, 2h")
    reap.add_argument("--dry-run", action="store_true", help="only list what would be ended")
    reap.set_defaults(handler=cmd_reap)

    close = sub.add_parser(
        "close",
        help="end one run by hand",
        description="End one Running job or client run (YYMMDD-HHMMSS or YYMMDD-HHMMSS-ClientID).",
    )
    close.add_argument("run_id", metavar="RUN_ID", help="a job run ID or a client run ID")
    close.add_argument("--status", default=Status.INTERRUPTED, help="the status to end it with (default Interrupted)")
    close.add_argument("--note", default=None, help="a line for System Notes")
    close.set_defaults(handler=cmd_close)


def _base_schema(settings: Any) -> Schema:
    """The mapping for the base as it is (so an optional Last Heartbeat field is seen)."""
    return _read_base_schema(settings) or Schema.default()


def _read_base_schema(settings: Any) -> Schema | None:
    """The base's own mapping, or None when its metadata cannot be read (scope, network)."""
    from . import cli
    from .delivery.airtable import AirtableError

    try:
        return Schema.from_metadata(cli.reader_for(settings).metadata())  # within the base's shared budget
    except AirtableError:
        return None  # no schema.bases:read scope, or not reachable for metadata
    except JobtraceError:
        raise  # the base does not fit the mapping
    except Exception:
        return None  # metadata pyairtable or the mapping cannot read: go on with the default mapping


def heartbeat_note(settings: Any) -> str | None:
    """What ``jobtrace check`` says when the base has no ``Last Heartbeat`` field (None when it has one)."""
    try:
        schema = _read_base_schema(settings)
    except JobtraceError:
        return None  # the base does not fit the mapping: the check's own errors say so
    if schema is None:
        return None  # the check has said why the base could not be read
    missing = [t.name for t in (schema.job, schema.client) if t.names.heartbeat is None]
    if not missing:
        return None
    return (
        f"note: no 'Last Heartbeat' field (dateTime) in {' and '.join(repr(m) for m in missing)}: a run whose host "
        "is lost (container and disk gone) cannot be told from a live one; 'jobtrace reap' then has to judge by "
        "Start Time (--older-than), which would also end a live run older than that. Add the field to both "
        "tables to have live runs refresh it (about one request a minute per process)"
    )


def _stale_limit(args: argparse.Namespace, has_heartbeat: bool) -> float | None:
    from . import cli
    from .sinks.airtable import HEARTBEAT_INTERVAL

    if args.older_than is not None:
        since = cli.parse_since(args.older_than)
        return since.timestamp()
    if has_heartbeat:
        return time.time() - STALE_INTERVALS * HEARTBEAT_INTERVAL
    return None


def cmd_reap(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from pyairtable import formulas

    from . import cli

    settings = cli.read_settings(env)
    schema = _base_schema(settings)
    has_heartbeat = schema.job.names.heartbeat is not None
    limit = _stale_limit(args, has_heartbeat)
    if limit is None:
        raise cli.UserError(
            "the base has no 'Last Heartbeat' field, so liveness cannot be told: pass --older-than DURATION "
            "(runs started longer ago than that are ended; make it longer than your longest job), or add a "
            "dateTime field 'Last Heartbeat' to both tables"
        )
    reader = cli.reader_for(settings)
    tables = [schema.job, schema.client]
    running: dict[str, list[dict[str, Any]]] = {}
    for table in tables:
        running[table.name] = reader.records(table.name, formula=formulas.match({table.names.status: Status.RUNNING}))
    job_seen: dict[str, float | None] = {}
    for record in running[schema.job.name]:
        fields = record["fields"]
        job_seen[str(fields.get(schema.job.names.run_id))] = _last_seen(fields, schema.job.names, has_heartbeat)
    rows = [["Run ID", "Table", "Last seen", "Action"]]
    ended = 0
    for table in tables:
        names = table.names
        for record in running[table.name]:
            fields = record["fields"]
            run_id = str(fields.get(names.run_id))
            seen = _last_seen(fields, names, has_heartbeat)
            if seen is None or seen >= limit:
                continue
            if table.kind == "client":
                try:
                    job_run = parse_run_id(run_id).run_id
                except JobtraceError:
                    job_run = run_id
                job_last = job_seen.get(job_run)
                if job_last is not None and job_last >= limit:
                    continue  # its job is alive: so is the process running it
            if args.dry_run:
                rows.append([run_id, table.name, utc_iso(seen), "would end as Interrupted"])
                continue

            # Read again just before writing: a run that ended or beat meanwhile keeps its own status.
            def end_if_stale(fresh: dict[str, Any], table: Any = table, names: Any = names) -> dict[str, Any] | None:
                again = _last_seen(fresh, names, has_heartbeat)
                if fresh.get(names.status) != Status.RUNNING or again is None or again >= limit:
                    return None
                end = again if has_heartbeat and names.heartbeat and fresh.get(names.heartbeat) else time.time()
                where = "last seen at " + utc_iso(again) if has_heartbeat else "the base keeps no heartbeat"
                note = f"Interrupted: the process stopped (found by `jobtrace reap`); {where}"
                return _end_fields(reader, schema, table.kind, fresh, Status.INTERRUPTED, end, note)

            fresh, written = reader.update_if(table.name, record["id"], end_if_stale)
            again = _last_seen(fresh, names, has_heartbeat)
            if written is None:
                rows.append([run_id, table.name, utc_iso(again) if again else "", "left alone (changed meanwhile)"])
                continue
            ended += 1
            rows.append([run_id, table.name, utc_iso(again) if again else "", "ended as Interrupted"])
    if len(rows) == 1:
        print("no stale Running runs", file=out)
    else:
        cli.print_table(rows, out)
    if not args.dry_run:
        print(f"{ended} run(s) ended", file=out)
    if not has_heartbeat:
        print("note: the base has no 'Last Heartbeat' field: runs were judged by their Start Time", file=out)
    return 0


def _end_fields(
    reader: Any, schema: Schema, kind: str, record: Mapping[str, Any], status: str, end: float, note: str
) -> dict[str, Any]:
    """The fields that end ``record``; a job's roll-ups recounted from its client records."""
    from .sinks.airtable import run_roles
    from .sinks.airtable.dead_runs import closing_fields, job_rollups, read_client_records

    roles = run_roles(schema, kind)
    fields: dict[str, Any] = {}
    if kind == "job":
        run_id = str(record.get(schema.job.names.run_id))
        fields.update(job_rollups(roles, read_client_records(reader, roles, run_id)))
    fields.update(closing_fields(roles, dict(record), status, end, note))
    return fields


def _last_seen(fields: Mapping[str, Any], names: Any, has_heartbeat: bool) -> float | None:
    from .sinks.airtable.dead_runs import parse_time

    if has_heartbeat and names.heartbeat is not None:
        beat = parse_time(fields.get(names.heartbeat))
        if beat is not None:
            return beat
    return parse_time(fields.get(names.start_time)) if names.start_time else None


def cmd_close(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from pyairtable import formulas

    from . import cli

    try:
        parsed = parse_run_id(args.run_id)
    except JobtraceError as exc:
        raise cli.UserError(str(exc)) from None
    settings = cli.read_settings(env)
    schema = _base_schema(settings)
    table = schema.client if parsed.client_id is not None else schema.job
    try:
        status = table.normalize_status(args.status)
    except JobtraceError as exc:
        raise cli.UserError(f"--status: {exc}") from None
    if status == Status.RUNNING:
        raise cli.UserError("--status: a run is closed with a terminal status, not Running")
    reader = cli.reader_for(settings)
    names = table.names
    match: dict[str, Any] = {names.run_id: args.run_id}
    if parsed.client_id is not None and names.client_id is not None:
        match[names.client_id] = parsed.client_id
    found = reader.first(table.name, formulas.match(match))
    if found is None:
        raise cli.UserError(f"no run {args.run_id} in table {table.name!r} of base {settings.base_id}")
    note = "Closed by hand (jobtrace close)" + (f": {args.note}" if args.note else "")
    if status == Status.INTERRUPTED:
        note = f"Interrupted: {note}"

    def end_if_running(fresh: dict[str, Any]) -> dict[str, Any] | None:
        if fresh.get(names.status) != Status.RUNNING:
            return None
        return _end_fields(reader, schema, table.kind, fresh, status, time.time(), note)

    # Read again just before writing (the lookup may be a while ago on a slow link).
    fresh, written = reader.update_if(table.name, found["id"], end_if_running)
    if written is None:
        raise cli.UserError(f"run {args.run_id} has ended already ({fresh.get(names.status)}); nothing changed")
    print(
        f"run {args.run_id} ended as {status} at {datetime.now(timezone.utc).isoformat(timespec='seconds')}", file=out
    )
    return 0
