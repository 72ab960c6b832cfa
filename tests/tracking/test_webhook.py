"""The webhook flow end to end: real pyairtable over HTTP against the emulator, the handler in another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobtrace
from jobtrace import tracking

from .conftest import BASE_ID, forget

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
import webhook  # noqa: E402  (examples/webhook.py)


def records(emulator: Any, table: str) -> list[dict[str, Any]]:
    return [r["fields"] for r in emulator.records(BASE_ID, table)]


@pytest.fixture
def server() -> Iterator[str]:
    srv = webhook.serve()
    yield f"http://127.0.0.1:{srv.server_port}/webhooks/apify"
    srv.shutdown()


def run_handler_in_another_process(emulator: Any, tmp_path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """The webhook served by a different process: no run context, nothing in memory, only Airtable."""
    # Two processes each keep under 5 requests/s on their own, not together; the
    # rate limit is not what this test is about (a 429 would cost the child 30 s).
    emulator.rate_limit = False
    code = (
        "import json, sys, jobtrace, webhook\n"
        "jobtrace.configure_from_env(strict=True)\n"
        "record = webhook.handle_apify_webhook(json.loads(sys.argv[1]))\n"
        "assert jobtrace.flush(20)\n"
        "print(json.dumps(record))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBTRACE_", "AIRTABLE_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "examples")]),
        AIRTABLE_API_KEY=emulator.api_key,
        AIRTABLE_BASE_ID=BASE_ID,
        AIRTABLE_ENDPOINT_URL=emulator.url,
        JOBTRACE_JOURNAL=str(tmp_path / "child-journal.sqlite3"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(payload)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert emulator.api_key not in proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_webhook_flow_over_http_writes_one_record_each(emulator: Any, airtable: Any, server: str) -> None:
    run_id = webhook.run_flow(server)
    assert jobtrace.flush(20)
    [job] = records(emulator, "Job Tracking")
    [client] = records(emulator, "Client Run Results")
    assert (job["Run ID"], job["Status"], job["Job Type"]) == (run_id, "Completed", "post-harvesting")
    assert (job["Clients Processed"], job["Posts Processed"]) == (1, 57)
    assert client["Run ID"] == f"{run_id}-Guy-Wilson"
    assert (client["Total Posts Harvested"], client["Apify Run ID"]) == (57, "apify-run-8f3k2")
    assert (client["Status"], client["Posts Processed"], client["Token Usage"]) == ("Completed", 57, 42_000)
    assert "apify-run-8f3k2 finished" in client["System Notes"]


def test_webhook_in_another_process_updates_without_completing_then_the_job_completes(
    emulator: Any, airtable: Any, tmp_path: Path
) -> None:
    run_id = tracking.generate_run_id()
    tracking.create_job_tracking_record(run_id, "post-harvesting")
    tracking.create_client_run_record(run_id, "O'Brien")
    assert jobtrace.flush(20)
    payload = jobtrace.extract({"jobtrace-run-id": run_id, "jobtrace-client-id": "O'Brien"})
    carrier = {"jobtrace-run-id": payload.run_id, "jobtrace-client-id": payload.client_id}

    answered = run_handler_in_another_process(
        emulator, tmp_path, {**carrier, "resource": {"id": "apify-1", "postsHarvested": 31}}
    )

    assert (answered["Status"], answered["Total Posts Harvested"]) == ("Running", 31)
    [client] = records(emulator, "Client Run Results")
    assert (client["Status"], client["Apify Run ID"], client["Total Posts Harvested"]) == ("Running", "apify-1", 31)
    assert "End Time" not in client
    assert client["Start Time"]  # kept from the creation, not rewritten

    tracking.complete_client_run_record(run_id, "O'Brien", "completed", {"posts_processed": 31})
    tracking.complete_job_tracking_record(run_id)
    assert jobtrace.flush(20)
    [client] = records(emulator, "Client Run Results")
    [job] = records(emulator, "Job Tracking")
    assert (client["Status"], client["Apify Run ID"], client["Posts Processed"]) == ("Completed", "apify-1", 31)
    assert (job["Status"], job["Clients Processed"]) == ("Completed", 1)


def test_webhook_for_a_run_airtable_does_not_know_creates_it_once(emulator: Any, airtable: Any, tmp_path: Path) -> None:
    carrier = {"jobtrace-run-id": "251005-210247", "jobtrace-client-id": "acme"}
    payload = {**carrier, "resource": {"id": "apify-2", "postsHarvested": 5}}
    threads = [threading.Thread(target=webhook.handle_apify_webhook, args=(payload,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert jobtrace.flush(20)
    forget()  # and again from "another process"
    webhook.handle_apify_webhook(payload)
    assert jobtrace.flush(20)
    [client] = records(emulator, "Client Run Results")
    assert (client["Run ID"], client["Status"], client["Apify Run ID"]) == ("251005-210247-acme", "Running", "apify-2")


@pytest.mark.parametrize(
    "payload",
    [
        {"jobtrace-run-id": "not-a-run", "jobtrace-client-id": "acme"},
        {"jobtrace-run-id": "251005-210247"},
        {"resource": {}},
    ],
)
def test_webhook_with_a_bad_payload_answers_400_and_writes_nothing(
    emulator: Any, airtable: Any, server: str, payload: dict[str, Any]
) -> None:
    status, answer = webhook.post(server, payload)
    assert status == 400
    assert "run" in answer["error"]
    assert jobtrace.flush(20)
    assert records(emulator, "Client Run Results") == []
