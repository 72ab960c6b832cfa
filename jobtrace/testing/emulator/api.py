"""Airtable Web API v0 routes: parse a request, call the store, shape the response.

Pure request/response logic with no sockets, auth, rate limiting or faults
(those live in :mod:`.server`). :func:`dispatch` takes the method, the raw
path, the query string and the body bytes and returns ``(status, json_body)``
or raises :class:`~.errors.ApiError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote

from .errors import ApiError
from .store import MAX_PAGE_SIZE, MAX_RECORDS_PER_REQUEST, Base, ListOptions, Record, parse_bool

#: Airtable refuses URLs longer than this (pyairtable then POSTs to listRecords).
MAX_URL_LENGTH = 16000

_SORT_PARAM = re.compile(r"^sort\[(\d+)\]\[(field|direction)\]$")


def base_id_of(path: str) -> str | None:
    """The base ID a request path addresses (for rate limiting), if any."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "v0":
        if parts[1] == "meta":
            return parts[3] if len(parts) >= 4 and parts[2] == "bases" else None
        return parts[1]
    return None


def dispatch(bases: Mapping[str, Base], method: str, path: str, query: str, body: bytes) -> tuple[int, Any]:
    """Route one request; returns ``(status, body)`` or raises ``ApiError``."""
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts or parts[0] != "v0":
        raise ApiError.not_found()
    parts = parts[1:]
    params = parse_qs(query, keep_blank_values=True)
    payload = _json_body(body) if method in ("POST", "PATCH", "PUT") else {}

    if parts[:1] == ["meta"]:
        return _meta(bases, method, parts[1:], payload)
    if len(parts) < 2 or len(parts) > 3:
        raise ApiError.not_found()
    base = bases.get(parts[0])
    if base is None:
        raise ApiError.model_not_found()
    table_ref = parts[1]
    base.table(table_ref)  # 403 for an unknown table before anything else

    if len(parts) == 3 and parts[2] == "listRecords" and method == "POST":
        opts = _list_options({**_flatten(params), **payload}, from_body=True)
        return 200, base.list_records(table_ref, opts)
    if len(parts) == 3:
        record_id = parts[2]
        return _record_route(base, table_ref, record_id, method, params, payload)

    if method == "GET":
        return 200, base.list_records(table_ref, _list_options(params, from_body=False))
    if method == "POST":
        return _create(base, table_ref, payload)
    if method in ("PATCH", "PUT"):
        return _batch_update(base, table_ref, payload, replace=method == "PUT")
    if method == "DELETE":
        ids = params.get("records[]", [])
        _check_batch_size(ids)
        deleted = base.delete(table_ref, ids)
        return 200, {"records": [{"id": i, "deleted": True} for i in deleted]}
    raise ApiError.not_found()


def _meta(bases: Mapping[str, Base], method: str, parts: list[str], payload: dict[str, Any]) -> tuple[int, Any]:
    # Create field: POST meta/bases/{baseId}/tables/{tableIdOrName}/fields
    # Update field: PATCH meta/bases/{baseId}/tables/{tableIdOrName}/fields/{fieldId}
    if len(parts) in (5, 6) and parts[0] == "bases" and parts[2] == "tables" and parts[4] == "fields":
        base = bases.get(parts[1])
        if base is None:
            raise ApiError.model_not_found()
        if len(parts) == 5 and method == "POST":
            return 200, base.create_field(parts[3], payload)
        if len(parts) == 6 and method == "PATCH":
            return 200, base.update_field(parts[3], parts[5], payload)
        raise ApiError.not_found()
    if method != "GET":
        raise ApiError.not_found()
    if parts == ["whoami"]:
        return 200, {"id": "usrEmulatorUser01", "scopes": ["data.records:read",
                     "data.records:write", "schema.bases:read", "schema.bases:write"]}  # fmt: skip
    if parts == ["bases"]:
        return 200, {"bases": [{"id": b.id, "name": b.name, "permissionLevel": "create"}
                               for b in bases.values()]}  # fmt: skip
    if len(parts) == 3 and parts[0] == "bases" and parts[2] == "tables":
        base = bases.get(parts[1])
        if base is None:
            raise ApiError.model_not_found()
        return 200, base.metadata()
    raise ApiError.not_found()


def _record_route(
    base: Base,
    table_ref: str,
    record_id: str,
    method: str,
    params: dict[str, list[str]],
    payload: dict[str, Any],
) -> tuple[int, Any]:
    if method == "GET":
        opts = _list_options(params, from_body=False)
        return 200, base.get_record(table_ref, record_id, opts)
    if method in ("PATCH", "PUT"):
        fields = payload.get("fields")
        if fields is None:
            fields = {}
        recs = base.update(
            table_ref,
            [(record_id, fields)],
            replace=method == "PUT",
            typecast=parse_bool(payload.get("typecast")),
            single=True,
        )
        return 200, _render(base, table_ref, recs[0], payload)
    if method == "DELETE":
        base.delete(table_ref, [record_id], single=True)
        return 200, {"id": record_id, "deleted": True}
    raise ApiError.not_found()


def _create(base: Base, table_ref: str, payload: dict[str, Any]) -> tuple[int, Any]:
    typecast = parse_bool(payload.get("typecast"))
    if "records" in payload:
        records = payload["records"]
        _check_batch_size(records)
        fields_list = []
        for item in records:
            if not isinstance(item, Mapping) or "fields" not in item:
                raise ApiError.invalid_records('Each record in "records" must be an object with a "fields" object')
            fields_list.append(item["fields"])
        created = base.create(table_ref, fields_list, typecast)
        return 200, {"records": [_render(base, table_ref, r, payload) for r in created]}
    if "fields" not in payload:
        raise ApiError.invalid_request(
            'Could not find field "fields" in the request body', "INVALID_REQUEST_MISSING_FIELDS"
        )
    created = base.create(table_ref, [payload["fields"]], typecast)
    return 200, _render(base, table_ref, created[0], payload)


def _batch_update(base: Base, table_ref: str, payload: dict[str, Any], replace: bool) -> tuple[int, Any]:
    records = payload.get("records")
    _check_batch_size(records)
    assert isinstance(records, list)
    typecast = parse_bool(payload.get("typecast"))
    for item in records:
        if not isinstance(item, Mapping) or not isinstance(item.get("fields", {}), Mapping):
            raise ApiError.invalid_records('Each record must be an object with a "fields" object')
    upsert = payload.get("performUpsert")
    if upsert is not None:
        if not isinstance(upsert, Mapping):
            raise ApiError.invalid_request("performUpsert must be an object")
        recs, created, updated = base.upsert(table_ref, records, upsert.get("fieldsToMergeOn"), replace, typecast)
        return 200, {
            "records": [_render(base, table_ref, r, payload) for r in recs],
            "createdRecords": created,
            "updatedRecords": updated,
        }
    updates = []
    for item in records:
        if not isinstance(item.get("id"), str):
            raise ApiError.invalid_records('Each record must have an "id" string')
        updates.append((item["id"], item.get("fields") or {}))
    recs = base.update(table_ref, updates, replace=replace, typecast=typecast)
    return 200, {"records": [_render(base, table_ref, r, payload) for r in recs]}


def _render(base: Base, table_ref: str, rec: Record, payload: Mapping[str, Any]) -> dict[str, Any]:
    with base.lock:
        table = base.table(table_ref)
        opts = ListOptions(by_field_id=parse_bool(payload.get("returnFieldsByFieldId")))
        return base.render(table, rec, opts)


def _check_batch_size(records: Any) -> None:
    if not isinstance(records, list) or not records:
        raise ApiError.invalid_records('"records" must be a non-empty array')
    if len(records) > MAX_RECORDS_PER_REQUEST:
        raise ApiError.invalid_records(
            f"You can only send up to {MAX_RECORDS_PER_REQUEST} records per request; got {len(records)}"
        )


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_REQUEST_BODY", "Could not parse request body as JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "INVALID_REQUEST_BODY", "Request body must be a JSON object")
    return data


def _flatten(params: dict[str, list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, values in params.items():
        out[key] = values if key.endswith("[]") else values[-1]
    return out


def _int_param(raw: Any, name: str) -> int:
    if isinstance(raw, bool):
        raise ApiError.invalid_request(f"{name} must be an integer")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ApiError.invalid_request(f"{name} must be an integer") from None


def _list_options(params: Mapping[str, Any], *, from_body: bool) -> ListOptions:
    """ListOptions from query params (``{name: [values]}``) or a listRecords body."""

    def one(name: str) -> Any:
        value = params.get(name)
        if isinstance(value, list) and not name.endswith("[]") and not from_body:
            return value[-1] if value else None
        return value

    opts = ListOptions()
    if (formula := one("filterByFormula")) is not None:
        if not isinstance(formula, str):
            raise ApiError.invalid_formula("filterByFormula must be a string")
        opts.formula = formula or None
    fields = params.get("fields") if from_body else None
    if fields is None:
        fields = params.get("fields[]")
    if fields is not None:
        if isinstance(fields, str):
            fields = [fields]
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ApiError.invalid_request("fields must be an array of field names or IDs")
        opts.fields = fields
    if from_body and isinstance(params.get("sort"), list):
        for item in params["sort"]:
            if not isinstance(item, Mapping) or "field" not in item:
                raise ApiError.invalid_request("Each sort object needs a field")
            opts.sort.append((str(item["field"]), str(item.get("direction", "asc"))))
    else:
        sorts: dict[int, dict[str, str]] = {}
        for key, value in params.items():
            m = _SORT_PARAM.match(key)
            if m:
                v = value[-1] if isinstance(value, list) else value
                sorts.setdefault(int(m.group(1)), {})[m.group(2)] = str(v)
        for idx in sorted(sorts):
            if "field" not in sorts[idx]:
                raise ApiError.invalid_request(f"sort[{idx}] needs a field")
            opts.sort.append((sorts[idx]["field"], sorts[idx].get("direction", "asc")))
    if (view := one("view")) is not None:
        opts.view = str(view)
    if (max_records := one("maxRecords")) is not None:
        opts.max_records = _int_param(max_records, "maxRecords")
    if (page_size := one("pageSize")) is not None:
        opts.page_size = _int_param(page_size, "pageSize")
        if opts.page_size > MAX_PAGE_SIZE or opts.page_size < 1:
            raise ApiError.invalid_request(f"pageSize must be between 1 and {MAX_PAGE_SIZE}", "INVALID_PAGE_SIZE")
    if (offset := one("offset")) is not None and offset != "":
        opts.offset = str(offset)  # an empty offset is the first page, as Airtable takes it
    if (cell_format := one("cellFormat")) is not None:
        opts.cell_format = str(cell_format)
    if (tz := one("timeZone")) is not None:
        opts.time_zone = str(tz)
    if (locale := one("userLocale")) is not None:
        opts.user_locale = str(locale)
    opts.by_field_id = parse_bool(one("returnFieldsByFieldId"))
    metadata = params.get("recordMetadata") if from_body else params.get("recordMetadata[]")
    opts.comment_count = isinstance(metadata, list) and "commentCount" in metadata
    return opts
