"""List records: pagination, maxRecords, fields, sort, view, cellFormat, field IDs, long URLs."""

from __future__ import annotations

import pyairtable
import pytest
import requests
from pyairtable.formulas import OR, Field

from jobtrace.testing.emulator import AirtableEmulator

from .conftest import BASE_ID, JOBS, TYPES_BASE_ID, error_of


def _get(emu: AirtableEmulator, path: str, **params: object) -> requests.Response:
    return requests.get(
        f"{emu.url}/v0/{path}", params=params, headers={"Authorization": f"Bearer {emu.api_key}"}, timeout=5
    )


@pytest.fixture
def many(jobs: pyairtable.Table) -> list[str]:
    created = jobs.batch_create([{"Run ID": f"r{i:04d}", "Posts Processed": i % 7} for i in range(523)])
    return [r["id"] for r in created]


def test_pagination_over_500_records(jobs: pyairtable.Table, many: list[str], emu: AirtableEmulator) -> None:
    emu.clear_requests()
    assert [r["id"] for r in jobs.all()] == many  # default pageSize 100: 6 pages
    assert len(emu.requests) == 6
    pages = list(jobs.iterate(page_size=50))
    assert [len(p) for p in pages] == [50] * 10 + [23]
    assert [r["id"] for p in pages for r in p] == many


def test_offset_is_opaque_and_checked(emu: AirtableEmulator, many: list[str]) -> None:
    first = _get(emu, f"{BASE_ID}/{JOBS}", pageSize=100).json()
    assert isinstance(first["offset"], str) and len(first["records"]) == 100
    second = _get(emu, f"{BASE_ID}/{JOBS}", pageSize=100, offset=first["offset"]).json()
    assert second["records"][0]["id"] == many[100]
    bad = _get(emu, f"{BASE_ID}/{JOBS}", offset="itrNOPE/recNOPE")
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"


def test_page_size_over_100_is_422(emu: AirtableEmulator, jobs: pyairtable.Table) -> None:
    for size in (101, 0, "x"):
        resp = _get(emu, f"{BASE_ID}/{JOBS}", pageSize=size)
        assert resp.status_code == 422, size
    with pytest.raises(requests.HTTPError):
        jobs.all(page_size=101)


def test_max_records_caps_the_total(jobs: pyairtable.Table, many: list[str]) -> None:
    assert len(jobs.all(max_records=150)) == 150
    assert len(jobs.all(max_records=150, page_size=20)) == 150
    assert jobs.first()["id"] == many[0]  # type: ignore[index]


def test_fields_restricts_returned_fields(jobs: pyairtable.Table) -> None:
    jobs.create({"Run ID": "f", "Progress": "p", "Job Type": "t"})
    (rec,) = jobs.all(fields=["Run ID", "Progress"])
    assert rec["fields"] == {"Run ID": "f", "Progress": "p"}
    with pytest.raises(requests.HTTPError) as info:
        jobs.all(fields=["Nope"])
    assert error_of(info.value)["type"] == "UNKNOWN_FIELD_NAME"


def test_sort_ascending_descending_and_multi_key(jobs: pyairtable.Table) -> None:
    jobs.batch_create(
        [{"Run ID": "b", "Posts Processed": 2}, {"Run ID": "a", "Posts Processed": 2},
         {"Run ID": "c", "Posts Processed": 1}, {"Run ID": "d"}]
    )  # fmt: skip
    ids = lambda recs: [r["fields"]["Run ID"] for r in recs]  # noqa: E731
    assert ids(jobs.all(sort=["Run ID"])) == ["a", "b", "c", "d"]
    assert ids(jobs.all(sort=["-Run ID"])) == ["d", "c", "b", "a"]
    assert ids(jobs.all(sort=["-Posts Processed", "Run ID"])) == ["a", "b", "c", "d"]
    assert ids(jobs.all(sort=["Posts Processed", "Run ID"])) == ["d", "c", "a", "b"]  # blank first
    with pytest.raises(requests.HTTPError):
        jobs.all(sort=["Nope"])


def test_view_by_name_or_id_and_unknown_view(jobs: pyairtable.Table, emu: AirtableEmulator) -> None:
    jobs.create({"Run ID": "v"})
    view_id = emu.schema(BASE_ID)["tables"][0]["views"][0]["id"]
    assert len(jobs.all(view="Grid view")) == 1 and len(jobs.all(view=view_id)) == 1
    with pytest.raises(requests.HTTPError) as info:
        jobs.all(view="No such view")
    assert info.value.response.status_code == 422
    assert error_of(info.value) == {"type": "VIEW_NAME_NOT_FOUND", "message": "View No such view not found"}


def test_cell_format_string(things: pyairtable.Table, emu: AirtableEmulator) -> None:
    things.create({"Name": "n", "Count": 1234, "Price": 3.5, "Ratio": 0.256, "Done": True, "Tags": ["a", "b"],
                   "When": "2024-05-06T07:08:09Z", "Day": "2024-05-06"})  # fmt: skip
    (rec,) = things.all(cell_format="string", time_zone="Europe/Paris", user_locale="en-gb")
    f = rec["fields"]
    assert f["Count"] == "1,234" and f["Price"] == "$3.50" and f["Ratio"] == "25.6%"
    assert f["Tags"] == "a, b" and f["Day"] == "2024-05-06"
    assert f["When"] == "2024-05-06 03:08"  # the field's own zone, America/New_York
    resp = _get(emu, f"{TYPES_BASE_ID}/Things", cellFormat="string")
    assert resp.status_code == 422  # timeZone and userLocale are required
    resp = _get(emu, f"{TYPES_BASE_ID}/Things", cellFormat="string", timeZone="Mars/Olympus", userLocale="en")
    assert resp.status_code == 422


@pytest.mark.parametrize("flag", ["1", "true"])
def test_return_fields_by_field_id_query_values(emu: AirtableEmulator, jobs: pyairtable.Table, flag: str) -> None:
    jobs.create({"Run ID": "x"})
    primary = emu.schema(BASE_ID)["tables"][0]["primaryFieldId"]
    body = _get(emu, f"{BASE_ID}/{JOBS}", returnFieldsByFieldId=flag).json()
    assert body["records"][0]["fields"][primary] == "x"
    assert "Run ID" in _get(emu, f"{BASE_ID}/{JOBS}", returnFieldsByFieldId="0").json()["records"][0]["fields"]


def test_post_list_records_with_json_boolean(emu: AirtableEmulator, jobs: pyairtable.Table) -> None:
    jobs.create({"Run ID": "x", "Progress": "p"})
    primary = emu.schema(BASE_ID)["tables"][0]["primaryFieldId"]
    resp = requests.post(
        f"{emu.url}/v0/{BASE_ID}/{JOBS}/listRecords",
        json={"returnFieldsByFieldId": True, "fields": ["Run ID"], "sort": [{"field": "Run ID", "direction": "desc"}]},
        headers={"Authorization": f"Bearer {emu.api_key}"},
        timeout=5,
    )
    assert resp.status_code == 200
    assert resp.json()["records"][0]["fields"] == {primary: "x"}


def test_long_formula_switches_to_post_and_long_get_is_refused(jobs: pyairtable.Table, emu: AirtableEmulator) -> None:
    jobs.batch_create([{"Run ID": "wanted"}, {"Run ID": "other"}])
    formula = OR(*[Field("Run ID").eq(f"no-such-run-{i:05d}") for i in range(700)], Field("Run ID").eq("wanted"))
    assert len(str(formula)) > 16000
    emu.clear_requests()
    (rec,) = jobs.all(formula=formula)
    assert rec["fields"]["Run ID"] == "wanted"
    assert [(r.method, r.path.endswith("/listRecords")) for r in emu.requests] == [("POST", True)]
    resp = _get(emu, f"{BASE_ID}/{JOBS}", filterByFormula=str(formula))
    assert resp.status_code == 414


def test_record_metadata_comment_count(jobs: pyairtable.Table) -> None:
    jobs.create({"Run ID": "c"})
    assert jobs.all(count_comments=True)[0]["commentCount"] == 0


def test_long_formula_pages_through_post_with_offset_in_body(
    jobs: pyairtable.Table, many: list[str], emu: AirtableEmulator
) -> None:
    padding = [Field("Run ID").eq(f"no-such-run-{i:05d}") for i in range(700)]
    formula = OR(*padding, Field("Posts Processed").eq(3))
    expected = [rid for i, rid in enumerate(many) if i % 7 == 3]
    emu.clear_requests()
    assert [r["id"] for r in jobs.all(formula=formula, page_size=30)] == expected
    assert {r.method for r in emu.requests} == {"POST"} and len(emu.requests) == 3
