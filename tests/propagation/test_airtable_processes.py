"""The seed's client-by-client flow against the emulator: one child process per client, one run, one job record."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobtrace
from jobtrace.schema import default_base_metadata

BASE_ID = "appPropagation001"
ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys, jobtrace
    jobtrace.configure_from_env(strict=True)

    @jobtrace.tracked_job("score-one-client")
    def main(client_id, posts):
        with jobtrace.client_run(client_id) as client:
            client.incr(posts_processed=posts, token_usage=posts * 100)
            if posts == 0:
                raise RuntimeError("no posts to score")

    try:
        main(sys.argv[1], int(sys.argv[2]))
    except RuntimeError:
        sys.exit(3)
    """
)


@pytest.fixture
def emulator() -> Iterator[Any]:
    from jobtrace.testing import AirtableEmulator

    # Parent and children each keep under 5 requests/s, not together; the rate
    # limit is not what these tests are about.
    with AirtableEmulator(bases={BASE_ID: default_base_metadata()}, rate_limit=False) as emu:
        yield emu


@pytest.fixture
def airtable(emulator: Any, tmp_path: Path) -> Iterator[Any]:
    from jobtrace.sinks import AirtableSink

    sink = AirtableSink(emulator.api_key, BASE_ID, endpoint_url=emulator.url, journal_path=tmp_path / "parent.sqlite3")
    prev = jobtrace.configure([sink], strict=True)
    yield sink
    jobtrace.flush(10)
    sink.close(5)
    jobtrace.restore(prev)


def spawn(emulator: Any, tmp_path: Path, client_id: str, posts: int) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBTRACE_", "AIRTABLE_"))}
    env.update(
        jobtrace.child_env(),
        PYTHONPATH=str(ROOT),
        AIRTABLE_API_KEY=emulator.api_key,
        AIRTABLE_BASE_ID=BASE_ID,
        AIRTABLE_ENDPOINT_URL=emulator.url,
        JOBTRACE_JOURNAL=str(tmp_path / f"child-{client_id}.sqlite3"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, client_id, str(posts)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode in (0, 3), proc.stderr
    return proc.returncode


def test_client_by_client_children_share_the_run_and_the_parent_rolls_them_up(
    emulator: Any, airtable: Any, tmp_path: Path
) -> None:
    clients = {"acme": 5, "globex": 7, "initech": 0}
    with jobtrace.tracked_job("smart-resume-client-by-client") as job:
        for client_id, posts in clients.items():
            spawn(emulator, tmp_path, client_id, posts)
            jobtrace.collect(client_id)
    assert jobtrace.flush(20)

    jobs = [r["fields"] for r in emulator.records(BASE_ID, "Job Tracking")]
    assert len(jobs) == 1, "the children must not create job records of their own"
    [record] = jobs
    assert (record["Run ID"], record["Job Type"]) == (job.run_id, "smart-resume-client-by-client")
    assert (record["Clients Processed"], record["Clients Succeeded"], record["Clients Failed"]) == (3, 2, 1)
    assert (record["Posts Processed"], record["Token Usage"]) == (12, 1200)
    assert record["Status"] == "Completed with Errors"

    by_client = {r["fields"]["Client ID"]: r["fields"] for r in emulator.records(BASE_ID, "Client Run Results")}
    assert {c: f["Run ID"] for c, f in by_client.items()} == {c: f"{job.run_id}-{c}" for c in clients}
    assert {c: f["Status"] for c, f in by_client.items()} == {
        "acme": "Completed",
        "globex": "Completed",
        "initech": "Failed",
    }
