"""Bases, tables and records in memory, with Airtable's write rules.

A :class:`Base` holds one normalised schema and the records of its tables.
Every public method of :class:`Base` takes the base's lock, so concurrent
requests to one base are serialised and a batch is applied all-or-nothing:
each record of a request is validated (and coerced) before any is written.

Records keep their cells keyed by field ID (so responses can be keyed either
way) in the API's JSON form; computed fields are evaluated when rendered.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from typing import Any

from . import formula as fx
from .cellformat import resolve_time_zone, to_display
from .errors import ApiError
from .schema import COMPUTED_TYPES, find_table, load_schema, new_id, select_color

_TEXT_TYPES = frozenset({"singleLineText", "multilineText", "email", "url", "phoneNumber",
                         "richText"})  # fmt: skip
_NUMBER_TYPES = frozenset({"number", "currency", "percent", "rating", "duration"})
#: Field types Airtable documents as usable in performUpsert.fieldsToMergeOn.
_MERGEABLE_TYPES = _TEXT_TYPES | {"number", "currency", "percent", "singleSelect",
                                  "multipleSelects", "date", "dateTime"}  # fmt: skip
MAX_RECORDS_PER_REQUEST = 10
MAX_PAGE_SIZE = 100
_MAX_ITERATORS = 2000
_USER = {"id": "usrEmulatorUser01", "email": "emulator@localhost", "name": "Emulator"}


@dataclass
class Record:
    id: str
    created: datetime
    modified: datetime
    cells: dict[str, Any]  # field ID -> value in API form; no empty values
    auto_number: int


@dataclass
class ListOptions:
    """Parsed list-records parameters (see :meth:`Base.list_records`)."""

    formula: str | None = None
    fields: list[str] | None = None
    sort: list[tuple[str, str]] = field(default_factory=list)
    view: str | None = None
    max_records: int | None = None
    page_size: int = MAX_PAGE_SIZE
    offset: str | None = None
    cell_format: str = "json"
    time_zone: str | None = None
    user_locale: str | None = None
    by_field_id: bool = False
    comment_count: bool = False


@dataclass
class _Table:
    schema: dict[str, Any]
    records: dict[str, Record] = field(default_factory=dict)
    next_auto_number: int = 1

    @property
    def id(self) -> str:
        return str(self.schema["id"])

    @property
    def name(self) -> str:
        return str(self.schema["name"])

    def field(self, name_or_id: str) -> dict[str, Any] | None:
        for f in self.schema["fields"]:
            if name_or_id in (f["id"], f["name"]):
                return f  # type: ignore[no-any-return]
        return None

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.schema["fields"]]


class Base:
    """One Airtable base: schema plus records. Thread-safe."""

    def __init__(self, base_id: str, schema: Mapping[str, Any] | str | Any) -> None:
        self.id = base_id
        self.schema = load_schema(schema)
        self.name = str(self.schema.pop("name", base_id))
        self.lock = threading.RLock()
        self._tables = {t["id"]: _Table(t) for t in self.schema["tables"]}
        self._iterators: OrderedDict[str, tuple[str, list[str]]] = OrderedDict()
        self._formula_cache: dict[tuple[str, str], fx.Node] = {}

    # ------------------------------------------------------------------ lookup

    def table(self, name_or_id: str) -> _Table:
        """The table with this name or ID; raises 403 like Airtable when unknown."""
        return self._tables[find_table(self.schema, name_or_id)["id"]]

    def metadata(self) -> dict[str, Any]:
        import copy

        with self.lock:
            return {"tables": copy.deepcopy(self.schema["tables"])}

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """The whole base as JSON-able data (schema and records), for :meth:`from_snapshot`."""
        import copy

        with self.lock:
            return {
                "id": self.id,
                "name": self.name,
                "schema": copy.deepcopy(self.schema),
                "records": {
                    tid: {
                        "next_auto_number": table.next_auto_number,
                        "records": [
                            {
                                "id": r.id,
                                "created": r.created.isoformat(),
                                "modified": r.modified.isoformat(),
                                "cells": copy.deepcopy(r.cells),
                                "auto_number": r.auto_number,
                            }
                            for r in table.records.values()
                        ],
                    }
                    for tid, table in self._tables.items()
                },
            }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Base:
        """The base :meth:`snapshot` described, records included."""
        base = cls(str(data["id"]), {**data["schema"], "name": data.get("name", data["id"])})
        for tid, saved in (data.get("records") or {}).items():
            table = base._tables.get(tid)
            if table is None:
                raise ValueError(f"saved records for unknown table {tid!r} in base {data['id']!r}")
            table.next_auto_number = int(saved.get("next_auto_number", 1))
            for r in saved.get("records", []):
                table.records[r["id"]] = Record(
                    r["id"],
                    datetime.fromisoformat(r["created"]),
                    datetime.fromisoformat(r["modified"]),
                    dict(r["cells"]),
                    int(r["auto_number"]),
                )
        return base

    def create_field(self, table_ref: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``Create field``: add a field to a table (Airtable's rules, see :mod:`.fields`); returns it."""
        import copy

        from .fields import check_new_field

        with self.lock:
            table = self.table(table_ref)
            field = check_new_field(table.schema, set(self._tables), payload)
            table.schema["fields"].append(field)
            self._formula_cache.clear()
            return copy.deepcopy(field)

    def update_field(self, table_ref: str, field_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``Update field``: rename it and/or change its description (nothing else); returns it."""
        import copy

        from .fields import check_field_update

        with self.lock:
            table = self.table(table_ref)
            field = next((f for f in table.schema["fields"] if f["id"] == field_id), None)
            if field is None:
                raise ApiError.model_not_found()
            field.update(check_field_update(table.schema, field, payload))
            self._formula_cache.clear()
            return copy.deepcopy(field)

    # ------------------------------------------------------------------ reading

    def get_record(self, table_ref: str, record_id: str, opts: ListOptions | None = None) -> dict[str, Any]:
        """One record in API form; 404 ``MODEL_ID_NOT_FOUND`` if missing."""
        opts = opts or ListOptions()
        with self.lock:
            table = self.table(table_ref)
            rec = table.records.get(record_id)
            if rec is None:
                raise ApiError.record_not_found(record_id)
            return self.render(table, rec, opts)

    def all_records(self, table_ref: str) -> list[dict[str, Any]]:
        """Every record of a table in API form (field names), in creation order."""
        with self.lock:
            table = self.table(table_ref)
            return [self.render(table, r, ListOptions()) for r in table.records.values()]

    def list_records(self, table_ref: str, opts: ListOptions) -> dict[str, Any]:
        """One page of ``List records``: ``{"records": [...], "offset"?: str}``."""
        with self.lock:
            table = self.table(table_ref)
            self._check_list_options(table, opts)
            if opts.offset is not None:
                entry = self._iterators.pop(opts.offset, None)
                if entry is None or entry[0] != table.id:
                    raise ApiError.invalid_request(
                        "The iterator for this offset is not available or the offset is invalid",
                        "LIST_RECORDS_ITERATOR_NOT_AVAILABLE",
                    )
                ids = entry[1]
            else:
                ids = self._matching_ids(table, opts)
            page, rest = ids[: opts.page_size], ids[opts.page_size :]
            body: dict[str, Any] = {
                "records": [self.render(table, table.records[i], opts) for i in page if i in table.records]
            }
            if rest:
                # Opaque to clients; the prefix mirrors Airtable's "itr.../rec..." offsets.
                token = f"{new_id('itr')}/{rest[0]}"
                self._iterators[token] = (table.id, rest)
                while len(self._iterators) > _MAX_ITERATORS:
                    self._iterators.popitem(last=False)
                body["offset"] = token
            return body

    def _check_list_options(self, table: _Table, opts: ListOptions) -> None:
        if opts.view is not None and not any(opts.view in (v["id"], v["name"]) for v in table.schema["views"]):
            raise ApiError(422, "VIEW_NAME_NOT_FOUND", f"View {opts.view} not found")
        for name in opts.fields or []:
            if table.field(name) is None:
                raise ApiError.unknown_field(name)
        for name, direction in opts.sort:
            if table.field(name) is None:
                raise ApiError.invalid_request(f"Unknown field {name} for sort", "UNKNOWN_FIELD_NAME")
            if direction not in ("asc", "desc"):
                raise ApiError.invalid_request(f"Invalid sort direction {direction!r}")
        if opts.cell_format not in ("json", "string"):
            raise ApiError.invalid_request(f"Invalid cellFormat {opts.cell_format!r}")
        if opts.cell_format == "string" and (not opts.time_zone or not opts.user_locale):
            raise ApiError.invalid_request(
                "The timeZone and userLocale parameters are required when using string as the cellFormat."
            )
        if opts.time_zone is not None:
            try:
                resolve_time_zone(opts.time_zone)
            except ValueError:
                raise ApiError.invalid_request(f"Invalid timeZone {opts.time_zone!r}", "INVALID_TIME_ZONE") from None
        if not 1 <= opts.page_size <= MAX_PAGE_SIZE:
            raise ApiError.invalid_request(f"pageSize must be between 1 and {MAX_PAGE_SIZE}", "INVALID_PAGE_SIZE")
        if opts.max_records is not None and opts.max_records < 1:
            raise ApiError.invalid_request("maxRecords must be a positive integer")

    def _matching_ids(self, table: _Table, opts: ListOptions) -> list[str]:
        records = list(table.records.values())
        if opts.formula:
            try:
                node = fx.parse(opts.formula, table.field_names)
            except fx.FormulaSyntaxError as exc:
                raise ApiError.invalid_formula(str(exc)) from None
            kept = []
            for rec in records:
                try:
                    ok = fx.truthy(fx.evaluate(node, _Ctx(self, table, rec)))
                except fx.FormulaEvalError:
                    ok = False  # an #ERROR! result is not truthy
                if ok:
                    kept.append(rec)
            records = kept
        for name, direction in reversed(opts.sort):
            fname = table.field(name)["name"]  # type: ignore[index]
            # Stable sorts applied last key first give a multi-key sort; blanks sort first.
            records.sort(
                key=lambda r, n=fname: _sort_key(_safe_value(self, table, r, n)),  # type: ignore[misc]
                reverse=direction == "desc",
            )
        ids = [r.id for r in records]
        return ids[: opts.max_records] if opts.max_records is not None else ids

    def render(self, table: _Table, rec: Record, opts: ListOptions) -> dict[str, Any]:
        """A record as the API returns it, computed fields evaluated."""
        wanted = None
        if opts.fields is not None:
            wanted = {table.field(n)["id"] for n in opts.fields}  # type: ignore[index]
        tz: tzinfo = resolve_time_zone(opts.time_zone) if opts.time_zone else timezone.utc
        fields: dict[str, Any] = {}
        for f in table.schema["fields"]:
            if wanted is not None and f["id"] not in wanted:
                continue
            value = self._api_value(table, rec, f)
            if _is_empty(value):
                continue  # Airtable omits empty cells but keeps 0
            if opts.cell_format == "string":
                value = to_display(value, f["type"], f.get("options") or {}, tz)
                if value == "":
                    continue
            fields[f["id"] if opts.by_field_id else f["name"]] = value
        out: dict[str, Any] = {"id": rec.id, "createdTime": fx.format_datetime(rec.created),
                               "fields": fields}  # fmt: skip
        if opts.comment_count:
            out["commentCount"] = 0
        return out

    def _api_value(self, table: _Table, rec: Record, f: Mapping[str, Any]) -> Any:
        ftype = f["type"]
        if ftype not in COMPUTED_TYPES:
            return rec.cells.get(f["id"])
        if ftype == "createdTime":
            return fx.format_datetime(rec.created)
        if ftype == "lastModifiedTime":
            return fx.format_datetime(rec.modified)
        if ftype == "autoNumber":
            return rec.auto_number
        if ftype in ("createdBy", "lastModifiedBy"):
            return dict(_USER)
        if ftype == "count":
            link_id = (f.get("options") or {}).get("recordLinkFieldId")
            return len(rec.cells.get(link_id, [])) if link_id else None
        if ftype == "multipleLookupValues":
            return self._lookup(table, rec, f)
        if ftype == "formula":
            try:
                value = fx.evaluate(self._formula(table, f), _Ctx(self, table, rec))
            except fx.FormulaEvalError:
                return {"error": "#ERROR!"}
            except RecursionError:
                return {"error": "#ERROR!"}
            return _formula_to_api(value)
        return None  # rollup, button, aiText...: not modelled, so left empty

    def _lookup(self, table: _Table, rec: Record, f: Mapping[str, Any]) -> list[Any] | None:
        opts = f.get("options") or {}
        link = table.field(opts.get("recordLinkFieldId", ""))
        if link is None:
            return None
        other = self._tables.get((link.get("options") or {}).get("linkedTableId", ""))
        target = other.field(opts.get("fieldIdInLinkedTable", "")) if other else None
        if other is None or target is None:
            return None
        values: list[Any] = []
        for rid in rec.cells.get(link["id"], []):
            linked = other.records.get(rid)
            value = self._api_value(other, linked, target) if linked else None
            if isinstance(value, list):
                values.extend(value)
            elif not _is_empty(value):
                values.append(value)
        return values

    def _formula(self, table: _Table, f: Mapping[str, Any]) -> fx.Node:
        key = (table.id, f["id"])
        node = self._formula_cache.get(key)
        if node is None:
            node = fx.parse(f["options"]["formula"], table.field_names)
            self._formula_cache[key] = node
        return node

    def formula_value(self, table: _Table, rec: Record, name: str) -> fx.Value:
        """Field ``name`` of ``rec`` as the formula evaluator sees it."""
        f = table.field(name)
        if f is None:
            raise fx.FormulaEvalError(f"unknown field {name!r}")
        ftype = f["type"]
        if ftype == "formula":
            return fx.evaluate(self._formula(table, f), _Ctx(self, table, rec))
        value = self._api_value(table, rec, f)
        if value is None:
            return False if ftype == "checkbox" else None
        if ftype in ("dateTime", "date", "createdTime", "lastModifiedTime"):
            return fx.parse_datetime(value)
        if ftype == "multipleRecordLinks":
            other = self._tables.get((f.get("options") or {}).get("linkedTableId", ""))
            if other is None:
                return list(value)
            primary = other.field(other.schema["primaryFieldId"])
            return [
                fx.to_text(self.formula_value(other, other.records[r], primary["name"]))
                if r in other.records and primary
                else r
                for r in value
            ]
        if isinstance(value, dict):
            return str(value.get("name") or value.get("email") or value.get("text") or "")
        if isinstance(value, list):
            return [v if isinstance(v, (str, int, float)) else str(
                v.get("filename") or v.get("name") or v) for v in value]  # fmt: skip
        if isinstance(value, (str, int, float, bool)):
            return value
        return str(value)

    # ------------------------------------------------------------------ writing

    def create(self, table_ref: str, records: Sequence[Mapping[str, Any]], typecast: bool) -> list[Record]:
        """Create records from ``fields`` dicts, all or none."""
        with self.lock:
            table = self.table(table_ref)
            pending: dict[str, list[str]] = {}
            prepared = [self._prepare(table, fields, typecast, pending) for fields in records]
            self._commit_choices(table, pending)
            return [self._insert(table, cells) for cells in prepared]

    def update(
        self,
        table_ref: str,
        updates: Sequence[tuple[str, Mapping[str, Any]]],
        replace: bool,
        typecast: bool,
        single: bool = False,
    ) -> list[Record]:
        """Update ``(record_id, fields)`` pairs (PATCH merges, PUT replaces), all or none.

        A missing ID is 404 for a single-record request, 422 ``ROW_DOES_NOT_EXIST``
        in a batch.
        """
        with self.lock:
            table = self.table(table_ref)
            for rid, _ in updates:
                if rid not in table.records:
                    raise ApiError.record_not_found(rid) if single else ApiError.row_does_not_exist(rid)
            pending: dict[str, list[str]] = {}
            prepared = [(rid, self._prepare(table, f, typecast, pending)) for rid, f in updates]
            self._commit_choices(table, pending)
            return [self._apply(table, rid, cells, replace) for rid, cells in prepared]

    def upsert(
        self,
        table_ref: str,
        records: Sequence[Mapping[str, Any]],
        merge_on: Any,
        replace: bool,
        typecast: bool,
    ) -> tuple[list[Record], list[str], list[str]]:
        """Upsert: records with ``id`` update it; others match on ``merge_on`` fields.

        No match creates, one match updates, more than one fails the whole request.
        Returns ``(records in request order, created IDs, updated IDs)``.
        """
        with self.lock:
            table = self.table(table_ref)
            if not isinstance(merge_on, list) or not 1 <= len(merge_on) <= 3:
                raise ApiError.invalid_request(
                    "performUpsert.fieldsToMergeOn must be an array of 1 to 3 field names or IDs"
                )
            merge_ids: list[str] = []
            for name in merge_on:
                f = table.field(name) if isinstance(name, str) else None
                if f is None:
                    raise ApiError.unknown_field(str(name))
                if f["type"] not in _MERGEABLE_TYPES:
                    raise ApiError.invalid_request(
                        f'Field "{f["name"]}" of type {f["type"]} cannot be used in '
                        "fieldsToMergeOn: use a text, number, select or date field that is not "
                        "computed"
                    )
                merge_ids.append(f["id"])
            pending: dict[str, list[str]] = {}
            plan: list[tuple[str | None, dict[str, Any]]] = []
            seen_keys: set[str] = set()
            index: dict[tuple[Hashable, ...], list[str]] | None = None
            for item in records:
                cells = self._prepare(table, item.get("fields") or {}, typecast, pending)
                rid = item.get("id")
                if rid is not None:
                    if rid not in table.records:
                        raise ApiError.row_does_not_exist(str(rid))
                    plan.append((str(rid), cells))
                    continue
                if any(m not in cells for m in merge_ids):
                    raise ApiError.invalid_records(
                        "Each record without an id must include a value for every field in "
                        "performUpsert.fieldsToMergeOn"
                    )
                key = repr([cells[m] for m in merge_ids])
                if key in seen_keys:
                    raise ApiError.invalid_records(
                        "Multiple records in the request have the same values for performUpsert.fieldsToMergeOn"
                    )
                seen_keys.add(key)
                if index is None:
                    # One pass over the table per request, not per record: a job's
                    # batches of 10 upserts stay fast as the table grows.
                    index = {}
                    for r in table.records.values():
                        index.setdefault(tuple(_cell_key(r.cells.get(m)) for m in merge_ids), []).append(r.id)
                matches = index.get(tuple(_cell_key(cells[m]) for m in merge_ids), [])
                if len(matches) > 1:
                    raise ApiError.invalid_request(
                        "Cannot update more than one record per upsert; "
                        f"{len(matches)} records match the fields to merge on",
                        "INVALID_VALUE_FOR_COLUMN",
                    )
                plan.append((matches[0] if matches else None, cells))
            self._commit_choices(table, pending)
            out: list[Record] = []
            created: list[str] = []
            updated: list[str] = []
            for rid, cells in plan:
                if rid is None:
                    rec = self._insert(table, cells)
                    created.append(rec.id)
                else:
                    rec = self._apply(table, rid, cells, replace)
                    if rec.id not in updated:
                        updated.append(rec.id)
                out.append(rec)
            return out, created, updated

    def delete(self, table_ref: str, record_ids: Sequence[str], single: bool = False) -> list[str]:
        """Delete records, all or none; a missing ID is 404 (single) or 422 (batch)."""
        with self.lock:
            table = self.table(table_ref)
            for rid in record_ids:
                if rid not in table.records:
                    raise ApiError.record_not_found(rid) if single else ApiError.row_does_not_exist(rid)
            for rid in record_ids:
                del table.records[rid]
            return list(record_ids)

    def _insert(self, table: _Table, cells: Mapping[str, Any]) -> Record:
        now = _now()
        rec = Record(new_id("rec"), now, now, {k: v for k, v in cells.items() if v is not None},
                     table.next_auto_number)  # fmt: skip
        table.next_auto_number += 1
        table.records[rec.id] = rec
        return rec

    def _apply(self, table: _Table, rid: str, cells: Mapping[str, Any], replace: bool) -> Record:
        rec = table.records[rid]
        new = {} if replace else dict(rec.cells)
        for fid, value in cells.items():
            if value is None:
                new.pop(fid, None)  # null (or any empty value) clears the cell
            else:
                new[fid] = value
        rec.cells = new
        rec.modified = _now()
        return rec

    def _commit_choices(self, table: _Table, pending: Mapping[str, list[str]]) -> None:
        for fid, names in pending.items():
            f = table.field(fid)
            assert f is not None
            choices = f["options"]["choices"]
            for name in names:
                choices.append({"id": new_id("sel"), "name": name,
                                "color": select_color(len(choices))})  # fmt: skip

    def _prepare(
        self,
        table: _Table,
        fields: Any,
        typecast: bool,
        pending: dict[str, list[str]],
    ) -> dict[str, Any]:
        """Validate and coerce one record's ``fields``: field ID -> value (None clears)."""
        if not isinstance(fields, Mapping):
            raise ApiError.invalid_request(
                'Invalid request: parameter validation failed. Check your request data. "fields" must be an object',
                "INVALID_REQUEST_MISSING_FIELDS",
            )
        cells: dict[str, Any] = {}
        for key, value in fields.items():
            f = table.field(key)
            if f is None:
                raise ApiError.unknown_field(key)
            if f["type"] in COMPUTED_TYPES:
                raise ApiError.computed_field(f["name"])
            cells[f["id"]] = self._coerce(table, f, value, typecast, pending)
        return cells

    def _coerce(
        self,
        table: _Table,
        f: Mapping[str, Any],
        value: Any,
        typecast: bool,
        pending: dict[str, list[str]],
    ) -> Any:
        ftype, name = f["type"], f["name"]
        opts = f.get("options") or {}
        if value is None or value == "" or value == [] or value is False:
            return None  # empty values clear the cell; 0 does not
        bad = ApiError.invalid_value(name)
        if ftype in _TEXT_TYPES:
            if isinstance(value, str):
                return value
            if typecast and isinstance(value, (int, float)) and not isinstance(value, bool):
                return fx.to_text(value)
            raise bad
        if ftype in _NUMBER_TYPES:
            if isinstance(value, str) and typecast:
                try:
                    value = fx.to_number(value)
                except fx.FormulaEvalError:
                    raise bad from None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad
            if isinstance(value, float) and not math.isfinite(value):
                raise bad
            return value
        if ftype == "checkbox":
            if value is True:
                return True
            if typecast and isinstance(value, str):
                return True if value.strip().lower() in ("true", "checked", "yes", "1") else None
            raise bad
        if ftype == "singleSelect":
            if not isinstance(value, str):
                raise bad
            return self._choice(f, value, typecast, pending)
        if ftype == "multipleSelects":
            if isinstance(value, str) and typecast:
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad
            return list(dict.fromkeys(self._choice(f, v, typecast, pending) for v in value)) or None
        if ftype == "dateTime":
            if not isinstance(value, str):
                raise bad
            field_tz = resolve_time_zone(opts.get("timeZone"))
            try:
                return fx.format_datetime(fx.parse_datetime(value, field_tz))  # type: ignore[arg-type]
            except ValueError:
                raise bad from None
        if ftype == "date":
            if not isinstance(value, str):
                raise bad
            try:
                return date.fromisoformat(value).isoformat()
            except ValueError:
                pass
            try:
                return fx.parse_datetime(value).date().isoformat()
            except ValueError:
                raise bad from None
        if ftype == "multipleRecordLinks":
            if isinstance(value, str) and typecast:
                value = [value]
            if not isinstance(value, list) or not all(
                isinstance(v, str) and len(v) == 17 and v.startswith("rec") for v in value
            ):
                raise bad
            linked = self._tables.get(opts.get("linkedTableId", ""))
            for rid in value:
                if linked is not None and rid not in linked.records:
                    raise ApiError.row_does_not_exist(rid)
            return list(dict.fromkeys(value))
        if ftype == "multipleAttachments":
            if not isinstance(value, list) or not all(
                isinstance(v, Mapping) and ("url" in v or "id" in v) for v in value
            ):
                raise bad
            return [
                {"id": v.get("id") or new_id("att"), "url": v.get("url", ""),
                 "filename": v.get("filename") or str(v.get("url", "")).rsplit("/", 1)[-1]}
                for v in value
            ]  # fmt: skip
        if ftype in ("singleCollaborator", "barcode"):
            if not isinstance(value, Mapping):
                raise bad
            return dict(value)
        if ftype == "multipleCollaborators":
            if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
                raise bad
            return [dict(v) for v in value]
        return value  # a type the emulator does not model: keep any JSON

    def _choice(self, f: Mapping[str, Any], value: str, typecast: bool, pending: dict[str, list[str]]) -> str:
        names = {c["name"] for c in f["options"]["choices"]} | set(pending.get(f["id"], []))
        if value in names:
            return value
        if not typecast:
            raise ApiError.invalid_choice(value)
        pending.setdefault(f["id"], []).append(value)
        return value


class _Ctx:
    """A record seen by the formula evaluator."""

    def __init__(self, base: Base, table: _Table, rec: Record) -> None:
        self._base, self._table, self._rec = base, table, rec

    @property
    def record_id(self) -> str:
        return self._rec.id

    @property
    def created_time(self) -> datetime:
        return self._rec.created

    @property
    def last_modified_time(self) -> datetime:
        return self._rec.modified

    def field_value(self, name: str) -> fx.Value:
        return self._base.formula_value(self._table, self._rec, name)


def _now() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == "" or value == []


def _cell_key(value: Any) -> Hashable:
    """A hashable form of a cell for matching upserts: lists match as sets, numbers by value."""
    if isinstance(value, list):
        return ("list", tuple(sorted(map(repr, value))))
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if value is None or isinstance(value, str):
        return ("value", value)
    return ("repr", repr(value))


def _formula_to_api(value: fx.Value) -> Any:
    if isinstance(value, bool):
        return 1 if value else 0  # formula results have no boolean type in Airtable
    if isinstance(value, float):
        if math.isnan(value):
            return {"specialValue": "NaN"}
        if math.isinf(value):
            return {"specialValue": "Infinity" if value > 0 else "-Infinity"}
        return int(value) if value.is_integer() else value
    if isinstance(value, datetime):
        return fx.format_datetime(value)
    if isinstance(value, list):
        return [_formula_to_api(v) for v in value]
    return value


def _safe_value(base: Base, table: _Table, rec: Record, name: str) -> fx.Value:
    try:
        return base.formula_value(table, rec, name)
    except fx.FormulaEvalError:
        return None


def _sort_key(value: fx.Value) -> tuple[int, int, Any]:
    if value is None or value == "" or value == []:
        return (0, 0, 0)
    if isinstance(value, bool):
        return (1, 0, int(value))
    if isinstance(value, (int, float)):
        return (1, 0, 0 if math.isnan(value) else value)
    if isinstance(value, datetime):
        return (1, 1, value.timestamp())
    return (1, 2, fx.to_text(value).lower())


def parse_bool(value: Any) -> bool:
    """Airtable's boolean query values: ``1``/``true`` (and JSON true) are true."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in ("1", "true")


def chunk_ok(items: Iterable[Any]) -> bool:
    """Whether a batch is within Airtable's per-request record limit."""
    return 0 < len(list(items)) <= MAX_RECORDS_PER_REQUEST
