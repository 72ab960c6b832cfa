"""Item 4: text that UTF-8 cannot carry is refused in IDs, made safe in notes and values, never breaks the journal."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jobtrace
from jobtrace import tracking
from jobtrace.delivery.journal import Journal
from jobtrace.sinks import MemorySink
from jobtrace.sinks.airtable import replay
from jobtrace.testing import AirtableEmulator
from jobtrace.values import safe_text

from .conftest import BASE_ID, JOBS, PENALTY, SinkFactory, fields_by_client

surrogate = st.integers(0xD800, 0xDFFF).map(chr)
plain = st.text(max_size=20)
with_surrogate = st.builds(lambda a, s, b: a + s + b, plain, surrogate, plain)


@settings(max_examples=50, deadline=None)
@given(client_id=with_surrogate)
def test_a_client_id_with_a_lone_surrogate_is_refused_at_every_entry(client_id: str) -> None:
    sink = MemorySink()
    previous = jobtrace.configure([sink], strict=True)
    try:
        with jobtrace.tracked_job("post-scoring") as job:
            with pytest.raises(jobtrace.InvalidClientIdError), jobtrace.client_run(client_id):
                pytest.fail("must not start")
            with pytest.raises(jobtrace.InvalidClientIdError):
                tracking.update_client_run_record(job.run_id, client_id, {"progress": "x"})
            with pytest.raises(jobtrace.InvalidClientIdError):
                jobtrace.client_run_id(job.run_id, client_id)
            with pytest.raises(jobtrace.InvalidRunIdError):
                jobtrace.parse_run_id(f"{job.run_id}-{client_id}")
        assert sink.client_records() == []
    finally:
        jobtrace.restore(previous)


@settings(max_examples=30, deadline=None)
@given(job_type=with_surrogate)
def test_a_job_type_with_a_lone_surrogate_is_refused(job_type: str) -> None:
    with pytest.raises(jobtrace.InvalidValueError, match="surrogate"):
        jobtrace.tracked_job(job_type)
    with pytest.raises(jobtrace.InvalidValueError, match="surrogate"):
        tracking.create_job_tracking_record("251005-210247", job_type)


@settings(max_examples=200)
@given(text=st.one_of(with_surrogate, st.text()))
def test_safe_text_always_encodes_and_keeps_text_that_already_did(text: str) -> None:
    made = safe_text(text)
    made.encode("utf-8")  # never raises
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        assert "\ufffd" in made or len(made) < len(text)  # a pair joined into one character
    else:
        assert made == text


def test_notes_values_and_errors_with_lone_surrogates_are_journaled_while_airtable_is_down_then_delivered(
    emulator: AirtableEmulator, make_sink: SinkFactory, journal_path: Path
) -> None:
    scraped = "caption \ud83d cut, emoji \ud83d\ude00 whole"
    sink = make_sink()
    previous = jobtrace.configure([sink], strict=True)
    emulator.set_down(True)
    try:
        with jobtrace.tracked_job("post-scoring") as job:
            job.note(scraped)
            for i in range(20):
                try:
                    with jobtrace.client_run(f"client-{i:02d}", name=f"Client \udc00{i}") as client:
                        client.note(scraped)
                        client.update(progress=scraped)
                        if i == 3:
                            raise RuntimeError(scraped)
                except RuntimeError:
                    pass
        assert not jobtrace.flush(1.0)
    finally:
        jobtrace.restore(previous)
        sink.close(0.5)
    store = Journal(journal_path)
    try:
        pending, _ = store.counts(BASE_ID)
    finally:
        store.close()
    assert pending == 21  # every record journaled, none lost to an encoding error
    emulator.set_down(False)
    result = replay(
        emulator.api_key,
        BASE_ID,
        journal_path=journal_path,
        endpoint_url=emulator.url,
        timeout=30,
        rate_limit_penalty=PENALTY,
        backoff_initial=0.05,
        backoff_max=0.5,
    )
    assert (result.delivered, result.remaining, result.undeliverable) == (21, 0, 0), result
    expected = "caption \ufffd cut, emoji \U0001f600 whole"
    (job_record,) = emulator.records(BASE_ID, JOBS)
    assert expected in job_record["fields"]["System Notes"]
    clients = fields_by_client(emulator)
    assert len(clients) == 20
    assert clients["client-00"]["Progress"] == expected
    assert clients["client-00"]["Client Name"] == "Client \ufffd0"
    assert expected in clients["client-03"]["Errors"]
    assert clients["client-03"]["Status"] == "Failed"


def test_reading_back_a_record_by_an_id_utf8_cannot_carry_is_a_sink_error(make_sink: SinkFactory) -> None:
    sink = make_sink()
    sink.start(jobtrace.Schema.default())
    with pytest.raises(jobtrace.SinkError, match="could not read run 251005-210247"):
        sink.read("client", "251005-210247", "acme\ud83d")
