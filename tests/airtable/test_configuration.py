"""Configuration: the schema check, from_env/configure_from_env, formula safety, the token kept secret."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import jobtrace
from jobtrace.changes import CLIENT, JOB
from jobtrace.process_state import state
from jobtrace.schema import Schema
from jobtrace.sinks import AirtableSink, LogSink
from jobtrace.sinks.airtable import check_base, make_api
from jobtrace.testing import AirtableEmulator, Fault

from .conftest import BASE_ID, CLIENTS, JOBS, SinkFactory, base_without, sink_options, table


def _drop_progress(meta: dict[str, Any]) -> None:
    job = table(meta, JOBS)
    job["fields"] = [f for f in job["fields"] if f["name"] != "Progress"]


def _computed_clients_processed(meta: dict[str, Any]) -> None:
    field = next(f for f in table(meta, JOBS)["fields"] if f["name"] == "Clients Processed")
    field["type"] = "formula"
    field["options"] = {"formula": "1", "isValid": True, "referencedFieldIds": [], "result": {"type": "number"}}


def _no_interrupted(meta: dict[str, Any]) -> None:
    field = next(f for f in table(meta, CLIENTS)["fields"] if f["name"] == "Status")
    field["options"]["choices"] = [c for c in field["options"]["choices"] if c["name"] != "Interrupted"]


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (_drop_progress, ["'Job Tracking'.'Progress'", "missing from the table", "add a singleLineText field"]),
        (_computed_clients_processed, ["'Job Tracking'.'Clients Processed'", "computed in the base (formula)", "map"]),
        (_no_interrupted, ["'Client Run Results'.'Status'", "'Interrupted'", "add 'Interrupted' to the options"]),
    ],
    ids=["missing-field", "computed-field", "missing-status-choice"],
)
def test_a_base_that_does_not_fit_the_mapping_is_refused_at_configuration(
    emulator: AirtableEmulator,
    make_sink: SinkFactory,
    broken: Callable[[dict[str, Any]], None],
    expected: list[str],
) -> None:
    emulator.add_base(BASE_ID, base_without(broken))
    sink = make_sink()
    with pytest.raises(jobtrace.ConfigurationError) as caught:
        jobtrace.configure([sink])
    message = str(caught.value)
    for text in expected:
        assert text in message
    assert BASE_ID in message
    problems = check_base(make_api(emulator.api_key, emulator.url), BASE_ID, Schema.default())
    assert [p.severity for p in problems] == ["error"]


def test_the_default_base_passes_the_check(emulator: AirtableEmulator) -> None:
    assert check_base(make_api(emulator.api_key, emulator.url), BASE_ID, Schema.default()) == []


def test_without_the_metadata_api_the_sink_warns_and_uses_the_configured_schema(
    emulator: AirtableEmulator, make_sink: SinkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # A token without schema.bases:read: the metadata API answers 403, the records are readable.
    emulator.inject(Fault.FORBIDDEN, count=None, path_contains="/v0/meta/")
    sink = make_sink()
    with caplog.at_level(logging.WARNING, logger="jobtrace"):
        sink.start(Schema.default())
    assert "not available to this token (HTTP 403)" in caplog.text
    assert "schema.bases:read" in caplog.text
    assert [p.severity for p in sink.problems] == ["warning"]


def test_a_refused_token_is_a_configuration_error(emulator: AirtableEmulator, journal_path: Path) -> None:
    sink = AirtableSink("patWRONGtoken", BASE_ID, **sink_options(emulator, journal_path))
    with pytest.raises(jobtrace.ConfigurationError, match="refused the API token"):
        sink.start(Schema.default())
    assert "patWRONGtoken" not in repr(sink)


@pytest.mark.parametrize("client_id", ['O\'Brien \\ "x"', "x' OR TRUE() OR '"])
def test_reading_a_client_record_matches_only_that_client(
    emulator: AirtableEmulator, tracked: AirtableSink, client_id: str
) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        for other in ["a", "b", "O'Brien", "x"]:
            with jobtrace.client_run(other) as client:
                client.incr(posts_processed=1)
    assert jobtrace.flush(30)
    assert tracked.read(CLIENT, job.run_id, client_id) is None  # no other client's record leaks in

    with jobtrace.client_run(client_id, run_id=job.run_id) as client:
        client.incr(posts_processed=7)
    assert jobtrace.flush(30)
    found = tracked.read(CLIENT, job.run_id, client_id)
    assert found is not None
    assert (found["Client ID"], found["Posts Processed"]) == (client_id, 7)
    assert len(emulator.records(BASE_ID, CLIENTS)) == 5
    assert tracked.read(JOB, job.run_id, None)["Status"] == "Completed"  # type: ignore[index]


def test_read_merges_changes_not_yet_delivered(emulator: AirtableEmulator, tracked: AirtableSink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        job.update(progress="first")
        assert jobtrace.flush(30)
        emulator.inject("503", count=None, method="PATCH")
        job.update(progress="second")
        found = tracked.read(JOB, job.run_id, None)
        assert found is not None
        assert (found["Progress"], found["Status"]) == ("second", "Running")
        emulator.clear_faults()
    assert jobtrace.flush(30)


def test_the_token_never_shows_in_logs_reprs_errors_or_the_journal(
    emulator: AirtableEmulator, make_sink: SinkFactory, journal_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # requests/urllib3 debug lines included
    sink = make_sink()
    previous = jobtrace.configure([sink])
    try:
        emulator.inject("503", count=3, method="PATCH")
        emulator.inject("429", count=1, method="PATCH")
        with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("c1") as client:
            client.incr(posts_processed=1)
        assert jobtrace.flush(30)
        emulator.stop()
        with pytest.raises(jobtrace.SinkError) as caught:
            sink.read(JOB, job.run_id, None)
        emulator.start()
    finally:
        jobtrace.restore(previous)
        sink.close(1)
    key = emulator.api_key
    assert "retrying in" in caplog.text and "rate limit hit" in caplog.text  # the failures were logged
    assert "Authorization" not in caplog.text
    assert key not in caplog.text
    assert key not in repr(sink) and key not in str(sink.diagnostics())
    assert key not in str(caught.value) and key not in repr(caught.value)
    for path in journal_path.parent.iterdir():
        assert key.encode() not in path.read_bytes()


def test_configure_from_env_picks_airtable_when_configured_and_the_log_sink_otherwise(
    emulator: AirtableEmulator, journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRTABLE_API_KEY", raising=False)
    monkeypatch.delenv("AIRTABLE_BASE_ID", raising=False)
    previous = jobtrace.configure_from_env()
    try:
        assert [type(s) for s in jobtrace.tracker.get_config().sinks] == [LogSink]
        monkeypatch.setenv("AIRTABLE_API_KEY", emulator.api_key)
        monkeypatch.setenv("AIRTABLE_BASE_ID", BASE_ID)
        monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", emulator.url)
        monkeypatch.setenv("JOBTRACE_JOURNAL", str(journal_path))
        jobtrace.configure_from_env(strict=True)
        (sink,) = jobtrace.tracker.get_config().sinks
        assert isinstance(sink, AirtableSink)
        assert repr(sink) == f"<AirtableSink base={BASE_ID} endpoint={emulator.url}>"
        with jobtrace.tracked_job("from-env"):
            pass
        assert jobtrace.flush(30)
        assert sink.journal_path == str(journal_path)
        sink.close(1)
    finally:
        jobtrace.restore(previous)
    assert [r["fields"]["Status"] for r in emulator.records(BASE_ID, JOBS)] == ["Completed"]


def test_from_env_names_what_is_missing() -> None:
    with pytest.raises(jobtrace.ConfigurationError, match="AIRTABLE_BASE_ID"):
        AirtableSink.from_env({"AIRTABLE_API_KEY": "patX"})


@pytest.mark.parametrize(
    ("given", "missing"), [("AIRTABLE_API_KEY", "AIRTABLE_BASE_ID"), ("AIRTABLE_BASE_ID", "AIRTABLE_API_KEY")]
)
def test_configure_from_env_with_only_one_of_key_and_base_names_the_missing_one(
    monkeypatch: pytest.MonkeyPatch, given: str, missing: str
) -> None:
    values = {"AIRTABLE_API_KEY": "patSecretValue123", "AIRTABLE_BASE_ID": BASE_ID}
    monkeypatch.setenv(given, values[given])
    monkeypatch.setenv(missing, "  \n")  # blank counts as unset
    before = state.config
    with pytest.raises(jobtrace.ConfigurationError, match=f"{given} is set but {missing} is not") as caught:
        jobtrace.configure_from_env()
    assert "patSecretValue123" not in str(caught.value)
    assert state.config is before  # nothing was configured


def test_a_sink_for_a_well_formed_but_unknown_base_is_refused_at_configuration(
    emulator: AirtableEmulator, make_sink: SinkFactory
) -> None:
    sink = make_sink(base_id="appNoSuchBase0001")
    with pytest.raises(jobtrace.ConfigurationError, match="base appNoSuchBase0001 was not found"):
        sink.start(Schema.default())


def test_an_endpoint_url_ending_in_v0_is_refused_at_construction(emulator: AirtableEmulator) -> None:
    with pytest.raises(jobtrace.ConfigurationError, match="ends in /v0"):
        AirtableSink(emulator.api_key, BASE_ID, endpoint_url=emulator.url + "/v0", check_schema=False)
