"""The field mapping: logical names <-> Airtable field names, per table.

A :class:`Schema` holds two :class:`TableSchema` objects, one for the job table
(``Job Tracking``) and one for the client table (``Client Run Results``). It is
built from the Airtable metadata API's shape (``GET /v0/meta/bases/{id}/tables``),
so the user's own base can replace the default, which matches the production
base jobtrace was written for.

Logical names are the snake_case of the Airtable name (``posts_processed`` ->
``Posts Processed``), except ``notes`` -> ``System Notes``. Exact Airtable names
are accepted too. Anything else raises at the call, with the list of valid
names: a silently dropped field is what broke the old tracking code.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from .errors import ComputedFieldError, ConfigurationError, InvalidValueError, UnknownFieldError
from .values import check_number, safe_text

__all__ = [
    "CLIENT_ROLES",
    "COMPUTED_TYPES",
    "JOB_ROLES",
    "FieldSpec",
    "ROLE_DOCS",
    "ROLE_TYPES",
    "RoleInfo",
    "RoleNames",
    "Schema",
    "SchemaMismatchError",
    "TableSchema",
    "default_base_metadata",
    "logical_name",
    "role_reference",
]

TableKind = Literal["job", "client"]

COMPUTED_TYPES = frozenset(
    {
        "formula",
        "rollup",
        "count",
        "lookup",
        "multipleLookupValues",
        "autoNumber",
        "createdTime",
        "lastModifiedTime",
        "createdBy",
        "lastModifiedBy",
        "button",
        "aiText",
    }
)
NUMBER_TYPES = frozenset({"number", "currency", "percent", "rating", "duration"})
TEXT_TYPES = frozenset({"singleLineText", "multilineText", "richText", "email", "url", "phoneNumber"})
DATETIME_TYPES = frozenset({"dateTime", "date"})

#: What jobtrace itself writes, by role, with the default Airtable field names.
JOB_ROLES: Mapping[str, str] = {
    "run_id": "Run ID",
    "job_type": "Job Type",
    "status": "Status",
    "start_time": "Start Time",
    "end_time": "End Time",
    "progress": "Progress",
    "notes": "System Notes",
    "errors": "Error Summary",
    "clients_processed": "Clients Processed",
    "clients_succeeded": "Clients Succeeded",
    "clients_failed": "Clients Failed",
    "last_client_processed": "Last Client Processed",
    "heartbeat": "Last Heartbeat",
}
CLIENT_ROLES: Mapping[str, str] = {
    "run_id": "Run ID",
    "client_id": "Client ID",
    "client_name": "Client Name",
    "status": "Status",
    "start_time": "Start Time",
    "end_time": "End Time",
    "progress": "Progress",
    "notes": "System Notes",
    "errors": "Errors",
    "heartbeat": "Last Heartbeat",
}
_REQUIRED_ROLES: Mapping[TableKind, tuple[str, ...]] = {
    "job": ("run_id", "status"),
    "client": ("run_id", "client_id", "status"),
}
#: What each role is for, shown in the README's role table (a test keeps the two in step).
#: A role the default base has no field for is created by ``jobtrace check --fix`` with the type
#: given here (``ROLE_TYPES``).
ROLE_DOCS: Mapping[str, str] = {
    "run_id": "The run's ID (`YYMMDD-HHMMSS`; client runs add `-<client ID>`): the key every write upserts on.",
    "job_type": 'The job\'s name, as given to `tracked_job("post-scoring")`.',
    "client_id": "The tenant a client run is for: with Run ID, the client record's key.",
    "client_name": "A display name for the client (`client_run(id, name=...)`).",
    "status": "Running, then how the run ended (see Statuses); a base may add its own choices "
    "or stand its own for jobtrace's (status aliases).",
    "start_time": "When the run started (UTC).",
    "end_time": "When the run ended (UTC); empty while it runs.",
    "progress": "Free text set with `update(progress=...)`; on a job with `expect_clients(n)`, "
    '"12 of 50 clients, 1 failed" unless the code sets it.',
    "notes": "One timestamped line per `note()`, plus what jobtrace notes itself (failures, resumes).",
    "errors": "The exception that failed the run (type and message).",
    "clients_processed": "Client runs ended so far (roll-up).",
    "clients_succeeded": "Client runs that ended Completed or Completed with Errors (roll-up).",
    "clients_failed": "Client runs that ended Failed, Cancelled or Interrupted (roll-up).",
    "last_client_processed": "The client whose run ended last (roll-up).",
    "heartbeat": "Refreshed while the process lives: a Running record whose heartbeat is old "
    "belongs to a dead process.",
}
#: The field type of each role, for a role the default base has no field for.
ROLE_TYPES: Mapping[str, str] = {"heartbeat": "dateTime"}

# Roles that jobtrace maintains itself; users set them through dedicated verbs
# (status=..., note()) or not at all.
_MANAGED_ROLES = frozenset(
    {
        "run_id",
        "client_id",
        "job_type",
        "status",
        "start_time",
        "end_time",
        "clients_processed",
        "clients_succeeded",
        "clients_failed",
        "last_client_processed",
        "heartbeat",
    }
)
#: Optional roles: written only when the base has the field (a ``Last Heartbeat`` dateTime tells lost hosts).
OPTIONAL_ROLES = frozenset({"heartbeat"})
# Names people used for the notes field in the old code; both were wrong.
_MISTAKEN_NOTES_NAMES = frozenset({"Notes", "Source", "source"})
_NON_WORD = re.compile(r"[^0-9a-z]+")


def logical_name(field_name: str) -> str:
    """Return the logical (snake_case) name of an Airtable field name."""
    return _NON_WORD.sub("_", field_name.lower()).strip("_")


class SchemaMismatchError(ConfigurationError):
    """The base does not fit the field mapping; ``problems`` lists every mismatch (not only the first)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        if len(problems) == 1:
            super().__init__(problems[0])
        else:
            listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, start=1))
            super().__init__(f"{len(problems)} problems with the field mapping: {listed}")


@dataclass(frozen=True)
class FieldSpec:
    """One Airtable field: its name, type and (for selects) its choices."""

    name: str
    type: str
    choices: tuple[str, ...] = ()
    id: str | None = None

    @property
    def computed(self) -> bool:
        """True when Airtable computes the field and rejects writes to it."""
        return self.type in COMPUTED_TYPES


@dataclass(frozen=True)
class RoleNames:
    """The Airtable field name of each role in one table (None where the table lacks it)."""

    run_id: str
    status: str
    client_id: str | None = None
    client_name: str | None = None
    job_type: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    progress: str | None = None
    notes: str | None = None
    errors: str | None = None
    clients_processed: str | None = None
    clients_succeeded: str | None = None
    clients_failed: str | None = None
    last_client_processed: str | None = None
    heartbeat: str | None = None


@dataclass(frozen=True)
class TableSchema:
    """The fields of one table and which of them jobtrace writes, by role."""

    name: str
    kind: TableKind
    fields: Mapping[str, FieldSpec]
    roles: Mapping[str, str]
    """role -> Airtable field name, only for roles the table has."""
    id: str | None = None
    status_aliases: Mapping[str, str] = field(default_factory=dict)
    """jobtrace status -> the base's own choice written for it (e.g. ``{"Cancelled": "Failed"}``)."""
    names: RoleNames = field(init=False, repr=False, compare=False)
    """The same mapping as ``roles``, as attributes (read on every record change)."""
    _lookup: dict[str, str] = field(init=False, repr=False, compare=False)
    _status_lookup: dict[str, str] = field(init=False, repr=False, compare=False)
    _status_exact: dict[str, str] = field(init=False, repr=False, compare=False)
    """Each choice -> what normalize_status gives for it: the hot path's one dict lookup."""
    _counter_lookup: dict[str, str] = field(init=False, repr=False, compare=False)
    """The part of ``_lookup`` that names number fields: what incr() accepts."""

    def __post_init__(self) -> None:
        problems = self.mapping_problems()
        if problems:
            raise SchemaMismatchError(problems)
        object.__setattr__(self, "names", RoleNames(**self.roles))
        managed = {self.roles[r] for r in _MANAGED_ROLES if r in self.roles}
        lookup: dict[str, str] = {}
        for spec in self.fields.values():
            if spec.computed or spec.name in managed:
                continue
            lookup[spec.name] = spec.name
            lookup.setdefault(logical_name(spec.name), spec.name)
        if "notes" in self.roles:
            lookup["notes"] = self.roles["notes"]
        object.__setattr__(self, "_lookup", lookup)
        status = self.fields[self.roles["status"]]
        object.__setattr__(self, "_status_lookup", {c.lower(): c for c in status.choices})
        exact = {c: self._status_lookup.get(c.strip().lower().replace("_", " ")) for c in status.choices}
        object.__setattr__(self, "_status_exact", {c: n for c, n in exact.items() if n is not None})
        for status_name, choice in self.status_aliases.items():
            self._status_lookup[status_name.lower()] = choice
            self._status_exact[status_name] = choice
        counters = {k: n for k, n in lookup.items() if self.fields[n].type in NUMBER_TYPES}
        object.__setattr__(self, "_counter_lookup", counters)

    def mapping_problems(self) -> list[str]:
        """Every way the roles, fields and status aliases do not fit (empty when they do)."""
        problems: list[str] = []
        for role in _REQUIRED_ROLES[self.kind]:
            if role not in self.roles:
                problems.append(
                    f"table {self.name!r} has no field for {role!r}: add it to the table or map "
                    f"it with {self.kind}_roles={{{role!r}: 'Your Field Name'}}"
                )
        for role, name in self.roles.items():
            spec = self.fields.get(name)
            if spec is None:
                problems.append(
                    f"table {self.name!r} has no field {name!r} (mapped to {role!r}): "
                    f"add the field in Airtable or change the mapping"
                )
            elif spec.computed:
                problems.append(
                    f"field {name!r} of table {self.name!r} is computed ({spec.type}) and cannot "
                    f"be written; map {role!r} to a writable field"
                )
        unknown_roles = set(self.roles) - set(JOB_ROLES) - set(CLIENT_ROLES)
        if unknown_roles:
            problems.append(
                f"unknown role(s) {sorted(unknown_roles)} for table {self.name!r}; roles: "
                f"{', '.join(sorted(set(JOB_ROLES) | set(CLIENT_ROLES)))}"
            )
        problems.extend(self._alias_problems())
        return problems

    def _alias_problems(self) -> list[str]:
        if not self.status_aliases:
            return []
        from .records import Status  # records imports this module: import at use

        ours = [v for k, v in vars(Status).items() if k.isupper() and isinstance(v, str)]
        status = self.fields.get(self.roles.get("status", ""))
        choices = status.choices if status is not None else ()
        problems = []
        for name, choice in self.status_aliases.items():
            if name not in ours:
                problems.append(
                    f"status alias {name!r} -> {choice!r} for table {self.name!r}: {name!r} is not a status "
                    f"jobtrace writes ({', '.join(ours)})"
                )
            elif choices and choice not in choices:
                problems.append(
                    f"status alias {name!r} -> {choice!r} for table {self.name!r}: {choice!r} is not a choice of "
                    f"the status field (choices: {', '.join(choices)})"
                )
        return problems

    # -- reading -------------------------------------------------------------

    def field_name(self, role: str) -> str | None:
        """The Airtable field name for a role, or None if the table has no such field."""
        return self.roles.get(role)

    @property
    def status_choices(self) -> tuple[str, ...]:
        """The choices of the status field (empty when it is free text)."""
        return self.fields[self.roles["status"]].choices

    def writable_names(self) -> list[str]:
        """Logical names a caller may pass to update()/incr(), sorted."""
        return sorted({k for k in self._lookup if k == logical_name(k)})

    @property
    def number_fields(self) -> frozenset[str]:
        """Airtable names of the writable number fields (the counters)."""
        return frozenset(name for name in set(self._lookup.values()) if self.fields[name].type in NUMBER_TYPES)

    # -- validating user input -----------------------------------------------

    def resolve(self, key: str) -> FieldSpec:
        """Return the writable field for a logical or Airtable name, or raise."""
        name = self._lookup.get(key)
        if name is not None:
            return self.fields[name]
        raise self._unknown(key)

    def _unknown(self, key: str) -> UnknownFieldError:
        valid = ", ".join(self.writable_names())
        spec = self.fields.get(key)
        if spec is None:
            by_logical = {logical_name(n): n for n in self.fields}
            spec = self.fields.get(by_logical.get(key, ""))
        if spec is not None and spec.computed:
            return ComputedFieldError(
                f"field {spec.name!r} of table {self.name!r} is computed by Airtable "
                f"({spec.type}) and cannot be written. Writable fields: {valid}"
            )
        if spec is not None:
            role = next((r for r, n in self.roles.items() if n == spec.name), spec.name)
            return UnknownFieldError(
                f"field {spec.name!r} of table {self.name!r} is maintained by jobtrace "
                f"({role}); it cannot be set directly. Writable fields: {valid}"
            )
        if key in _MISTAKEN_NOTES_NAMES and "notes" in self.roles:
            return UnknownFieldError(
                f"unknown field {key!r} for table {self.name!r}: notes go to "
                f"{self.roles['notes']!r} (logical name 'notes'), e.g. note('...') or "
                f"update(notes='...'). Writable fields: {valid}"
            )
        return UnknownFieldError(f"unknown field {key!r} for table {self.name!r}. Writable fields: {valid}")

    def check_value(self, spec: FieldSpec, value: object) -> object:
        """Return ``value`` in the form Airtable takes for the field, or raise ``InvalidValueError``."""
        if value is None:
            return None
        kind = spec.type
        if kind in NUMBER_TYPES:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return check_number(value, f"field {spec.name!r} of table {self.name!r}")
        elif kind in TEXT_TYPES:
            if isinstance(value, str):
                return safe_text(value)
        elif kind == "checkbox":
            if isinstance(value, bool):
                return value
        elif kind in DATETIME_TYPES:
            if isinstance(value, datetime):
                if value.tzinfo is None:
                    value = value.replace(tzinfo=timezone.utc)
                return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
            if isinstance(value, str):
                return safe_text(value)
        elif kind == "singleSelect":
            if isinstance(value, str):
                if spec.choices and value not in spec.choices:
                    raise InvalidValueError(
                        f"{value!r} is not a choice of {spec.name!r} in table {self.name!r}; "
                        f"choices: {', '.join(spec.choices)}"
                    )
                return safe_text(value)
        else:
            return value
        raise InvalidValueError(
            f"field {spec.name!r} of table {self.name!r} is {kind}; it cannot take {type(value).__name__} {value!r}"
        )

    def normalize_status(self, status: str) -> str:
        """Map ``'completed'`` to ``'Completed'`` etc.; raise for a status the table lacks."""
        if type(status) is str:
            exact = self._status_exact.get(status)
            if exact is not None:
                return exact
        if not isinstance(status, str):
            raise InvalidValueError(f"status must be a string, got {type(status).__name__}")
        choices = self.status_choices
        if not choices:
            return safe_text(status)
        found = self._status_lookup.get(status.strip().lower().replace("_", " "))
        if found is None:
            raise InvalidValueError(f"unknown status {status!r} for table {self.name!r}; choices: {', '.join(choices)}")
        return found

    # -- building ------------------------------------------------------------

    @classmethod
    def from_metadata(
        cls,
        table: Mapping[str, Any],
        kind: TableKind,
        roles: Mapping[str, str] | None = None,
        status_aliases: Mapping[str, str] | None = None,
    ) -> TableSchema:
        """Build from one table of the metadata API's response.

        ``roles`` overrides the default role -> field-name mapping; a default role
        whose field the table lacks is simply not written (except the required
        ``run_id``, ``status`` and, for clients, ``client_id``).
        """
        fields: dict[str, FieldSpec] = {}
        for raw in table.get("fields", []):
            options = raw.get("options") or {}
            choices = tuple(c["name"] for c in options.get("choices", []) or [])
            fields[raw["name"]] = FieldSpec(raw["name"], raw["type"], choices, raw.get("id"))
        defaults = JOB_ROLES if kind == "job" else CLIENT_ROLES
        merged = {r: n for r, n in defaults.items() if n in fields}
        if roles:
            merged.update(roles)
        return cls(
            name=table["name"],
            kind=kind,
            fields=fields,
            roles=merged,
            id=table.get("id"),
            status_aliases=dict(status_aliases or {}),
        )


@dataclass(frozen=True)
class Schema:
    """The job table and the client table jobtrace writes to."""

    job: TableSchema
    client: TableSchema

    @property
    def rollup_counters(self) -> tuple[str, ...]:
        """Counters summed from client runs into the job record: number fields both tables have."""
        return tuple(sorted(self.job.number_fields & self.client.number_fields))

    @classmethod
    def from_metadata(
        cls,
        metadata: Mapping[str, Any] | str | os.PathLike[str] | Any,
        job_table: str = "Job Tracking",
        client_table: str = "Client Run Results",
        job_roles: Mapping[str, str] | None = None,
        client_roles: Mapping[str, str] | None = None,
        status_aliases: Mapping[str, str] | None = None,
    ) -> Schema:
        """Build from the metadata API's response: a dict, the path of a JSON file of it, or
        pyairtable's ``BaseSchema`` (``api.base(base_id).schema()``).

        ``status_aliases`` lets the base's own choices stand for jobtrace's statuses in both
        tables, e.g. ``{"Cancelled": "Failed", "Interrupted": "Failed"}`` for a base whose Status
        lacks them. Every mismatch is reported at once, in one :class:`SchemaMismatchError`.
        """
        meta = _metadata_dict(metadata)
        tables = {t["name"]: t for t in meta.get("tables", [])}
        tables.update({t["id"]: t for t in meta.get("tables", []) if "id" in t})
        problems: list[str] = []
        built: dict[str, TableSchema] = {}
        for kind, name, roles in (("job", job_table, job_roles), ("client", client_table, client_roles)):
            if name not in tables:
                problems.append(
                    f"the base has no table {name!r}; tables: {', '.join(t['name'] for t in meta.get('tables', []))}"
                )
                continue
            try:
                built[kind] = TableSchema.from_metadata(tables[name], kind, roles, status_aliases)  # type: ignore[arg-type]
            except SchemaMismatchError as exc:
                problems.extend(exc.problems)
        if problems:
            raise SchemaMismatchError(problems)
        return cls(job=built["job"], client=built["client"])

    @classmethod
    def default(cls) -> Schema:
        """The schema of the production base jobtrace was written for (``Job Tracking``, ``Client Run Results``)."""
        return _default_schema()


def _metadata_dict(metadata: Any) -> Mapping[str, Any]:
    if isinstance(metadata, Mapping):
        return metadata
    if isinstance(metadata, (str, os.PathLike)):
        with open(metadata, encoding="utf-8") as fh:
            loaded: dict[str, Any] = json.load(fh)
        return loaded
    dump = getattr(metadata, "model_dump", None)  # pyairtable's BaseSchema (a pydantic model)
    if callable(dump):
        dumped: dict[str, Any] = dump(by_alias=True, mode="json")
        return dumped
    raise TypeError(
        f"Schema.from_metadata takes the metadata API's response (a dict), the path of a JSON file of it, "
        f"or pyairtable's BaseSchema; got {type(metadata).__name__}"
    )


_DEFAULT_BASE = Path(__file__).with_name("default_base.json")


def default_base_metadata() -> dict[str, Any]:
    """The default base in the metadata API's shape (a fresh copy), e.g. to seed the emulator."""
    with open(_DEFAULT_BASE, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@lru_cache(maxsize=1)
def _default_schema() -> Schema:
    return Schema.from_metadata(default_base_metadata())


@dataclass(frozen=True)
class RoleInfo:
    """One role of the field mapping, as the README's role table lists it."""

    role: str
    tables: tuple[str, ...]
    """``"job"``, ``"client"`` or both."""
    field_name: str
    """The Airtable field it maps to by default (``"Error Summary (job), Errors (client)"`` where they differ)."""
    field_type: str
    """Its type in the default base (the metadata API's type name)."""
    required: bool
    purpose: str


def role_reference() -> list[RoleInfo]:
    """Every role jobtrace knows, job roles first: what ``jobtrace schema roles`` prints."""
    meta = default_base_metadata()
    types: dict[tuple[str, str], str] = {}
    for kind, table_name in (("job", "Job Tracking"), ("client", "Client Run Results")):
        for table in meta["tables"]:
            if table["name"] == table_name:
                types.update({(kind, f["name"]): f["type"] for f in table["fields"]})
    roles = list(dict.fromkeys([*JOB_ROLES, *CLIENT_ROLES]))
    out = []
    for role in roles:
        tables = (("job", JOB_ROLES), ("client", CLIENT_ROLES))
        kinds: tuple[str, ...] = tuple(k for k, mapping in tables if role in mapping)
        names = {k: (JOB_ROLES if k == "job" else CLIENT_ROLES)[role] for k in kinds}
        field_type = next((types[(k, n)] for k, n in names.items() if (k, n) in types), ROLE_TYPES.get(role, "?"))
        if len(set(names.values())) == 1:
            name = next(iter(names.values()))
        else:
            name = ", ".join(f"{n} ({k})" for k, n in names.items())
        required = any(role in _REQUIRED_ROLES["job" if k == "job" else "client"] for k in kinds)
        out.append(RoleInfo(role, kinds, name, field_type, required, ROLE_DOCS.get(role, "")))
    return out
