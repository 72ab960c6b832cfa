"""Create, read, update, delete: shapes, validation and all-or-nothing batches."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pyairtable
import pytest
import requests

from jobtrace.testing.emulator import AirtableEmulator

from .conftest import BASE_ID, JOBS, TYPES_BASE_ID, error_of

ID = re.compile(r"^rec[A-Za-z0-9]{14}$")
CREATED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _post(emu: AirtableEmulator, method: str, path: str, **kwargs: object) -> requests.Response:
    return requests.request(
        method,
        f"{emu.url}/v0/{path}",
        headers={"Authorization": f"Bearer {emu.api_key}"},
        timeout=5,
        **kwargs,  # type: ignore[arg-type]
    )


def test_create_returns_id_and_created_time_in_airtable_shape(jobs: pyairtable.Table) -> None:
    rec = jobs.create({"Run ID": "250101-000000", "Status": "Running"})
    assert ID.match(rec["id"]) and len(rec["id"]) == 17
    assert CREATED.match(rec["createdTime"])
    created = datetime.strptime(rec["createdTime"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 60
    assert rec["fields"]["Run ID"] == "250101-000000"
    # createdTime fields return the record's createdTime.
    assert rec["fields"]["Created"] == rec["createdTime"]


def test_schema_ids_are_17_characters(emu: AirtableEmulator) -> None:
    schema = emu.schema(TYPES_BASE_ID)
    for table in schema["tables"]:
        assert re.match(r"^tbl[A-Za-z0-9]{14}$", table["id"])
        for field in table["fields"]:
            assert re.match(r"^fld[A-Za-z0-9]{14}$", field["id"])


def test_batch_create_get_and_records_helper(jobs: pyairtable.Table, emu: AirtableEmulator) -> None:
    created = jobs.batch_create([{"Run ID": f"r{i}"} for i in range(23)])  # pyairtable chunks by 10
    assert [r["fields"]["Run ID"] for r in created] == [f"r{i}" for i in range(23)]
    assert jobs.get(created[5]["id"])["fields"]["Run ID"] == "r5"
    held = emu.records(BASE_ID, JOBS)
    assert [r["id"] for r in held] == [r["id"] for r in created]
    assert set(held[0]) == {"id", "createdTime", "fields"}


def test_patch_merges_put_replaces_null_clears(jobs: pyairtable.Table) -> None:
    rec = jobs.create({"Run ID": "a", "Progress": "1/3", "Clients Processed": 3})
    patched = jobs.update(rec["id"], {"Progress": "2/3"})
    assert patched["fields"]["Run ID"] == "a" and patched["fields"]["Progress"] == "2/3"
    cleared = jobs.update(rec["id"], {"Progress": None})
    assert "Progress" not in cleared["fields"] and cleared["fields"]["Clients Processed"] == 3
    replaced = jobs.update(rec["id"], {"Run ID": "b"}, replace=True)
    assert {k for k in replaced["fields"] if k not in ("Created", "Duration")} == {"Run ID"}
    batch = jobs.batch_update([{"id": rec["id"], "fields": {"Progress": "x"}}], replace=True)
    assert "Run ID" not in batch[0]["fields"] and batch[0]["fields"]["Progress"] == "x"


def test_delete_single_and_batch(jobs: pyairtable.Table, emu: AirtableEmulator) -> None:
    recs = jobs.batch_create([{"Run ID": str(i)} for i in range(12)])
    assert jobs.delete(recs[0]["id"]) == {"id": recs[0]["id"], "deleted": True}
    deleted = jobs.batch_delete([r["id"] for r in recs[1:]])
    assert all(d["deleted"] for d in deleted) and len(deleted) == 11
    assert emu.records(BASE_ID, JOBS) == []


def test_missing_record_is_404_model_id_not_found(jobs: pyairtable.Table) -> None:
    for call in (
        lambda: jobs.get("recAAAAAAAAAAAAAA"),
        lambda: jobs.update("recAAAAAAAAAAAAAA", {"Progress": "x"}),
        lambda: jobs.delete("recAAAAAAAAAAAAAA"),
    ):
        with pytest.raises(requests.HTTPError) as info:
            call()
        assert info.value.response.status_code == 404
        assert error_of(info.value)["type"] == "MODEL_ID_NOT_FOUND"


def test_missing_id_in_batch_update_is_422_and_nothing_written(jobs: pyairtable.Table, emu: AirtableEmulator) -> None:
    rec = jobs.create({"Run ID": "keep"})
    with pytest.raises(requests.HTTPError) as info:
        jobs.batch_update(
            [{"id": rec["id"], "fields": {"Progress": "changed"}}, {"id": "recAAAAAAAAAAAAAA", "fields": {}}]
        )
    assert info.value.response.status_code == 422
    assert error_of(info.value)["type"] == "ROW_DOES_NOT_EXIST"
    assert "Progress" not in emu.records(BASE_ID, JOBS)[0]["fields"]
    with pytest.raises(requests.HTTPError) as info:
        jobs.batch_delete([rec["id"], "recAAAAAAAAAAAAAA"])
    assert error_of(info.value)["type"] == "ROW_DOES_NOT_EXIST"
    assert len(emu.records(BASE_ID, JOBS)) == 1


def test_more_than_10_records_per_request_is_422(emu: AirtableEmulator) -> None:
    path = f"{BASE_ID}/{JOBS}"
    eleven = [{"fields": {"Run ID": str(i)}} for i in range(11)]
    for method, body in (("POST", {"records": eleven}), ("PATCH", {"records": eleven}), ("PUT", {"records": eleven})):
        resp = _post(emu, method, path, json=body)
        assert resp.status_code == 422, method
        assert resp.json()["error"]["type"] == "INVALID_RECORDS"
    resp = _post(emu, "DELETE", path, params={"records[]": [f"rec{i:014d}" for i in range(11)]})
    assert resp.status_code == 422
    ten = _post(emu, "POST", path, json={"records": eleven[:10]})
    assert ten.status_code == 200 and len(ten.json()["records"]) == 10


def test_batch_is_all_or_nothing(jobs: pyairtable.Table, emu: AirtableEmulator) -> None:
    good = [{"Run ID": str(i)} for i in range(9)]
    with pytest.raises(requests.HTTPError) as info:
        jobs.batch_create([*good, {"Run ID": "bad", "Clients Processed": "many"}])
    assert error_of(info.value)["type"] == "INVALID_VALUE_FOR_COLUMN"
    assert emu.records(BASE_ID, JOBS) == []


def test_write_to_computed_field_is_422_with_airtables_message(jobs: pyairtable.Table) -> None:
    rec = jobs.create({"Run ID": "c"})
    for name in ("Duration", "Success Rate", "Created"):
        for call in (lambda n=name: jobs.create({n: 1}), lambda n=name: jobs.update(rec["id"], {n: 1})):
            with pytest.raises(requests.HTTPError) as info:
                call()
            assert info.value.response.status_code == 422
            assert error_of(info.value) == {
                "type": "INVALID_VALUE_FOR_COLUMN",
                "message": f'Field "{name}" cannot accept a value because the field is computed',
            }


def test_unknown_field_is_422(jobs: pyairtable.Table) -> None:
    with pytest.raises(requests.HTTPError) as info:
        jobs.create({"Run ID": "x", "Runn ID": "typo"})
    assert info.value.response.status_code == 422
    assert error_of(info.value) == {"type": "UNKNOWN_FIELD_NAME", "message": 'Unknown field name: "Runn ID"'}


def test_select_value_outside_choices_and_typecast(jobs: pyairtable.Table, api: pyairtable.Api) -> None:
    with pytest.raises(requests.HTTPError) as info:
        jobs.create({"Run ID": "s", "Status": "Paused"})
    assert info.value.response.status_code == 422
    assert error_of(info.value)["type"] == "INVALID_MULTIPLE_CHOICE_OPTIONS"
    rec = jobs.create({"Run ID": "s", "Status": "Paused"}, typecast=True)
    assert rec["fields"]["Status"] == "Paused"
    choices = api.base(BASE_ID).schema(force=True).table(JOBS).field("Status").options.choices  # type: ignore[union-attr]
    assert "Paused" in [c.name for c in choices]
    jobs.create({"Run ID": "s2", "Status": "Paused"})  # now a valid choice


def test_multiple_selects_and_typecast(things: pyairtable.Table) -> None:
    assert things.create({"Tags": ["a", "b"]})["fields"]["Tags"] == ["a", "b"]
    with pytest.raises(requests.HTTPError):
        things.create({"Tags": ["a", "zzz"]})
    assert things.create({"Tags": ["zzz"]}, typecast=True)["fields"]["Tags"] == ["zzz"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Name", 5), ("Name", ["x"]), ("Count", "5"), ("Count", True), ("Count", {"n": 1}),
        ("Done", "yes"), ("Done", 1), ("Kind", 3), ("Tags", "a"), ("Day", "yesterday"),
        ("Day", 20240101), ("When", "2024-13-01T00:00:00Z"), ("When", 1700000000),
        ("Parts", ["notarecordid"]), ("Parts", "recAAAAAAAAAAAAAA"), ("Email", 3.5),
    ],
)  # fmt: skip
def test_values_of_the_wrong_type_are_rejected(things: pyairtable.Table, field: str, value: object) -> None:
    with pytest.raises(requests.HTTPError) as info:
        things.create({field: value})
    assert info.value.response.status_code == 422
    assert error_of(info.value) == {
        "type": "INVALID_VALUE_FOR_COLUMN",
        "message": f'Field "{field}" cannot accept the provided value',
    }


def test_typecast_converts_numbers_and_text(things: pyairtable.Table) -> None:
    rec = things.create({"Count": "42", "Name": 7, "Done": "true"}, typecast=True)
    assert rec["fields"]["Count"] == 42 and rec["fields"]["Name"] == "7" and rec["fields"]["Done"] is True


def test_empty_values_are_omitted_but_zero_is_kept(things: pyairtable.Table) -> None:
    rec = things.create({"Name": "", "Notes": None, "Tags": [], "Done": False, "Count": 0, "Price": 0.0})
    fields = rec["fields"]
    assert "Name" not in fields and "Notes" not in fields and "Tags" not in fields and "Done" not in fields
    assert fields["Count"] == 0 and fields["Price"] == 0
    assert things.create({"Done": True})["fields"]["Done"] is True


def test_datetime_is_normalised_to_utc_z(jobs: pyairtable.Table, things: pyairtable.Table) -> None:
    cases = {
        "2024-05-06T07:08:09Z": "2024-05-06T07:08:09.000Z",
        "2024-05-06T07:08:09.123456+00:00": "2024-05-06T07:08:09.123Z",
        "2024-05-06T09:08:09+02:00": "2024-05-06T07:08:09.000Z",
        "2024-05-06T02:08:09-0500": "2024-05-06T07:08:09.000Z",
        "2024-05-06": "2024-05-06T00:00:00.000Z",
    }
    for given, expected in cases.items():
        assert jobs.create({"Start Time": given})["fields"]["Start Time"] == expected, given
    # A naive datetime is read in the field's time zone (America/New_York, UTC-4 in May).
    assert things.create({"When": "2024-05-06T03:08:09"})["fields"]["When"] == "2024-05-06T07:08:09.000Z"
    assert things.create({"Day": "2024-02-29"})["fields"]["Day"] == "2024-02-29"


def test_autonumber_links_and_unknown_types(things: pyairtable.Table, api: pyairtable.Api) -> None:
    part = api.table(TYPES_BASE_ID, "Parts").create({"Part": "bolt"})
    a = things.create({"Name": "a", "Parts": [part["id"]], "Payload": {"any": ["json"]}})
    b = things.create({"Name": "b"})
    assert b["fields"]["Seq"] == a["fields"]["Seq"] + 1
    assert a["fields"]["Parts"] == [part["id"]] and a["fields"]["Payload"] == {"any": ["json"]}
    with pytest.raises(requests.HTTPError) as info:
        things.create({"Parts": ["recAAAAAAAAAAAAAA"]})
    assert error_of(info.value)["type"] == "ROW_DOES_NOT_EXIST"


def test_formula_fields_are_computed_on_read(jobs: pyairtable.Table, things: pyairtable.Table) -> None:
    rec = jobs.create(
        {"Start Time": "2024-01-01T10:00:00Z", "End Time": "2024-01-01T10:02:05Z",
         "Clients Processed": 4, "Clients Succeeded": 3}
    )  # fmt: skip
    assert rec["fields"]["Duration"] == 125 and rec["fields"]["Success Rate"] == 0.75
    empty = jobs.create({"Run ID": "no counts"})["fields"]
    assert "Success Rate" not in empty  # IF(0, ..., BLANK()) is blank, so omitted
    assert things.create({"Name": "n", "Count": 21})["fields"]["Double"] == 42
    assert things.create({"Name": "n", "Count": 3})["fields"]["Label"] == "n-3"


def test_return_fields_by_field_id_on_writes(jobs: pyairtable.Table, emu: AirtableEmulator) -> None:
    run_id_field = emu.schema(BASE_ID)["tables"][0]["primaryFieldId"]
    rec = jobs.create({"Run ID": "ids"}, use_field_ids=True)
    assert rec["fields"][run_id_field] == "ids"
    assert jobs.get(rec["id"], use_field_ids=True)["fields"][run_id_field] == "ids"
    # Writing by field ID works too.
    assert jobs.create({run_id_field: "by id"})["fields"]["Run ID"] == "by id"


def test_malformed_bodies_are_rejected(emu: AirtableEmulator) -> None:
    path = f"{BASE_ID}/{JOBS}"
    assert _post(emu, "POST", path, data=b"{not json").status_code == 400
    assert _post(emu, "POST", path, json={"nofields": 1}).status_code == 422
    assert _post(emu, "POST", path, json={"fields": ["x"]}).status_code == 422
    assert _post(emu, "PATCH", path, json={"records": [{"fields": {}}]}).status_code == 422
