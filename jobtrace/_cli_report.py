"""``jobtrace report [RUN_ID] -o report.html [--job-type T --last N]``: a run report to look at.

Reads the job record and its client runs (and, with ``--job-type``, the last N
job records of that type for the history chart) and writes one self-contained
HTML file (see :mod:`._report_html`): it opens offline, from a mail attachment
or a CI artefact.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any, TextIO

from .cli import UserError, read_settings, reader_for
from .errors import JobtraceError
from .run_ids import parse_run_id, validate_job_run_id
from .schema import Schema, default_base_metadata

__all__ = ["add_parser", "cmd_report"]


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 100, got {text!r}") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 100, got {text!r}")
    return value


def add_parser(sub: Any) -> None:
    """Register ``report`` on the ``jobtrace`` subparsers."""
    report = sub.add_parser(
        "report",
        help="write an HTML report of a run (timeline, failures, history)",
        description="Write one self-contained HTML file about a run: its summary, a timeline with one bar per "
        "client run, the failed clients with their errors; with --job-type, the history of that job type.",
    )
    report.add_argument(
        "run_id", metavar="RUN_ID", nargs="?", help="the job run ID (default with --job-type: its newest)"
    )
    report.add_argument("-o", "--output", metavar="FILE", default="report.html", help="where (default report.html)")
    report.add_argument("--job-type", help="add the history of this job type (duration, failed clients per run)")
    report.add_argument("--last", type=_count, default=20, help="with --job-type: this many runs (default 20)")
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from pyairtable import formulas

    from ._report_html import build_report

    settings = read_settings(env)
    schema = Schema.default()
    names, client_names = schema.job.names, schema.client.names
    if args.run_id is None and args.job_type is None:
        raise UserError("give a RUN_ID, or --job-type to report on that job type's newest run")
    if args.job_type is not None and names.job_type is None:
        raise UserError(f"table {schema.job.name!r} has no job type field")
    run_id: str | None = None
    if args.run_id is not None:
        try:
            if parse_run_id(args.run_id).client_id is not None:
                raise UserError(f"{args.run_id!r} is a client run ID; report takes the job run ID")
            run_id = validate_job_run_id(args.run_id)
        except JobtraceError as exc:
            raise UserError(str(exc)) from None
    reader = reader_for(settings)
    history: list[dict[str, Any]] | None = None
    if args.job_type is not None and names.job_type is not None:
        sort = [f"-{names.start_time}", f"-{names.run_id}"] if names.start_time else [f"-{names.run_id}"]
        found = reader.records(
            schema.job.name, formula=formulas.match({names.job_type: args.job_type}), sort=sort, max_records=args.last
        )
        history = [r["fields"] for r in found]
        if run_id is None:
            if not history:
                raise UserError(f"no runs of job type {args.job_type!r} in base {settings.base_id}")
            run_id = str(history[0][names.run_id])
    assert run_id is not None
    job = reader.first(schema.job.name, formulas.match({names.run_id: run_id}))
    client_sort = [client_names.start_time] if client_names.start_time is not None else None
    client_fields = reader.client_runs(schema.client.name, client_names.run_id, run_id, sort=client_sort)
    if job is None and not client_fields:
        raise UserError(f"no run {run_id} in base {settings.base_id}")
    page = build_report(
        run_id, job["fields"] if job else None, client_fields, schema, default_base_metadata(), history=history
    )
    tmp = f"{args.output}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.replace(tmp, args.output)
    except OSError as exc:
        raise UserError(f"cannot write {args.output}: {exc.strerror}") from None
    failed = sum(1 for f in client_fields if f.get(client_names.status) in ("Failed", "Cancelled", "Interrupted"))
    extra = f", history of {len(history)} run(s)" if history is not None else ""
    print(
        f"wrote {args.output}: run {run_id}, {len(client_fields)} client run(s), {failed} failed{extra}",
        file=out,
    )
    return 0
