"""performUpsert: create or update by key fields, through pyairtable's batch_upsert."""

from __future__ import annotations

import pyairtable
import pytest
import requests

from jobtrace.testing.emulator import AirtableEmulator

from .conftest import BASE_ID, JOBS, error_of


def test_upsert_creates_then_updates(jobs: pyairtable.Table, emu: AirtableEmulator) -> None:
    first = jobs.batch_upsert([{"fields": {"Run ID": "r1", "Progress": "started"}}], ["Run ID"])
    assert len(first["createdRecords"]) == 1 and first["updatedRecords"] == []
    second = jobs.batch_upsert([{"fields": {"Run ID": "r1", "Progress": "done"}}], ["Run ID"])
    assert second["createdRecords"] == [] and second["updatedRecords"] == first["createdRecords"]
    (only,) = emu.records(BASE_ID, JOBS)
    assert only["fields"]["Progress"] == "done"


def test_upsert_response_keeps_request_order(jobs: pyairtable.Table) -> None:
    existing = jobs.create({"Run ID": "b"})
    result = jobs.batch_upsert(
        [{"fields": {"Run ID": "a"}}, {"fields": {"Run ID": "b", "Progress": "2"}}, {"fields": {"Run ID": "c"}}],
        ["Run ID"],
    )
    assert [r["fields"]["Run ID"] for r in result["records"]] == ["a", "b", "c"]
    assert result["updatedRecords"] == [existing["id"]]
    assert result["createdRecords"] == [result["records"][0]["id"], result["records"][2]["id"]]


def test_upsert_with_more_than_one_match_fails_the_whole_request(jobs: pyairtable.Table, emu: AirtableEmulator) -> None:
    jobs.batch_create([{"Run ID": "dup"}, {"Run ID": "dup"}])
    with pytest.raises(requests.HTTPError) as info:
        jobs.batch_upsert([{"fields": {"Run ID": "new"}}, {"fields": {"Run ID": "dup", "Progress": "x"}}], ["Run ID"])
    assert info.value.response.status_code == 422
    held = emu.records(BASE_ID, JOBS)
    assert len(held) == 2 and all("Progress" not in r["fields"] for r in held)


def test_upsert_on_several_fields_and_replace(jobs: pyairtable.Table) -> None:
    jobs.create({"Run ID": "r", "Job Type": "t1", "Progress": "old", "Clients Failed": 2})
    result = jobs.batch_upsert(
        [{"fields": {"Run ID": "r", "Job Type": "t1", "Progress": "new"}}], ["Run ID", "Job Type"], replace=True
    )
    fields = result["records"][0]["fields"]
    assert fields["Progress"] == "new" and "Clients Failed" not in fields
    other = jobs.batch_upsert([{"fields": {"Run ID": "r", "Job Type": "t2"}}], ["Run ID", "Job Type"])
    assert len(other["createdRecords"]) == 1


def test_upsert_with_record_id_updates_that_record(jobs: pyairtable.Table) -> None:
    rec = jobs.create({"Run ID": "by-id"})
    result = jobs.batch_upsert([{"id": rec["id"], "fields": {"Progress": "p"}}], ["Run ID"])
    assert result["updatedRecords"] == [rec["id"]]


def _raw(emu: AirtableEmulator, body: dict[str, object]) -> requests.Response:
    return requests.patch(
        f"{emu.url}/v0/{BASE_ID}/{JOBS}", json=body, headers={"Authorization": f"Bearer {emu.api_key}"}, timeout=5
    )


@pytest.mark.parametrize(
    "merge_on", [[], ["Run ID", "Job Type", "Progress", "Status"], ["Duration"], ["Created"], ["Nope"], "Run ID"]
)
def test_fields_to_merge_on_must_be_1_to_3_known_non_computed(emu: AirtableEmulator, merge_on: object) -> None:
    body = {"records": [{"fields": {"Run ID": "x"}}], "performUpsert": {"fieldsToMergeOn": merge_on}}
    resp = _raw(emu, body)
    assert resp.status_code == 422
    assert emu.records(BASE_ID, JOBS) == []


def test_upsert_record_missing_a_merge_field_is_rejected(emu: AirtableEmulator) -> None:
    body = {"records": [{"fields": {"Progress": "x"}}], "performUpsert": {"fieldsToMergeOn": ["Run ID"]}}
    resp = _raw(emu, body)
    assert resp.status_code == 422 and resp.json()["error"]["type"] == "INVALID_RECORDS"


def test_upsert_validation_errors_write_nothing(jobs: pyairtable.Table, emu: AirtableEmulator) -> None:
    with pytest.raises(requests.HTTPError) as info:
        jobs.batch_upsert([{"fields": {"Run ID": "ok"}}, {"fields": {"Run ID": "bad", "Duration": 1}}], ["Run ID"])
    assert error_of(info.value)["type"] == "INVALID_VALUE_FOR_COLUMN"
    assert emu.records(BASE_ID, JOBS) == []
