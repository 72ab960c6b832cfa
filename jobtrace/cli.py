"""The ``jobtrace`` command: look at runs in Airtable, check the base, replay the journal, serve an emulator.

::

    jobtrace runs [--status S] [--job-type T] [--since 2d] [--limit N] [--json]
    jobtrace show RUN_ID [--json]
    jobtrace check
    jobtrace replay [--journal PATH] [--timeout S] [--retry-undeliverable]
    jobtrace reap [--older-than DURATION] [--dry-run]
    jobtrace close RUN_ID [--status STATUS] [--note TEXT]
    jobtrace emulator [--port N] [--base APP_ID=SCHEMA.json] ...

Configuration comes from the environment, as for the Airtable sink:
``AIRTABLE_API_KEY``, ``AIRTABLE_BASE_ID`` and optionally
``AIRTABLE_ENDPOINT_URL`` (e.g. the emulator), ``JOBTRACE_JOURNAL`` and
``JOBTRACE_REDIS_URL``. The commands read the base through
:class:`jobtrace.sinks.airtable.BaseReader` and only render what it returns:
every request draws from the base's shared budget
(:func:`jobtrace.sinks.airtable.budget_for`), so a command run beside jobs
never makes them (or itself) meet a 429; a 429, a 5xx or no answer is tried
again by its one retry policy; what still fails is one
:class:`~jobtrace.delivery.airtable.AirtableError` whose message says what to fix.
A user mistake (no configuration, an unknown or malformed run ID, a bad
``--since``) or an Airtable failure is one line on stderr and exit status 1
(2 for usage errors), never a traceback. The API key is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ._display import human_duration, parse_airtable_time
from ._text import VisibleWriter, visible
from .argtypes import positive_count, positive_seconds
from .errors import JobtraceError
from .run_ids import parse_run_id, validate_job_run_id
from .schema import Schema

if TYPE_CHECKING:
    from .sinks.airtable.reads import BaseReader

__all__ = ["main"]

_SINCE = re.compile(r"\s*(\d+)\s*([smhdw])\s*")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit status 1."""


@dataclass(frozen=True)
class Settings:
    """What the environment configures. ``repr`` never shows the key."""

    api_key: str
    base_id: str
    endpoint_url: str | None
    redis_url: str | None = None

    def __repr__(self) -> str:
        return f"Settings(base_id={self.base_id!r}, endpoint_url={self.endpoint_url!r})"


def _settings(env: Mapping[str, str]) -> Settings:
    api_key = env.get("AIRTABLE_API_KEY", "").strip()
    base_id = env.get("AIRTABLE_BASE_ID", "").strip()
    missing = [name for name, value in (("AIRTABLE_API_KEY", api_key), ("AIRTABLE_BASE_ID", base_id)) if not value]
    if missing:
        raise UserError(f"not configured: set {' and '.join(missing)} (and AIRTABLE_ENDPOINT_URL for the emulator)")
    if not re.fullmatch(r"app[A-Za-z0-9]{14}", base_id):
        raise UserError(f"AIRTABLE_BASE_ID {base_id!r} is not a base ID (expected 'app' + 14 letters and digits)")
    return Settings(
        api_key,
        base_id,
        env.get("AIRTABLE_ENDPOINT_URL", "").strip() or None,
        env.get("JOBTRACE_REDIS_URL", "").strip() or None,
    )


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``12h``, ``2d``, ``1w`` -> the UTC time that long ago; else ``UserError``."""
    match = _SINCE.fullmatch(text)
    if match is None:
        raise UserError(f"--since expects a duration like 30m, 12h, 2d or 1w (s, m, h, d, w), got {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    now = now or datetime.now(timezone.utc)
    try:
        return now - timedelta(**{_UNITS[unit]: amount})
    except OverflowError:
        raise UserError(f"--since {text!r} reaches back before year 1") from None


# -- talking to Airtable -------------------------------------------------------------------


def reader_for(settings: Settings) -> BaseReader:
    """How every command reads the base: within jobtrace's share of its shared budget, with the sink's retries.

    What fails is an ``AirtableError`` (a ``JobtraceError``): ``main`` prints its message as one line.
    """
    from .sinks.airtable import DEFAULT_ENDPOINT, BaseReader, budget_for

    endpoint = settings.endpoint_url or DEFAULT_ENDPOINT
    budget = budget_for(endpoint, settings.base_id, redis_url=settings.redis_url or "")
    return BaseReader(settings.api_key, settings.base_id, endpoint, budget)


def _duration(fields: Mapping[str, Any], start: str | None, end: str | None, now: datetime) -> str:
    started = parse_airtable_time(fields.get(start)) if start else None
    if started is None:
        return ""
    ended = parse_airtable_time(fields.get(end)) if end else None
    seconds = int(((ended or now) - started).total_seconds())
    text = human_duration(max(seconds, 0))
    return text if ended is not None else f"{text}+"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = visible(str(value).replace("\n", " "))
    return text if len(text) <= 60 else text[:57] + "..."


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)


# Public names for the command modules registered below (jobtrace/_cli_*.py, jobtrace/_lifecycle_cli.py).
read_settings = _settings
print_table = _table


# -- the commands ----------------------------------------------------------------------------------


def cmd_runs(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from pyairtable import formulas

    settings = _settings(env)
    schema = Schema.default()
    names = schema.job.names
    since = parse_since(args.since) if args.since is not None else None
    conditions: list[formulas.Formula] = []
    match: dict[str, Any] = {}
    if args.status is not None:
        try:
            match[names.status] = schema.job.normalize_status(args.status)
        except JobtraceError as exc:
            raise UserError(f"--status: {exc}") from None
    if args.job_type is not None:
        if names.job_type is None:
            raise UserError(f"table {schema.job.name!r} has no job type field to filter on")
        match[names.job_type] = args.job_type
    if match:
        conditions.append(formulas.match(match))
    if since is not None:
        if names.start_time is None:
            raise UserError(f"table {schema.job.name!r} has no start time field to filter on")
        conditions.append(formulas.GTE(formulas.Field(names.start_time), since))
    formula = (formulas.AND(*conditions) if len(conditions) > 1 else conditions[0]) if conditions else None
    # Newest first; runs started in the same millisecond by their run IDs (unique, increasing per process).
    sort = [f"-{names.start_time}", f"-{names.run_id}"] if names.start_time else [f"-{names.run_id}"]
    records = reader_for(settings).records(schema.job.name, formula=formula, sort=sort, max_records=args.limit)
    fields = [r["fields"] for r in records]
    if args.json:
        json.dump(fields, out, indent=2, sort_keys=True)
        print(file=out)
        return 0
    if not fields:
        print("no job runs found", file=out)
        return 0
    now = datetime.now(timezone.utc)
    counters = [n for n in schema.rollup_counters if any(n in f for f in fields)]
    columns: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = [
        ("Run ID", lambda f: f.get(names.run_id)),
        ("Job Type", lambda f: f.get(names.job_type or "")),
        ("Status", lambda f: f.get(names.status)),
        ("Start Time", lambda f: f.get(names.start_time or "")),
        ("Elapsed", lambda f: _duration(f, names.start_time, names.end_time, now)),
        ("Clients", lambda f: _clients_cell(f, names.clients_processed, names.clients_failed)),
    ]
    columns += [(name, _getter(name)) for name in counters]
    rows = [[title for title, _ in columns]]
    rows += [[_cell(get(f)) for _, get in columns] for f in fields]
    _table(rows, out)
    return 0


def _getter(name: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda fields: fields.get(name)


def _clients_cell(fields: Mapping[str, Any], processed: str | None, failed: str | None) -> str:
    done = fields.get(processed) if processed else None
    if done is None:
        return ""
    bad = fields.get(failed) if failed else None
    return f"{_cell(done)} ({_cell(bad)} failed)" if bad else _cell(done)


def cmd_show(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from pyairtable import formulas

    try:
        parsed = parse_run_id(args.run_id)
    except JobtraceError as exc:
        raise UserError(str(exc)) from None
    if parsed.client_id is not None:
        raise UserError(
            f"{args.run_id!r} is a client run ID; show takes the job run ID {parsed.run_id!r} "
            f"(its client runs are listed with it)"
        )
    run_id = validate_job_run_id(args.run_id)
    settings = _settings(env)
    schema = Schema.default()
    reader = reader_for(settings)
    job_names, client_names = schema.job.names, schema.client.names
    job = reader.first(schema.job.name, formulas.match({job_names.run_id: run_id}))
    sort = [client_names.start_time] if client_names.start_time is not None else None
    client_fields = reader.client_runs(schema.client.name, client_names.run_id, run_id, sort=sort)
    if job is None and not client_fields:
        raise UserError(f"no run {run_id} in base {settings.base_id}")
    job_fields = job["fields"] if job is not None else None
    if args.json:
        json.dump({"job": job_fields, "clients": client_fields}, out, indent=2, sort_keys=True)
        print(file=out)
        return 0
    now = datetime.now(timezone.utc)
    if job_fields is None:
        print(f"Job run {run_id}: no job record (client runs only)", file=out)
    else:
        print(f"Job run {run_id}", file=out)
        duration = _duration(job_fields, job_names.start_time, job_names.end_time, now)
        # "Elapsed": measured here from Start/End Time; the base may have its own Duration formula.
        shown = {**job_fields, "Elapsed": duration} if duration else dict(job_fields)
        formatter = _formatter(schema.job.name)
        width = max(len(k) for k in shown)
        for key in _field_order(schema.job.fields, shown):
            value = shown[key]
            if key == job_names.notes and isinstance(value, str):
                lines = value.split("\n")
                print(f"  {visible(key).ljust(width)}  {visible(lines[0])}", file=out)
                for line in lines[1:]:
                    print(f"  {''.ljust(width)}  {visible(line)}", file=out)
            else:
                print(f"  {visible(key).ljust(width)}  {_cell(formatter(key, value))}", file=out)
    print(file=out)
    if not client_fields:
        print("No client runs.", file=out)
        return 0
    print(f"Client runs ({len(client_fields)})", file=out)
    counters = [
        n
        for n in sorted(schema.client.number_fields, key=list(schema.client.fields).index)
        if any(f.get(n) for f in client_fields)
    ]
    rows = [["Client ID", "Status", "Start Time", "Elapsed", *counters, "Errors"]]
    for f in client_fields:
        rows.append(
            [
                _cell(f.get(client_names.client_id or "")),
                _cell(f.get(client_names.status)),
                _cell(f.get(client_names.start_time or "")),
                _duration(f, client_names.start_time, client_names.end_time, now),
                *(_cell(f.get(n)) for n in counters),
                _cell(f.get(client_names.errors or "")),
            ]
        )
    _table(rows, out)
    return 0


def _formatter(table_name: str) -> Any:
    """Formats cells of a table of the default base by their types (percent, duration, NaN...)."""
    from ._display import CellFormatter
    from .schema import default_base_metadata

    tables = {t["name"]: t for t in default_base_metadata()["tables"]}
    return CellFormatter(tables.get(table_name))


def _field_order(fields: Mapping[str, Any], shown: Mapping[str, Any]) -> list[str]:
    order = {name: i for i, name in enumerate(fields)}
    return sorted(shown, key=lambda k: (order.get(k, len(order)), k))


def cmd_check(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from .sinks.airtable import check_base

    if getattr(args, "fix", False):
        from ._cli_schema import cmd_fix

        return cmd_fix(args, env, out)
    settings = _settings(env)
    schema = Schema.default()
    where = settings.endpoint_url or "https://api.airtable.com"
    print(f"base {settings.base_id} at {where}", file=out)
    problems: list[Any] = check_base(reader_for(settings), settings.base_id, schema)
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        print(f"{problem.severity}: {problem}", file=out)
    if errors:
        print(f"{len(errors)} error(s): the Airtable sink will refuse this base until they are fixed", file=out)
        return 1
    if any(p.message.startswith("could not read the schema") for p in problems):
        print("not checked: Airtable could not be reached", file=out)
        return 1
    from ._lifecycle_cli import heartbeat_note

    note = heartbeat_note(settings)
    if note:
        print(note, file=out)
    if problems:
        print("usable, with warnings", file=out)
    else:
        print(f"ok: tables {schema.job.name!r} and {schema.client.name!r} fit the field mapping", file=out)
    return 0


def cmd_replay(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from .delivery.journal import default_journal_path
    from .sinks.airtable import replay

    settings = _settings(env)
    from .sinks.airtable.replay import JournalError

    journal = args.journal or env.get("JOBTRACE_JOURNAL") or str(default_journal_path())
    if not os.path.lexists(journal):
        print(f"nothing to replay: no journal at {journal}", file=out)
        return 0
    try:
        result = replay(
            settings.api_key,
            settings.base_id,
            journal_path=journal,
            endpoint_url=settings.endpoint_url,
            timeout=args.timeout,
            retry_undeliverable=args.retry_undeliverable,
        )
    except JournalError as exc:
        raise UserError(str(exc)) from None
    print(f"replayed {journal} to base {settings.base_id}: {result}", file=out)
    if not result.ok:
        print(
            f"{result.remaining} record(s) not delivered: they stay in the journal; run 'jobtrace replay' again",
            file=out,
        )
        return 1
    if result.undeliverable:
        print(
            f"{result.undeliverable} record(s) were refused by Airtable: fix the base ('jobtrace check'), then "
            f"run 'jobtrace replay --retry-undeliverable'",
            file=out,
        )
    return 0


# -- the parser and main ------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (plus the usage), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {visible(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``jobtrace`` argument parser, with ``--help`` on every subcommand."""
    parser = _Parser(
        prog="jobtrace",
        description="Look at jobtrace runs in Airtable, check the base, replay the journal, serve an emulator. "
        "Configuration: AIRTABLE_API_KEY, AIRTABLE_BASE_ID, AIRTABLE_ENDPOINT_URL (optional), JOBTRACE_JOURNAL.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"jobtrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    runs = sub.add_parser(
        "runs", help="recent job runs, newest first", description="List recent job runs, newest first."
    )
    runs.add_argument("--status", help="only runs with this status (e.g. running, failed)")
    runs.add_argument("--job-type", help="only runs of this job type")
    runs.add_argument("--since", help="only runs started within this long: 30m, 12h, 2d, 1w")
    runs.add_argument("--limit", type=positive_count, default=20, help="at most this many runs (default 20)")
    runs.add_argument("--json", action="store_true", help="print the records' fields as JSON")
    runs.set_defaults(handler=cmd_runs)

    show = sub.add_parser(
        "show", help="one run: its job record and client runs", description="Show a job run and its client runs."
    )
    show.add_argument("run_id", metavar="RUN_ID", help="the job run ID, YYMMDD-HHMMSS")
    show.add_argument("--json", action="store_true", help="print the records' fields as JSON")
    show.set_defaults(handler=cmd_show)

    check = sub.add_parser(
        "check",
        help="check the configuration and the base against the field mapping",
        description="Check the configuration and the base's schema against jobtrace's field mapping; "
        "print what is wrong and how to fix it. Exit status 1 when the sink would refuse the base.",
    )
    check.add_argument("--fix", action="store_true", help="add the fields the mapping needs and the base lacks")
    check.add_argument("--yes", action="store_true", help="with --fix: do not ask before changing the base")
    check.set_defaults(handler=cmd_check)

    from . import _cli_report, _cli_schema, _cli_watch

    _cli_schema.add_parser(sub)  # schema export, schema roles
    _cli_watch.add_parser(sub)
    _cli_report.add_parser(sub)

    rep = sub.add_parser(
        "replay",
        help="deliver what the journal holds",
        description="Deliver the changes earlier processes could not deliver (the journal) to the base.",
    )
    rep.add_argument("--journal", help="the journal file (default: $JOBTRACE_JOURNAL or the user's state directory)")
    rep.add_argument(
        "--timeout", type=positive_seconds, default=120.0, help="give up after this many seconds (default 120)"
    )
    rep.add_argument(
        "--retry-undeliverable", action="store_true", help="also resend what Airtable refused before (after a fix)"
    )
    rep.set_defaults(handler=cmd_replay)

    from . import _lifecycle_cli

    _lifecycle_cli.add_parsers(sub)  # reap, close

    from .testing.emulator import cli as emulator_cli

    emu = emulator_cli.add_parser(sub)
    emu.set_defaults(handler=_run_emulator)
    return parser


def _run_emulator(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from .testing.emulator import cli as emulator_cli

    return emulator_cli.run(args)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the ``jobtrace`` command; return the exit status."""
    args = build_parser().parse_args(argv)
    environ = os.environ if env is None else env
    # Every output shows control characters from the records visibly (never raw): see _text.
    out: Any = sys.stdout if getattr(args, "raw_terminal", False) else VisibleWriter(sys.stdout)
    try:
        code: int = args.handler(args, environ, out)
    except UserError as exc:
        print(f"jobtrace: error: {visible(str(exc))}", file=sys.stderr)
        return 1
    except JobtraceError as exc:
        print(f"jobtrace: error: {visible(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`jobtrace show ... | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
