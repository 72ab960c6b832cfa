"""Many clients at once: nothing is lost, upserts stay unique."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyairtable

from jobtrace.testing.emulator import AirtableEmulator

from .conftest import BASE_ID, JOBS

THREADS, PER_THREAD = 16, 25


def test_many_threads_writing_at_once_lose_nothing(emu: AirtableEmulator) -> None:
    def worker(n: int) -> list[str]:
        table = pyairtable.Api(emu.api_key, endpoint_url=emu.url).table(BASE_ID, JOBS)
        return [table.create({"Run ID": f"{n}-{i}", "Posts Processed": i})["id"] for i in range(PER_THREAD)]

    with ThreadPoolExecutor(THREADS) as pool:
        ids = [rid for chunk in pool.map(worker, range(THREADS)) for rid in chunk]
    held = emu.records(BASE_ID, JOBS)
    assert len(ids) == len(set(ids)) == THREADS * PER_THREAD
    assert sorted(r["id"] for r in held) == sorted(ids)
    assert {r["fields"]["Run ID"] for r in held} == {f"{n}-{i}" for n in range(THREADS) for i in range(PER_THREAD)}
    assert all(r.status == 200 for r in emu.requests)


def test_concurrent_upserts_of_one_key_make_one_record(emu: AirtableEmulator) -> None:
    def worker(n: int) -> None:
        table = pyairtable.Api(emu.api_key, endpoint_url=emu.url).table(BASE_ID, JOBS)
        for i in range(10):
            table.batch_upsert([{"fields": {"Run ID": "shared", "Progress": f"{n}/{i}"}}], ["Run ID"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    assert [r["fields"]["Run ID"] for r in emu.records(BASE_ID, JOBS)] == ["shared"]
