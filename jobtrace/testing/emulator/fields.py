"""Field metadata writes, with Airtable's rules: ``Create field`` and ``Update field``.

``POST /v0/meta/bases/{baseId}/tables/{tableIdOrName}/fields`` creates a field
from ``{"name", "type", "description"?, "options"?}``. As on Airtable:

- the name must be non-empty and not taken (case-insensitively) in the table;
- computed types (formula, rollup, lookup, count, auto number, created/modified
  time and by, button, AI text, sync source) cannot be created through the API;
- each type takes the options its write format documents, and needs the ones it
  requires (``precision`` for numbers, ``choices`` for selects, ``dateFormat``,
  ``timeFormat`` and ``timeZone`` for date-times, ...); text fields take none.

``PATCH .../fields/{fieldId}`` changes only a field's ``name`` and/or
``description`` (at least one). It cannot change a field's type or options:
new choices of an existing single select, for one, are added in Airtable's
interface (or appear when a record is written with ``typecast``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ApiError
from .schema import COMPUTED_TYPES, fill_options, new_id

__all__ = ["check_new_field", "check_field_update"]

_TEXT_TYPES = frozenset({"singleLineText", "multilineText", "email", "url", "phoneNumber", "richText"})
_NO_OPTION_TYPES = _TEXT_TYPES | {"multipleAttachments", "singleCollaborator", "multipleCollaborators", "barcode"}
_REQUIRED_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "number": ("precision",),
    "percent": ("precision",),
    "currency": ("precision", "symbol"),
    "singleSelect": ("choices",),
    "multipleSelects": ("choices",),
    "date": ("dateFormat",),
    "dateTime": ("dateFormat", "timeFormat", "timeZone"),
    "checkbox": ("color", "icon"),
    "rating": ("color", "icon", "max"),
    "duration": ("durationFormat",),
    "multipleRecordLinks": ("linkedTableId",),
}
_NOT_CREATABLE = COMPUTED_TYPES | {"lookup"}
_MAX_DESCRIPTION = 20_000


def _options_error(message: str) -> ApiError:
    return ApiError(422, "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE", message)


def _check_name(table: Mapping[str, Any], name: Any, exclude_id: str | None = None) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ApiError(422, "DUPLICATE_OR_EMPTY_FIELD_NAME", "Field name must be a non-empty string")
    taken = {f["name"].lower() for f in table["fields"] if f["id"] != exclude_id}
    if name.strip().lower() in taken:
        raise ApiError(422, "DUPLICATE_OR_EMPTY_FIELD_NAME", f'A field named "{name}" already exists in this table')
    return name.strip()


def _check_description(description: Any) -> None:
    if description is not None and (not isinstance(description, str) or len(description) > _MAX_DESCRIPTION):
        raise ApiError.invalid_request(f"description must be a string of at most {_MAX_DESCRIPTION} characters")


def check_new_field(table: Mapping[str, Any], table_ids: set[str], payload: Mapping[str, Any]) -> dict[str, Any]:
    """The field a ``Create field`` request asks for, as the metadata will hold it; or ``ApiError``."""
    name = _check_name(table, payload.get("name"))
    ftype = payload.get("type")
    if not isinstance(ftype, str) or not ftype:
        raise ApiError(422, "INVALID_FIELD_TYPE", "Field type must be a non-empty string")
    if ftype in _NOT_CREATABLE:
        raise ApiError(
            422, "UNSUPPORTED_FIELD_TYPE_FOR_CREATE", f"Creating {ftype} fields is not supported through the API"
        )
    if ftype not in _NO_OPTION_TYPES and ftype not in _REQUIRED_OPTIONS:
        raise ApiError(422, "INVALID_FIELD_TYPE", f"Unknown field type: {ftype}")
    _check_description(payload.get("description"))
    options = payload.get("options")
    if ftype in _NO_OPTION_TYPES:
        if options:
            raise _options_error(f"{ftype} fields take no options")
        options = None
    else:
        if not isinstance(options, Mapping):
            raise _options_error(f"{ftype} fields need options: {', '.join(_REQUIRED_OPTIONS[ftype])}")
        missing = [key for key in _REQUIRED_OPTIONS[ftype] if key not in options]
        if missing:
            raise _options_error(f"{ftype} fields need the option(s) {', '.join(missing)}")
        options = _checked_options(ftype, dict(options), table_ids)
    field: dict[str, Any] = {"id": new_id("fld"), "name": name, "type": ftype}
    if payload.get("description"):
        field["description"] = payload["description"]
    if options is not None:
        field["options"] = options
    fill_options(field)
    return field


def _checked_options(ftype: str, options: dict[str, Any], table_ids: set[str]) -> dict[str, Any]:
    if ftype in ("number", "percent", "currency"):
        precision = options["precision"]
        top = 7 if ftype == "currency" else 8
        if isinstance(precision, bool) or not isinstance(precision, int) or not 0 <= precision <= top:
            raise _options_error(f"precision must be a whole number from 0 to {top}")
    elif ftype in ("singleSelect", "multipleSelects"):
        choices = options["choices"]
        if not isinstance(choices, list):
            raise _options_error("choices must be an array")
        seen: set[str] = set()
        cleaned = []
        for choice in choices:
            if not isinstance(choice, Mapping) or not isinstance(choice.get("name"), str) or not choice["name"]:
                raise _options_error("each choice needs a name")
            if "id" in choice:
                raise _options_error("a new field's choices cannot have IDs")
            if choice["name"] in seen:
                raise _options_error(f'duplicate choice "{choice["name"]}"')
            seen.add(choice["name"])
            cleaned.append({k: v for k, v in choice.items() if k in ("name", "color")})
        options = {"choices": cleaned}
    elif ftype in ("date", "dateTime"):
        date_format = options["dateFormat"]
        if not isinstance(date_format, Mapping) or date_format.get("name") not in (
            "local", "friendly", "us", "european", "iso"
        ):  # fmt: skip
            raise _options_error("dateFormat.name must be one of local, friendly, us, european, iso")
        formats = {"local": "l", "friendly": "LL", "us": "M/D/YYYY", "european": "D/M/YYYY", "iso": "YYYY-MM-DD"}
        options["dateFormat"] = {"name": date_format["name"], "format": formats[date_format["name"]]}
        if ftype == "dateTime":
            time_format = options["timeFormat"]
            if not isinstance(time_format, Mapping) or time_format.get("name") not in ("12hour", "24hour"):
                raise _options_error("timeFormat.name must be 12hour or 24hour")
            options["timeFormat"] = {
                "name": time_format["name"],
                "format": "h:mma" if time_format["name"] == "12hour" else "HH:mm",
            }
            if not isinstance(options["timeZone"], str) or not options["timeZone"]:
                raise _options_error("timeZone must be a time zone name or utc or client")
    elif ftype == "multipleRecordLinks" and options["linkedTableId"] not in table_ids:
        raise _options_error("linkedTableId must be the ID of a table of this base")
    return options


def check_field_update(
    table: Mapping[str, Any], field: Mapping[str, Any], payload: Mapping[str, Any]
) -> dict[str, Any]:
    """What an ``Update field`` request changes (``name``, ``description``); or ``ApiError``."""
    unknown = sorted(set(payload) - {"name", "description"})
    if unknown:
        raise ApiError.invalid_request(
            f"Update field changes only name and description; it cannot change {', '.join(unknown)}"
        )
    if "name" not in payload and "description" not in payload:
        raise ApiError.invalid_request("At least one of name or description must be specified")
    changes: dict[str, Any] = {}
    if "name" in payload:
        changes["name"] = _check_name(table, payload["name"], exclude_id=field["id"])
    if "description" in payload:
        _check_description(payload["description"])
        changes["description"] = payload["description"]
    return changes
