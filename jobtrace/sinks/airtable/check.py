"""The schema check: does the Airtable base fit jobtrace's field mapping?

:func:`check_base` reads the base through the metadata API and compares it
with a :class:`~jobtrace.Schema`. Each mismatch is a :class:`Problem` naming
the table, the field and the fix. ``AirtableSink.start()`` raises
``ConfigurationError`` on errors; ``jobtrace check`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pyairtable import Api

from ...delivery.airtable import AirtableError
from ...schema import COMPUTED_TYPES, DATETIME_TYPES, NUMBER_TYPES, TEXT_TYPES, Schema, TableSchema
from ...statuses import Status
from .reads import BaseReader, base_metadata

__all__ = ["TRACKER_STATUSES", "Problem", "base_metadata", "check_base", "check_metadata"]

#: The statuses jobtrace itself writes; the base's ``Status`` field must offer each.
TRACKER_STATUSES = (
    Status.RUNNING,
    Status.COMPLETED,
    Status.COMPLETED_WITH_ERRORS,
    Status.FAILED,
    Status.CANCELLED,
    Status.INTERRUPTED,
)


@dataclass(frozen=True)
class Problem:
    """One way the base does not fit the mapping."""

    severity: Literal["error", "warning"]
    table: str | None
    field: str | None
    message: str
    fix: str

    def __str__(self) -> str:
        where = ".".join(repr(p) for p in (self.table, self.field) if p is not None)
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.message}. Fix: {self.fix}"


def check_base(
    api: Api | BaseReader, base_id: str, schema: Schema, *, seen: dict[str, Any] | None = None
) -> list[Problem]:
    """Compare the base with ``schema``; return the problems (empty when everything fits).

    Errors: a table or mapped field missing, a mapped field computed in the
    base (formula, rollup...), a field whose type cannot take what jobtrace
    writes, a status jobtrace writes missing from the ``Status`` choices, or a
    token Airtable refuses. Warnings: the metadata API is not available to
    the token (it needs the ``schema.bases:read`` scope) or Airtable cannot be
    reached; the caller then goes on with the configured schema. ``seen``, if
    given, receives the metadata that was read. Through a :class:`BaseReader`,
    its requests take the budget's slots and its retries; through a plain
    ``pyairtable.Api``, each is sent once.
    """
    reader = api if isinstance(api, BaseReader) else BaseReader.over(api, base_id)
    try:
        meta = reader.metadata()
    except AirtableError as exc:
        if exc.kind == "token":
            return [
                Problem(
                    "error",
                    None,
                    None,
                    "Airtable refused the API token (401)",
                    "set AIRTABLE_API_KEY to a valid personal access token",
                )
            ]
        if exc.kind == "no_access":
            return [_without_metadata(reader, base_id, schema, exc.status)]
        return [_unreachable(base_id, exc.reason)]
    if seen is not None:  # the metadata read, for a caller that wants it too (no second request)
        seen.update(meta)
    return check_metadata(meta, base_id, schema)


def check_metadata(meta: dict[str, Any], base_id: str, schema: Schema) -> list[Problem]:
    """Compare the base's metadata (as :func:`base_metadata` returns it) with ``schema``; no request."""
    tables = {t["name"]: t for t in meta.get("tables", [])}
    by_id = {t.get("id"): t for t in meta.get("tables", [])}
    problems: list[Problem] = []
    for configured in (schema.job, schema.client):
        table = tables.get(configured.name) or by_id.get(configured.id)
        if table is None:
            problems.append(
                Problem(
                    "error",
                    configured.name,
                    None,
                    f"base {base_id} has no table {configured.name!r} (tables: {', '.join(sorted(tables)) or 'none'})",
                    f"create the table in Airtable, or name your table with "
                    f"Schema.from_metadata(..., {configured.kind}_table='Your Table')",
                )
            )
            continue
        if table["name"] != configured.name:
            # Found by its ID only: the table was renamed. jobtrace writes and reads it by name, so every
            # request would fail; say so here rather than pass the check.
            problems.append(
                Problem(
                    "error",
                    configured.name,
                    None,
                    f"base {base_id}'s table {configured.id} is named {table['name']!r} now, "
                    f"not {configured.name!r} as the schema says (it was renamed)",
                    f"rename it back to {configured.name!r} in Airtable, or name it in the schema with "
                    f"Schema.from_metadata(..., {configured.kind}_table={table['name']!r})",
                )
            )
            continue
        problems.extend(_check_table(configured, table))
    return problems


def _without_metadata(reader: BaseReader, base_id: str, schema: Schema, status: int) -> Problem:
    """The metadata API refused: a token without ``schema.bases:read`` (a warning), or no such base (an error).

    Airtable answers both with 403, so one read of the job table tells them apart.
    """
    try:
        reader.first(schema.job.name)
    except AirtableError as exc:
        data_status = exc.status
        if exc.kind == "no_access":
            return Problem(
                "error",
                None,
                None,
                f"base {base_id} was not found: Airtable answered {status} for its schema and {data_status} for "
                f"the records of {schema.job.name!r}, so the base does not exist or this token has no access to it",
                "check AIRTABLE_BASE_ID (the 'app...' part of the base's URL) and give the token access to the base",
            )
        # else: cannot tell; the metadata answer stands
    return Problem(
        "warning",
        None,
        None,
        f"the metadata API of base {base_id} is not available to this token (HTTP {status}); "
        "the field mapping was not checked against the base",
        "give the token the schema.bases:read scope",
    )


def _unreachable(base_id: str, why: str) -> Problem:
    return Problem(
        "warning",
        None,
        None,
        f"could not read the schema of base {base_id} ({why}); the field mapping was not checked",
        "check AIRTABLE_ENDPOINT_URL and the network; changes are journaled and delivered when Airtable is back",
    )


def _category(field_type: str) -> str:
    if field_type in NUMBER_TYPES:
        return "number"
    if field_type in TEXT_TYPES:
        return "text"
    if field_type in DATETIME_TYPES:
        return "date"
    if field_type in COMPUTED_TYPES:
        return "computed"
    return field_type


def _check_table(configured: TableSchema, table: dict[str, Any]) -> list[Problem]:
    name = table["name"]
    fields = {f["name"]: f for f in table.get("fields", [])}
    problems: list[Problem] = []
    roles_of = {field: role for role, field in configured.roles.items()}
    written = set(roles_of) | {configured.resolve(n).name for n in configured.writable_names()}
    for field_name in sorted(written):
        role = roles_of.get(field_name)
        what = f"mapped to {role!r}" if role else "writable in the field mapping"
        spec = fields.get(field_name)
        if spec is None:
            problems.append(
                Problem(
                    "error",
                    name,
                    field_name,
                    f"the field ({what}) is missing from the table",
                    f"add a {configured.fields[field_name].type} field {field_name!r} to {name!r} in Airtable, "
                    "or configure jobtrace with this base's own schema (Schema.from_metadata)",
                )
            )
            continue
        if spec["type"] in COMPUTED_TYPES:
            problems.append(
                Problem(
                    "error",
                    name,
                    field_name,
                    f"the field ({what}) is computed in the base ({spec['type']}) and cannot be written",
                    f"map {role!r} to a writable field"
                    if role
                    else "make it a plain field, or remove it from the "
                    "mapping by configuring jobtrace with this base's own schema (Schema.from_metadata)",
                )
            )
            continue
        expected = configured.fields[field_name].type
        if _category(expected) != _category(spec["type"]) and not (role in ("status",) and spec["type"] in TEXT_TYPES):
            problems.append(
                Problem(
                    "error",
                    name,
                    field_name,
                    f"the field is {spec['type']} in the base but {expected} in the field mapping",
                    f"change the field's type to {expected} in Airtable, or configure jobtrace with this base's own "
                    "schema (Schema.from_metadata)",
                )
            )
    status_name = configured.roles.get("status")
    status = fields.get(status_name or "")
    if status is not None and status["type"] == "singleSelect":
        choices = {c["name"] for c in (status.get("options") or {}).get("choices", [])}
        # Also the base's own statuses the mapping offers (e.g. "No Leads To Score"): a user may set them.
        # A status the mapping aliases (e.g. Cancelled written as Failed) needs its alias, not itself.
        aliases = configured.status_aliases
        wanted = dict.fromkeys((*(aliases.get(s, s) for s in TRACKER_STATUSES), *configured.status_choices))
        missing = [s for s in wanted if s not in choices]
        if missing:
            problems.append(
                Problem(
                    "error",
                    name,
                    status_name,
                    f"the status choice(s) {', '.join(repr(s) for s in missing)} that jobtrace writes are missing",
                    f"add {', '.join(repr(s) for s in missing)} to the options of the single select {status_name!r} "
                    f"of {name!r} in Airtable, or let the base's own choices stand for them "
                    f"(Schema.from_metadata(..., status_aliases={{'Cancelled': 'Failed'}}))",
                )
            )
    return problems
