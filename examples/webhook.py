"""A webhook that reports on a client run another step started (the seed's Apify route).

The flow, as in the seed's ``apifyWebhookRoutes.js``:

1. a job starts a client run and an external scraper for it, registering a
   webhook whose payload carries the run ID and client ID (``jobtrace.inject``);
2. the scraper finishes and calls the webhook: the handler updates that client
   run (posts harvested -> ``Total Posts Harvested``, the scraper's run ID ->
   ``Apify Run ID``) without completing it; it may run in another process, with
   no run context at all;
3. a later step scores the harvested posts and completes the client run.

``handle_apify_webhook`` is the handler (a plain function); ``serve`` puts it
behind ``http.server``. Run ``python examples/webhook.py``: with
``AIRTABLE_API_KEY``/``AIRTABLE_BASE_ID`` set it writes to that base; otherwise
it starts the local Airtable emulator and prints the records it ended with.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jobtrace
from jobtrace import tracking


def handle_apify_webhook(payload: dict[str, Any]) -> dict[str, Any]:
    """Record what the scraper reported on the client run named in ``payload``; return the record.

    ``payload`` holds ``jobtrace-run-id`` and ``jobtrace-client-id`` (written by
    ``jobtrace.inject`` when the webhook was registered) and the scraper's
    ``resource`` (``id``, ``postsHarvested``). A malformed run ID or client ID
    raises ``ValueError`` (a ``jobtrace.JobtraceError``): answer 400.
    """
    run = jobtrace.extract(payload)
    if run.run_id is None or run.client_id is None:
        raise jobtrace.InvalidValueError("the payload names no run: expected jobtrace-run-id and jobtrace-client-id")
    resource = payload.get("resource") or {}
    return tracking.update_client_run_record(
        run.run_id,
        run.client_id,
        {
            "Total Posts Harvested": resource.get("postsHarvested", 0),
            "Apify Run ID": resource.get("id"),
            "notes": f"Apify run {resource.get('id')} finished",
        },
    )


class WebhookHandler(BaseHTTPRequestHandler):
    """``POST /webhooks/apify`` with a JSON payload -> ``handle_apify_webhook``."""

    def do_POST(self) -> None:
        if self.path != "/webhooks/apify":
            self._answer(404, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"{}")
            record = handle_apify_webhook(payload)
        except (ValueError, jobtrace.JobtraceError) as exc:
            self._answer(400, {"error": str(exc)})
            return
        self._answer(200, {"ok": True, "record": record})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the example prints what matters."""


def serve(port: int = 0) -> ThreadingHTTPServer:
    """Start the webhook server on 127.0.0.1 in a background thread; ``server.server_port`` is its port."""
    server = ThreadingHTTPServer(("127.0.0.1", port), WebhookHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def post(url: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST ``payload`` as JSON (what the scraper does); return the status and the JSON answer."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def run_flow(webhook_url: str, client_id: str = "Guy-Wilson") -> str:
    """The three steps against the configured sinks; returns the run ID."""
    # 1. The job starts the client's run and the scraper, handing over the run in the payload.
    run_id = tracking.generate_run_id()
    tracking.create_job_tracking_record(run_id, "post-harvesting", {"notes": "Started harvesting"})
    tracking.create_client_run_record(run_id, client_id)
    payload = {"jobtrace-run-id": run_id, "jobtrace-client-id": client_id}
    # 2. The scraper finishes and calls back (over HTTP, with no run context).
    payload["resource"] = {"id": "apify-run-8f3k2", "postsHarvested": 57}
    status, answer = post(webhook_url, payload)
    if status != 200:
        raise RuntimeError(f"webhook answered {status}: {answer}")
    # 3. A later step scores the harvested posts and completes the client run, then the job.
    tracking.update_client_run_record(run_id, client_id, {"postsProcessed": 57, "tokenUsage": 42_000})
    tracking.complete_client_run_record(run_id, client_id, "completed")
    tracking.complete_job_tracking_record(run_id, "completed")
    return run_id


def main() -> None:
    from jobtrace.schema import default_base_metadata
    from jobtrace.sinks import AirtableSink
    from jobtrace.testing import AirtableEmulator

    emulator = None
    if os.environ.get("AIRTABLE_API_KEY") and os.environ.get("AIRTABLE_BASE_ID"):
        sink = AirtableSink.from_env()
    else:
        base_id = "appWebhookExample"
        emulator = AirtableEmulator(bases={base_id: default_base_metadata()}).start()
        sink = AirtableSink(emulator.api_key, base_id, endpoint_url=emulator.url, journal_path=":memory:")
    jobtrace.configure([sink])
    server = serve()
    try:
        run_id = run_flow(f"http://127.0.0.1:{server.server_port}/webhooks/apify")
        jobtrace.flush(30)
        if emulator is not None:
            for table in ("Job Tracking", "Client Run Results"):
                for record in emulator.records(sink.base_id, table):
                    if str(record["fields"].get("Run ID", "")).startswith(run_id):
                        print(table, json.dumps(record["fields"], indent=2, sort_keys=True))
    finally:
        server.shutdown()
        jobtrace.shutdown()
        if emulator is not None:
            emulator.stop()


if __name__ == "__main__":
    main()
