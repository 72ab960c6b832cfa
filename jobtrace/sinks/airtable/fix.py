"""What ``jobtrace check --fix`` would change in a base so that it fits the field mapping.

:func:`plan_fixes` compares a base's metadata with a :class:`~jobtrace.Schema`,
over every role jobtrace knows (optional ones included) and every writable field
of the mapping, and returns

- the fields to create through Airtable's metadata API (``Create field``), with
  the type and options of the default base (or of :data:`~jobtrace.schema.ROLE_TYPES`);
- the changes the API cannot make (new choices of an existing single select, a
  field of the wrong type, a missing table), each with what to click in Airtable.

:func:`create_fields` makes the first kind. Nothing here deletes or renames.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyairtable import Api

from ...schema import (
    CLIENT_ROLES,
    COMPUTED_TYPES,
    DATETIME_TYPES,
    JOB_ROLES,
    NUMBER_TYPES,
    ROLE_TYPES,
    TEXT_TYPES,
    Schema,
    TableSchema,
    default_base_metadata,
)
from .check import TRACKER_STATUSES

__all__ = ["FieldToCreate", "ManualStep", "create_fields", "plan_fixes"]

#: Options a created field gets when the default base has no field to copy them from.
_DEFAULT_OPTIONS: Mapping[str, dict[str, Any]] = {
    "dateTime": {"dateFormat": {"name": "iso"}, "timeFormat": {"name": "24hour"}, "timeZone": "utc"},
    "date": {"dateFormat": {"name": "iso"}},
    "number": {"precision": 0},
    "percent": {"precision": 1},
    "currency": {"precision": 2, "symbol": "$"},
    "checkbox": {"icon": "check", "color": "greenBright"},
    "duration": {"durationFormat": "h:mm:ss"},
}


@dataclass(frozen=True)
class FieldToCreate:
    """A field the mapping needs and the table lacks; the metadata API can create it."""

    table: str
    table_id: str
    name: str
    type: str
    why: str
    options: dict[str, Any] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"create {self.type} field {self.name!r} in table {self.table!r} ({self.why})"


@dataclass(frozen=True)
class ManualStep:
    """A change Airtable's API cannot make: what to do in Airtable's interface."""

    table: str
    field: str | None
    what: str
    how: str

    def __str__(self) -> str:
        where = f"{self.table!r}.{self.field!r}" if self.field else repr(self.table)
        return f"{where}: {self.what}. In Airtable: {self.how}"


def _default_fields() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for table in default_base_metadata()["tables"]:
        for spec in table["fields"]:
            found[(table["name"], spec["name"])] = spec
    return found


def _writable_options(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """A field's read-format options in the write format (select choices without IDs)."""
    options = copy.deepcopy(dict(spec.get("options") or {}))
    if not options:
        return None
    if "choices" in options:
        options["choices"] = [{k: v for k, v in c.items() if k in ("name", "color")} for c in options["choices"]]
    for key in ("dateFormat", "timeFormat"):
        if isinstance(options.get(key), dict):
            options[key] = {"name": options[key]["name"]}
    return options


def _click_edit(table: str, field_name: str) -> str:
    return f"open table {table!r}, click the arrow on the {field_name!r} column header, then 'Edit field'"


def plan_fixes(metadata: Mapping[str, Any], schema: Schema) -> tuple[list[FieldToCreate], list[ManualStep]]:
    """The fields to create and the manual steps that make the base fit ``schema``."""
    tables = {t["name"]: t for t in metadata.get("tables", [])}
    by_id = {t.get("id"): t for t in metadata.get("tables", [])}
    defaults = _default_fields()
    creates: list[FieldToCreate] = []
    manual: list[ManualStep] = []
    for configured, all_roles in ((schema.job, JOB_ROLES), (schema.client, CLIENT_ROLES)):
        table = tables.get(configured.name) or by_id.get(configured.id)
        if table is None:
            manual.append(
                ManualStep(
                    configured.name,
                    None,
                    "the base has no such table",
                    f"add a table named {configured.name!r} (then run 'jobtrace check --fix' again to add its fields)",
                )
            )
            continue
        present = {f["name"]: f for f in table.get("fields", [])}
        for name, why in _needed_fields(configured, all_roles).items():
            if name in present:
                continue
            spec = _spec_for(configured, name, why, defaults)
            if spec is None:
                manual.append(ManualStep(table["name"], name, f"the field ({why}) is missing", "add it"))
                continue
            ftype, options = spec
            creates.append(FieldToCreate(table["name"], table["id"], name, ftype, why, options))
        manual.extend(_manual_steps(configured, table, present))
    return creates, manual


def _needed_fields(configured: TableSchema, all_roles: Mapping[str, str]) -> dict[str, str]:
    """Field name -> why the mapping needs it: every role jobtrace knows, then the writable fields."""
    needed: dict[str, str] = {}
    for role, default_name in all_roles.items():
        needed.setdefault(configured.roles.get(role, default_name), f"role {role!r}")
    for logical in configured.writable_names():
        needed.setdefault(configured.resolve(logical).name, "writable in the field mapping")
    return needed


def _spec_for(
    configured: TableSchema, name: str, why: str, defaults: Mapping[tuple[str, str], Mapping[str, Any]]
) -> tuple[str, dict[str, Any] | None] | None:
    default = defaults.get((configured.name, name)) or defaults.get(
        ("Job Tracking" if configured.kind == "job" else "Client Run Results", name)
    )
    mapped = configured.fields.get(name)
    ftype = mapped.type if mapped is not None else default["type"] if default is not None else None
    if ftype is None and why.startswith("role "):
        ftype = ROLE_TYPES.get(why[len("role '") : -1])
    if ftype is None or ftype in COMPUTED_TYPES:
        return None
    if default is not None and default["type"] == ftype:
        options = _writable_options(default)
    elif ftype in ("singleSelect", "multipleSelects"):
        choices = mapped.choices if mapped is not None and mapped.choices else TRACKER_STATUSES
        options = {"choices": [{"name": c} for c in choices]}
    else:
        options = copy.deepcopy(_DEFAULT_OPTIONS.get(ftype))
    return ftype, options


def _kind(field_type: str) -> str:
    for kind, types in (("number", NUMBER_TYPES), ("text", TEXT_TYPES), ("date", DATETIME_TYPES)):
        if field_type in types:
            return kind
    return field_type


def _manual_steps(configured: TableSchema, table: Mapping[str, Any], present: Mapping[str, Any]) -> list[ManualStep]:
    steps: list[ManualStep] = []
    name = table["name"]
    status_field = configured.roles.get("status")
    for field_name, mapped in configured.fields.items():
        found = present.get(field_name)
        if found is None or mapped.computed or found["type"] in COMPUTED_TYPES:
            continue
        text_status = field_name == status_field and found["type"] in TEXT_TYPES
        if _kind(found["type"]) != _kind(mapped.type) and not text_status:
            steps.append(
                ManualStep(
                    name,
                    field_name,
                    f"the field is {found['type']} in the base but {mapped.type} in the field mapping, and the API "
                    "cannot change a field's type",
                    f"{_click_edit(name, field_name)}, and change its type to {mapped.type}",
                )
            )
    for role, field_name in configured.roles.items():
        spec = present.get(field_name)
        if spec is not None and spec["type"] in COMPUTED_TYPES:
            steps.append(
                ManualStep(
                    name,
                    field_name,
                    f"the field (role {role!r}) is computed ({spec['type']}) and cannot be written; "
                    "the API cannot change a field's type",
                    f"{_click_edit(name, field_name)}, and change its type to {configured.fields[field_name].type}",
                )
            )
    status_name = configured.roles.get("status")
    status = present.get(status_name or "")
    if status_name and status is not None and status["type"] == "singleSelect":
        choices = {c["name"] for c in (status.get("options") or {}).get("choices", [])}
        aliases = configured.status_aliases
        wanted = dict.fromkeys((*(aliases.get(s, s) for s in TRACKER_STATUSES), *configured.status_choices))
        missing = [s for s in wanted if s not in choices]
        if missing:
            listed = ", ".join(repr(s) for s in missing)
            steps.append(
                ManualStep(
                    name,
                    status_name,
                    f"the status choice(s) {listed} are missing, and Airtable's API cannot add choices to an "
                    "existing single select",
                    f"{_click_edit(name, status_name)}, add the option(s) {listed} and click Save "
                    f"(or let the base's own choices stand for them: "
                    f"Schema.from_metadata(..., status_aliases={{'Cancelled': 'Failed'}}))",
                )
            )
    return steps


def create_fields(
    api: Api, base_id: str, fields: list[FieldToCreate], call: Callable[[Callable[[], Any]], Any] | None = None
) -> list[dict[str, Any]]:
    """Create each field through the metadata API (``call`` wraps each request, e.g. in a rate budget).

    Returns the created fields' metadata. Stops at the first failure (the exception propagates);
    the fields created before it stay.
    """
    run = call or (lambda fn: fn())
    created = []
    for spec in fields:
        table = api.table(base_id, spec.table_id)

        def make(table: Any = table, spec: FieldToCreate = spec) -> Any:
            return table.create_field(spec.name, spec.type, options=spec.options)

        result = run(make)
        created.append(result.model_dump(by_alias=True, mode="json", exclude_none=True))
    return created
