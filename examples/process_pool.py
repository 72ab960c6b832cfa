"""Fan a job out to a process pool, every client run under the job's one run ID.

A worker process starts with no run: the job hands its run over explicitly,
with ``jobtrace.inject`` into a dict that travels with each task, and the
worker enters it with ``jobtrace.extract``. The worker owns the client run (it
creates and completes its record); the job's process owns the job record and
counts each finished client run into its roll-ups with ``jobtrace.collect``.

Workers configure their own sinks (the pool's ``initializer``). With the
Airtable sink, ``collect(client_id)`` reads the worker's record back; here the
workers use a MemorySink, so each task returns its record and the parent
collects that.

Run: ``python examples/process_pool.py``
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import jobtrace
from jobtrace.sinks import MemorySink

CLIENTS = {"acme": 1, "globex": 2, "initech": 3, "umbrella": 4}


def init_worker() -> None:
    """Configure the worker's sinks (in production: ``[AirtableSink.from_env()]``)."""
    jobtrace.configure([MemorySink()])


def score_client(carrier: dict[str, str], client_id: str, posts: int) -> tuple[str | None, dict[str, Any]]:
    """One client's work, in a worker process, inside the job's run."""
    with jobtrace.extract(carrier), jobtrace.client_run(client_id) as client:
        for _ in range(posts):
            client.incr(posts_processed=1, token_usage=100)
        run_id = jobtrace.current_run_id()
    return run_id, client.fields()


def main() -> None:
    sink = MemorySink()
    jobtrace.configure([sink])
    # "spawn": a forked worker would inherit a copy of the parent's live run
    # and sinks (without their background threads); a fresh process is clean.
    ctx = multiprocessing.get_context("spawn")
    with jobtrace.tracked_job("post-scoring") as job:
        carrier = jobtrace.inject({})
        with ProcessPoolExecutor(2, mp_context=ctx, initializer=init_worker) as pool:
            futures = {cid: pool.submit(score_client, carrier, cid, posts) for cid, posts in CLIENTS.items()}
            results = {cid: f.result() for cid, f in futures.items()}
        for client_id, (_, record) in results.items():
            jobtrace.collect(client_id, record=record)

    [record] = sink.job_records()
    statuses = {r["Status"] for _, r in results.values()}
    print(f"run: {job.run_id}")
    print(f"worker run IDs: {','.join(sorted({run_id or '' for run_id, _ in results.values()}))}")
    print(f"clients: {len(results)} {','.join(sorted(statuses))}")
    print(
        f"job: {record['Status']}, Clients Processed {record['Clients Processed']}, "
        f"Posts Processed {record['Posts Processed']}"
    )


if __name__ == "__main__":
    main()
