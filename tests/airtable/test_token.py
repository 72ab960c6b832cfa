"""Item 6: the token is stripped, refused at construction when no header can carry it, and never in error text."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jobtrace
from jobtrace import tracking
from jobtrace.changes import Change
from jobtrace.sinks import AirtableSink, Sink
from jobtrace.sinks.airtable import replay
from jobtrace.testing import AirtableEmulator

from .conftest import BASE_ID, CLIENTS, JOBS, sink_options

token_part = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=30)
unsendable = st.sampled_from(["\n", "\r", "\x00", "\t", " ", "\x7f", "é", "\u2028", "\ud83d"])


@settings(max_examples=60, deadline=None)
@given(head=token_part, bad=unsendable, tail=token_part)
def test_a_token_no_header_can_carry_fails_at_construction_without_showing_it(head: str, bad: str, tail: str) -> None:
    token = head + bad + tail
    attempts = [
        lambda: AirtableSink(token, BASE_ID, check_schema=False),
        lambda: AirtableSink.from_env({"AIRTABLE_API_KEY": token, "AIRTABLE_BASE_ID": BASE_ID}),
        lambda: replay(token, BASE_ID, journal_path=":memory:", timeout=0.1),
    ]
    for attempt in attempts:
        with pytest.raises(jobtrace.ConfigurationError, match="can never be sent in an HTTP header") as caught:
            attempt()
        message = str(caught.value)
        assert head not in message and tail not in message


def _options(emulator: AirtableEmulator, journal: Path) -> dict[str, Any]:
    return {k: v for k, v in sink_options(emulator, journal).items() if k not in ("endpoint_url", "journal_path")}


class _EchoingSink(Sink):
    """A user's own sink whose client library quotes the request headers in its errors (as requests does)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def write(self, change: Change) -> None:
        raise RuntimeError(f"Invalid header value b'Bearer {self._token}' for run {change.run_id}")

    def read(self, kind: str, run_id: str, client_id: str | None) -> Mapping[str, Any] | None:
        raise RuntimeError(f"read refused: Authorization: Bearer {self._token}")


def test_a_token_with_a_trailing_newline_works_and_no_error_text_anywhere_carries_it(
    emulator: AirtableEmulator, journal_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, requests/urllib3 included
    token = emulator.api_key
    env = {
        "AIRTABLE_API_KEY": f"  {token}\n",  # as read from a secret file
        "AIRTABLE_BASE_ID": f"{BASE_ID}\n",
        "AIRTABLE_ENDPOINT_URL": emulator.url,
        "JOBTRACE_JOURNAL": str(journal_path),
    }
    sink = AirtableSink.from_env(env, **_options(emulator, journal_path))
    direct = AirtableSink(f"{token}\r\n", BASE_ID, endpoint_url=emulator.url, **_options(emulator, journal_path))
    echoing = _EchoingSink(token)
    texts: list[str] = []
    previous = jobtrace.configure([sink, direct, echoing])
    try:
        with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme") as client:
            client.incr(posts_processed=3)
        assert jobtrace.flush(20)
        texts.append(str(jobtrace.diagnostics()))
        emulator.set_down(True)  # errors of every kind now: writes, reads
        with jobtrace.tracked_job("while-down"), jobtrace.client_run("globex") as other:
            other.incr(posts_processed=1)
        with pytest.raises(jobtrace.RecordUnavailableError) as unavailable:
            tracking.update_job_tracking_record(job.run_id, {"progress": "x"})
        texts += [str(unavailable.value), repr(unavailable.value)]
        assert not jobtrace.flush(1.0)
        texts.append(str(jobtrace.diagnostics()))
        jobtrace.configure([echoing], strict=True)
        with pytest.raises(jobtrace.SinkError) as strict_error, jobtrace.tracked_job("strict"):
            pass
        texts += [str(strict_error.value), repr(strict_error.value), repr(strict_error.value.__cause__)]
        emulator.set_down(False)
    finally:
        jobtrace.restore(previous)
        sink.close(5)
        direct.close(5)
    texts += [caplog.text, str(sink.diagnostics()), str(direct.diagnostics()), repr(sink), repr(direct)]
    assert "Bearer [redacted]" in caplog.text  # the echoing sink's errors were logged, redacted
    for text in texts:
        assert token not in text
    for path in journal_path.parent.iterdir():
        assert token.encode() not in path.read_bytes()
    # And the stripped token did its work: both sinks delivered.
    record = next(r for r in emulator.records(BASE_ID, JOBS) if r["fields"]["Run ID"] == job.run_id)
    assert record["fields"]["Status"] == "Completed"
    client_record = next(r for r in emulator.records(BASE_ID, CLIENTS) if r["fields"]["Client ID"] == "acme")
    assert client_record["fields"]["Posts Processed"] == 3
