"""Base schemas in the metadata API's shape: loading, normalising, IDs.

A schema is what ``GET /v0/meta/bases/{baseId}/tables`` returns:
``{"tables": [{"id", "name", "primaryFieldId", "fields": [...], "views": [...]}]}``.
:func:`load_schema` accepts that dict (or a path to a JSON file holding it),
fills in whatever a hand-written schema leaves out (17-character IDs, the
primary field, a grid view, each field type's documented ``options``) so that
pyairtable's pydantic models accept the metadata the emulator serves.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import string
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import ApiError

_ID_ALPHABET = string.ascii_letters + string.digits

#: Field types whose values Airtable computes; writes to them are rejected.
COMPUTED_TYPES = frozenset(
    {
        "formula", "rollup", "count", "multipleLookupValues", "autoNumber", "createdTime",
        "lastModifiedTime", "createdBy", "lastModifiedBy", "button", "aiText",
        "externalSyncSource",
    }
)  # fmt: skip

_DATE_FORMAT = {"name": "iso", "format": "YYYY-MM-DD"}
_TIME_FORMAT = {"name": "24hour", "format": "HH:mm"}
_SELECT_COLORS = ("blueLight2", "cyanLight2", "tealLight2", "greenLight2", "yellowLight2",
                  "orangeLight2", "redLight2", "pinkLight2", "purpleLight2", "grayLight2")  # fmt: skip


def new_id(prefix: str) -> str:
    """A random Airtable-style ID: a 3-letter prefix plus 14 characters (17 in all)."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(14))


def iso_now() -> datetime:
    """Now in UTC, truncated to milliseconds (Airtable's resolution)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def select_color(index: int) -> str:
    """The color given to the ``index``-th choice that typecast adds."""
    return _SELECT_COLORS[index % len(_SELECT_COLORS)]


def load_schema(schema: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """Return a normalised deep copy of ``schema`` (a dict, or a path to a JSON file).

    Raises ``ValueError`` for a schema that is not in the metadata shape.
    """
    if isinstance(schema, (str, os.PathLike)):
        data: Any = json.loads(Path(schema).read_text(encoding="utf-8"))
    else:
        data = copy.deepcopy(dict(schema))
    if not isinstance(data, dict) or not isinstance(data.get("tables"), list):
        raise ValueError('a base schema must be a dict with a "tables" list')
    names: set[str] = set()
    for table in data["tables"]:
        _normalise_table(table)
        if table["name"] in names:
            raise ValueError(f"duplicate table name {table['name']!r}")
        names.add(table["name"])
    # Formulas and links may name other fields/tables, so resolve after all have IDs.
    table_ids = {t["name"]: t["id"] for t in data["tables"]}
    for table in data["tables"]:
        for field in table["fields"]:
            if field["type"] == "formula":
                _fill_formula_references(table, field)
            elif field["type"] == "multipleRecordLinks":
                # A hand-written schema may name the linked table instead of giving its ID.
                opts = field["options"]
                linked = opts.get("linkedTableId")
                if linked in table_ids:
                    opts["linkedTableId"] = table_ids[linked]
                elif linked not in table_ids.values():
                    raise ValueError(f"link field {field['name']!r} needs options.linkedTableId")
    return data


def _normalise_table(table: dict[str, Any]) -> None:
    if not isinstance(table, dict) or not isinstance(table.get("name"), str):
        raise ValueError("each table needs a name")
    table.setdefault("id", new_id("tbl"))
    fields = table.setdefault("fields", [])
    if not fields:
        raise ValueError(f"table {table['name']!r} has no fields")
    seen: set[str] = set()
    for field in fields:
        if not isinstance(field, dict) or not field.get("name") or not field.get("type"):
            raise ValueError(f"each field of {table['name']!r} needs a name and a type")
        if field["name"] in seen:
            raise ValueError(f"duplicate field name {field['name']!r} in {table['name']!r}")
        seen.add(field["name"])
        field.setdefault("id", new_id("fld"))
        fill_options(field)
    table.setdefault("primaryFieldId", fields[0]["id"])
    views = table.setdefault("views", [])
    if not views:
        views.append({"id": new_id("viw"), "name": "Grid view", "type": "grid"})
    for view in views:
        view.setdefault("id", new_id("viw"))
        view.setdefault("type", "grid")


def fill_options(field: dict[str, Any]) -> None:
    """Give each field type the options its documented metadata always carries."""
    ftype = field["type"]
    options = field.get("options")
    if ftype in ("number", "percent"):
        field["options"] = {"precision": 0, **(options or {})}
    elif ftype == "currency":
        field["options"] = {"precision": 2, "symbol": "$", **(options or {})}
    elif ftype == "rating":
        field["options"] = {"max": 5, "icon": "star", "color": "yellowBright", **(options or {})}
    elif ftype == "duration":
        field["options"] = {"durationFormat": "h:mm", **(options or {})}
    elif ftype == "checkbox":
        field["options"] = {"icon": "check", "color": "greenBright", **(options or {})}
    elif ftype in ("singleSelect", "multipleSelects"):
        opts = {"choices": [], **(options or {})}
        for i, choice in enumerate(opts["choices"]):
            choice.setdefault("id", new_id("sel"))
            choice.setdefault("color", select_color(i))
        field["options"] = opts
    elif ftype == "date":
        field["options"] = {"dateFormat": dict(_DATE_FORMAT), **(options or {})}
    elif ftype == "dateTime":
        field["options"] = {
            "timeZone": "utc",
            "dateFormat": dict(_DATE_FORMAT),
            "timeFormat": dict(_TIME_FORMAT),
            **(options or {}),
        }
    elif ftype in ("createdTime", "lastModifiedTime"):
        result = {"type": "dateTime", "options": {"timeZone": "utc", "dateFormat": dict(_DATE_FORMAT),
                                                  "timeFormat": dict(_TIME_FORMAT)}}  # fmt: skip
        opts = {"result": result, **(options or {})}
        if ftype == "lastModifiedTime":
            opts.setdefault("isValid", True)
            opts.setdefault("referencedFieldIds", [])
        field["options"] = opts
    elif ftype == "autoNumber":
        field.pop("options", None)
    elif ftype == "formula":
        opts = {"isValid": True, "referencedFieldIds": [], **(options or {})}
        if not isinstance(opts.get("formula"), str):
            raise ValueError(f"formula field {field['name']!r} needs options.formula")
        field["options"] = opts
    elif ftype == "multipleRecordLinks":
        opts = dict(options or {})
        opts.setdefault("isReversed", False)
        opts.setdefault("prefersSingleRecordLink", False)
        field["options"] = opts
    elif options is not None:
        field["options"] = options


def _fill_formula_references(table: dict[str, Any], field: dict[str, Any]) -> None:
    from .formula import FormulaSyntaxError, parse, referenced_fields

    opts = field["options"]
    by_name = {f["name"]: f["id"] for f in table["fields"]}
    try:
        node = parse(opts["formula"], list(by_name))
    except FormulaSyntaxError as exc:
        raise ValueError(f"formula of {field['name']!r} is invalid: {exc}") from None
    if not opts.get("referencedFieldIds"):
        opts["referencedFieldIds"] = [by_name[n] for n in referenced_fields(node)]


def metadata(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The ``GET .../tables`` response body for a normalised schema (a deep copy)."""
    return {"tables": copy.deepcopy(list(schema["tables"]))}


def find_table(schema: Mapping[str, Any], name_or_id: str) -> dict[str, Any]:
    """The table with this ID or exact name; 403 like Airtable when there is none."""
    for table in schema["tables"]:
        if name_or_id in (table["id"], table["name"]):
            return table  # type: ignore[no-any-return]
    raise ApiError.model_not_found()
