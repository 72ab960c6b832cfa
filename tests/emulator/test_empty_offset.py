"""Item 13: an empty ``offset`` on a list request means the first page, as on Airtable."""

from __future__ import annotations

import pyairtable
import requests

from jobtrace.testing.emulator import AirtableEmulator

from .conftest import BASE_ID, JOBS


def test_table_all_with_an_empty_offset_lists_every_record(jobs: pyairtable.Table, emu: AirtableEmulator) -> None:
    created = [r["id"] for r in jobs.batch_create([{"Run ID": f"r{i:03d}"} for i in range(130)])]
    assert [r["id"] for r in jobs.all(offset="")] == created  # what pyairtable's integration suite calls


def test_an_empty_offset_in_the_query_and_in_a_list_records_body_is_the_first_page(
    jobs: pyairtable.Table, emu: AirtableEmulator
) -> None:
    created = [r["id"] for r in jobs.batch_create([{"Run ID": f"r{i}"} for i in range(3)])]
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    got = requests.get(f"{emu.url}/v0/{BASE_ID}/{JOBS}", params={"offset": ""}, headers=headers, timeout=5)
    assert got.status_code == 200 and [r["id"] for r in got.json()["records"]] == created
    posted = requests.post(
        f"{emu.url}/v0/{BASE_ID}/{JOBS}/listRecords", json={"offset": ""}, headers=headers, timeout=5
    )
    assert posted.status_code == 200 and [r["id"] for r in posted.json()["records"]] == created
