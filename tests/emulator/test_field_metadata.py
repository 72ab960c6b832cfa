"""Create field / Update field, through pyairtable, with Airtable's rules."""

from __future__ import annotations

import pyairtable
import pytest
import requests

from .conftest import BASE_ID, JOBS, error_of


def error_type(exc: pytest.ExceptionInfo[requests.HTTPError]) -> str:
    assert exc.value.response is not None and exc.value.response.status_code == 422
    err = error_of(exc.value)
    return str(err["type"] if isinstance(err, dict) else err)


def test_created_fields_appear_in_the_metadata_and_take_values(api: pyairtable.Api) -> None:
    table = api.table(BASE_ID, JOBS)
    heartbeat = table.create_field(
        "Last Heartbeat",
        "dateTime",
        options={"dateFormat": {"name": "iso"}, "timeFormat": {"name": "24hour"}, "timeZone": "utc"},
    )
    assert heartbeat.id.startswith("fld") and len(heartbeat.id) == 17
    count = table.create_field("Retries", "number", description="how often", options={"precision": 0})
    kind = table.create_field("Kind", "singleSelect", options={"choices": [{"name": "a"}, {"name": "b"}]})
    schema = api.base(BASE_ID).schema(force=True).table(JOBS)
    assert schema.field("Last Heartbeat").options.time_zone == "utc"  # type: ignore[union-attr]
    assert schema.field("Last Heartbeat").options.date_format.format == "YYYY-MM-DD"  # type: ignore[union-attr]
    assert schema.field("Retries").description == "how often" and count.type == "number"
    assert [c.name for c in kind.options.choices] == ["a", "b"]  # type: ignore[union-attr]
    record = table.create({"Run ID": "x", "Last Heartbeat": "2026-01-02T03:04:05.000Z", "Retries": 2, "Kind": "b"})
    assert record["fields"]["Retries"] == 2 and record["fields"]["Kind"] == "b"
    assert "schema.bases:write" in api.whoami()["scopes"]


@pytest.mark.parametrize(
    ("name", "field_type", "options", "expected"),
    [
        ("Run ID", "singleLineText", None, "DUPLICATE_OR_EMPTY_FIELD_NAME"),
        ("run id", "singleLineText", None, "DUPLICATE_OR_EMPTY_FIELD_NAME"),
        ("  ", "singleLineText", None, "DUPLICATE_OR_EMPTY_FIELD_NAME"),
        ("Twice", "formula", {"formula": "1+1"}, "UNSUPPORTED_FIELD_TYPE_FOR_CREATE"),
        ("Seq", "autoNumber", None, "UNSUPPORTED_FIELD_TYPE_FOR_CREATE"),
        ("N", "number", None, "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE"),
        ("N", "number", {"precision": 9}, "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE"),
        ("When", "dateTime", {"dateFormat": {"name": "iso"}}, "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE"),
        ("S", "singleSelect", {"choices": [{"id": "selAAAAAAAAAAAAAA", "name": "x"}]},
         "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE"),
        ("T", "singleLineText", {"precision": 1}, "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE"),
        ("U", "noSuchType", None, "INVALID_FIELD_TYPE"),
    ],
)  # fmt: skip
def test_create_field_refuses_what_airtable_refuses(
    api: pyairtable.Api, name: str, field_type: str, options: dict[str, object] | None, expected: str
) -> None:
    with pytest.raises(requests.HTTPError) as caught:
        api.table(BASE_ID, JOBS).create_field(name, field_type, options=options)
    assert error_type(caught) == expected
    assert name.strip() in ("Run ID", "run id", "") or name not in [
        f.name for f in api.base(BASE_ID).schema(force=True).table(JOBS).fields
    ]


def test_update_field_renames_and_describes_but_cannot_change_choices(api: pyairtable.Api) -> None:
    table = api.table(BASE_ID, JOBS)
    status = api.base(BASE_ID).schema().table(JOBS).field("Status")
    url = f"{api.build_url('meta/bases', BASE_ID, 'tables', JOBS, 'fields', status.id)}"
    changed = api.request("PATCH", url, json={"description": "how the run ended"})
    assert changed["description"] == "how the run ended" and changed["type"] == "singleSelect"
    for body in ({"options": {"choices": [{"name": "Cancelled"}]}}, {}, {"name": "Progress"}, {"type": "number"}):
        with pytest.raises(requests.HTTPError) as caught:
            api.request("PATCH", url, json=body)
        assert caught.value.response is not None and caught.value.response.status_code == 422
    renamed = api.request("PATCH", url, json={"name": "State"})
    assert renamed["name"] == "State"
    assert table.create({"Run ID": "y", "State": "Running"})["fields"]["State"] == "Running"
