"""``jobtrace watch [RUN_ID]``: a live terminal view of a running job, until it ends.

Each poll reads the job record, the client runs still ``Running`` (the ones in
flight) and, when ``Clients Failed`` went up, the latest failed client runs:
two or three requests however many clients the job has, every ``--interval``
seconds (20 by default: about six requests a minute), through the CLI's
Airtable access (the base's rate budget). Between polls only the clock moves.

The view (rich) shows clients done, succeeded and failed, the clients in flight,
the rate and elapsed time, a progress bar when the job said how many clients it
expects (``job.expect_clients(n)``: Progress reads "12 of 50 clients"), the latest
notes and errors. Every text from the base goes through ``visible()`` and into
``rich.text.Text`` (never markup), so scraped content cannot style or drive the
terminal. When the run ends the view stops and a final summary is printed.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from ._display import human_duration, parse_airtable_time
from ._text import visible
from .argtypes import MAX_SECONDS
from .cli import UserError, read_settings, reader_for
from .errors import JobtraceError
from .records import FAILED_STATUSES, Status
from .run_ids import validate_job_run_id
from .schema import Schema

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["Snapshot", "add_parser", "cmd_watch", "render", "summary"]

_PROGRESS = re.compile(r"(\d+)\s+of\s+(\d+)\s+clients")
#: At least this long between two polls, whatever --interval says.
MIN_INTERVAL = 1.0


def _interval(text: str) -> float:
    expected = f"expected a number of seconds from {MIN_INTERVAL:g} to {MAX_SECONDS:.0f} (7 days), got {text!r}"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    if not MIN_INTERVAL <= value <= MAX_SECONDS:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(expected)
    return value


def add_parser(sub: Any) -> None:
    """Register ``watch`` on the ``jobtrace`` subparsers."""
    watch = sub.add_parser(
        "watch",
        help="a live view of a running job until it ends",
        description="Watch a running job: clients done/succeeded/failed, in flight, rate, elapsed, progress, "
        "latest notes and errors; stops and prints a summary when the run ends.",
    )
    watch.add_argument("run_id", metavar="RUN_ID", nargs="?", help="the job run ID (default: the newest running job)")
    watch.add_argument(
        "--interval", type=_interval, default=20.0, help="seconds between reads of the base (default 20, at least 1)"
    )
    watch.set_defaults(handler=cmd_watch, raw_terminal=True)


@dataclass
class Snapshot:
    """What one poll read (fields keyed by Airtable names)."""

    run_id: str
    job: dict[str, Any] = field(default_factory=dict)
    running: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    read_at: float = 0.0
    error: str | None = None


def _number(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


class _Reader:
    """The three reads of a poll, each one request under the base's rate budget."""

    def __init__(self, settings: Any, schema: Schema) -> None:
        self.settings = settings
        self.schema = schema
        self.reader = reader_for(settings)
        self._failed_seen = -1
        self._failures: list[dict[str, Any]] = []

    def newest_running(self) -> str:
        from pyairtable import formulas

        names = self.schema.job.names
        sort = [f"-{names.start_time}", f"-{names.run_id}"] if names.start_time else [f"-{names.run_id}"]
        found = self.reader.records(
            self.schema.job.name, formula=formulas.match({names.status: Status.RUNNING}), sort=sort, max_records=1
        )
        if not found:
            raise UserError(
                f"no running job in base {self.settings.base_id}; give a RUN_ID ('jobtrace runs' lists them)"
            )
        return str(found[0]["fields"][names.run_id])

    def poll(self, run_id: str) -> Snapshot:
        from pyairtable import formulas

        job_names, client_names = self.schema.job.names, self.schema.client.names
        job = self.reader.first(self.schema.job.name, formulas.match({job_names.run_id: run_id}))
        if job is None:
            raise UserError(f"no run {run_id} in base {self.settings.base_id}")
        fields: dict[str, Any] = job["fields"]
        prefix = formulas.EQ(formulas.LEFT(formulas.Field(client_names.run_id), len(run_id) + 1), f"{run_id}-")
        clients = self.schema.client.name
        running_found = self.reader.records(
            clients,
            formula=formulas.AND(prefix, formulas.match({client_names.status: Status.RUNNING})),
            sort=[client_names.start_time] if client_names.start_time else None,
            max_records=100,
        )
        running = [r["fields"] for r in running_found]
        failed = _number(fields.get(job_names.clients_failed or ""))
        if failed != self._failed_seen:
            # Only when the count moved: most polls cost two requests, not three.
            failed_names = [formulas.match({client_names.status: s}) for s in sorted(FAILED_STATUSES)]
            failures = self.reader.records(
                clients,
                formula=formulas.AND(prefix, formulas.OR(*failed_names)),
                sort=[f"-{client_names.end_time}"] if client_names.end_time else None,
                max_records=5,
            )
            self._failures = [r["fields"] for r in failures]
            self._failed_seen = failed
        return Snapshot(run_id, fields, running, list(self._failures), time.time())


def render(snapshot: Snapshot, schema: Schema, now: datetime | None = None) -> RenderableType:
    """The live view of one snapshot (rich renderables; every text from the base shown visibly)."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    now = now or datetime.now(timezone.utc)
    names, client_names = schema.job.names, schema.client.names
    job = snapshot.job
    started = parse_airtable_time(job.get(names.start_time or ""))
    elapsed = (now - started).total_seconds() if started else 0.0
    done = _number(job.get(names.clients_processed or ""))
    succeeded = _number(job.get(names.clients_succeeded or ""))
    failed = _number(job.get(names.clients_failed or ""))
    status = visible(str(job.get(names.status, "")))
    title = Text.assemble(
        ("Job run ", "bold"),
        (snapshot.run_id, "bold cyan"),
        f"  {visible(str(job.get(names.job_type or '', '')))}  ",
        (status, "bold green" if status == Status.RUNNING else "bold"),
    )
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    clients = Text(f"{done} done: {succeeded} succeeded, ")
    clients.append(f"{failed} failed", style="bold red" if failed else "")
    grid.add_row("Clients", clients)
    in_flight = [visible(str(f.get(client_names.client_id or "", "?"))) for f in snapshot.running]
    shown = ", ".join(in_flight[:8]) + (f" and {len(in_flight) - 8} more" if len(in_flight) > 8 else "")
    grid.add_row("In flight", Text(f"{len(in_flight)}" + (f": {shown}" if in_flight else "")))
    rate = done / (elapsed / 60) if elapsed >= 1 else 0.0
    grid.add_row("Rate", Text(f"{rate:.1f} clients/min"))
    grid.add_row("Elapsed", Text(human_duration(elapsed)))
    progress_text = str(job.get(names.progress or "", "") or "")
    match = _PROGRESS.search(progress_text)
    parts: list[RenderableType] = [title, grid]
    if match and int(match.group(2)) > 0:
        total = int(match.group(2))
        bar = Table.grid(padding=(0, 2))
        bar.add_column(style="dim")
        bar.add_column(width=40)
        bar.add_column()
        bar.add_row("Progress", ProgressBar(total=total, completed=min(done, total), width=40), f"{done}/{total}")
        parts.append(bar)
    elif progress_text:
        grid.add_row("Progress", Text(visible(progress_text)))
    notes = [line for line in str(job.get(names.notes or "", "") or "").split("\n") if line.strip()]
    if notes:
        parts.append(Text("Latest notes", style="bold"))
        parts.extend(Text(f"  {visible(line)}") for line in notes[-5:])
    if snapshot.failures:
        parts.append(Text("Latest errors", style="bold red"))
        for f in snapshot.failures:
            client = visible(str(f.get(client_names.client_id or "", "?")))
            error = visible(str(f.get(client_names.errors or "", "") or f.get(client_names.status, "")))
            parts.append(Text.assemble("  ", (client, "red"), f": {error[:200]}"))
    read = datetime.fromtimestamp(snapshot.read_at, timezone.utc).strftime("%H:%M:%S") if snapshot.read_at else "-"
    footer = f"read from Airtable at {read} UTC"
    if snapshot.error:
        footer += f"; the last read failed ({visible(snapshot.error)}), retrying"
    parts.append(Text(footer, style="dim"))
    return Group(*parts)


def summary(snapshot: Snapshot, schema: Schema) -> list[str]:
    """The lines printed when the run has ended."""
    names, client_names = schema.job.names, schema.client.names
    job = snapshot.job
    started = parse_airtable_time(job.get(names.start_time or ""))
    ended = parse_airtable_time(job.get(names.end_time or ""))
    took = f" after {human_duration((ended - started).total_seconds())}" if started and ended else ""
    done = _number(job.get(names.clients_processed or ""))
    succeeded = _number(job.get(names.clients_succeeded or ""))
    failed = _number(job.get(names.clients_failed or ""))
    status = visible(str(job.get(names.status, "")))
    lines = [
        f"Job run {snapshot.run_id} ended {status}{took}: {done} client run(s), {succeeded} succeeded, {failed} failed"
    ]
    error = job.get(names.errors or "")
    if error:
        lines.append(f"  Error: {visible(str(error))}")
    for f in snapshot.failures:
        client = visible(str(f.get(client_names.client_id or "", "?")))
        lines.append(f"  failed: {client}: {visible(str(f.get(client_names.errors or '', '') or ''))}")
    lines.append(f"Details: jobtrace show {snapshot.run_id}; jobtrace report {snapshot.run_id} -o report.html")
    return lines


def cmd_watch(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from rich.console import Console
    from rich.live import Live

    from .delivery.airtable import AirtableError

    settings = read_settings(env)
    schema = Schema.default()
    reader = _Reader(settings, schema)
    if args.run_id is not None:
        try:
            run_id = validate_job_run_id(args.run_id)
        except JobtraceError as exc:
            raise UserError(str(exc)) from None
    else:
        run_id = reader.newest_running()
    snapshot = reader.poll(run_id)
    console = Console(file=out if out is not sys.stdout else None)
    status_name = schema.job.names.status
    if snapshot.job.get(status_name) == Status.RUNNING:
        with Live(render(snapshot, schema), console=console, refresh_per_second=1, transient=False) as live:
            next_poll = time.monotonic() + args.interval
            while True:
                time.sleep(min(1.0, max(next_poll - time.monotonic(), 0.05)))
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + args.interval
                    try:
                        snapshot = reader.poll(run_id)
                    except (UserError, AirtableError) as exc:  # shown in the view; the next poll tries again
                        snapshot.error = str(exc)
                    else:
                        if snapshot.job.get(status_name) != Status.RUNNING:
                            live.update(render(snapshot, schema))
                            break
                live.update(render(snapshot, schema))
    else:
        console.print(render(snapshot, schema))
    for line in summary(snapshot, schema):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return 0
