"""Scale: a thousand concurrent client runs under one job keep exact records and roll-ups."""

from __future__ import annotations

import asyncio

import jobtrace
from jobtrace.sinks import MemorySink

from .helpers import only

N_CLIENTS = 1_000


async def test_a_thousand_concurrent_client_runs_under_one_job_are_exact(sink: MemorySink) -> None:
    all_open = asyncio.Event()
    open_count = 0

    async def client_work(i: int) -> None:
        nonlocal open_count
        async with jobtrace.client_run(f"client-{i:04d}", name=f"Client {i}") as client:
            open_count += 1
            if open_count == N_CLIENTS:
                all_open.set()
            await all_open.wait()  # every client run is open at the same time
            for _ in range(i % 5 + 1):
                jobtrace.incr(posts_processed=1)
                await asyncio.sleep(0)
            client.incr(token_usage=10 * i)
            assert jobtrace.current_client_id() == f"client-{i:04d}"
            if i % 10 == 3:
                raise RuntimeError(f"client {i} failed")

    @jobtrace.tracked_job("post-scoring")
    async def job() -> str | None:
        results = await asyncio.gather(*(client_work(i) for i in range(N_CLIENTS)), return_exceptions=True)
        assert sum(isinstance(r, RuntimeError) for r in results) == N_CLIENTS // 10
        return jobtrace.current_run_id()

    run_id = await job()

    record = only(sink.job_records())
    failed = {i for i in range(N_CLIENTS) if i % 10 == 3}
    assert record["Run ID"] == run_id
    assert record["Status"] == "Completed with Errors"
    assert record["Clients Processed"] == N_CLIENTS
    assert record["Clients Failed"] == len(failed)
    assert record["Clients Succeeded"] == N_CLIENTS - len(failed)
    assert record["Posts Processed"] == sum(i % 5 + 1 for i in range(N_CLIENTS))
    assert record["Token Usage"] == sum(10 * i for i in range(N_CLIENTS))
    assert record["Last Client Processed"].startswith("client-")

    clients = sink.client_records()
    assert len(clients) == N_CLIENTS
    by_id = {r["Client ID"]: r for r in clients}
    assert len(by_id) == N_CLIENTS
    for i in range(N_CLIENTS):
        r = by_id[f"client-{i:04d}"]
        assert r["Run ID"] == f"{run_id}-client-{i:04d}"
        assert r["Client Name"] == f"Client {i}"
        assert r["Posts Processed"] == i % 5 + 1
        assert r.get("Token Usage", 0) == 10 * i
        if i in failed:
            assert r["Status"] == "Failed"
            assert r["Errors"] == f"RuntimeError: client {i} failed"
        else:
            assert r["Status"] == "Completed"
        assert "End Time" in r
