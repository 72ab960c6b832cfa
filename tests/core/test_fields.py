"""Field mapping: logical names, computed fields, unknown names, the default and a user's schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import jobtrace
from jobtrace import ComputedFieldError, Schema, UnknownFieldError
from jobtrace.sinks import MemorySink

from .helpers import RecordingSink, only

FIXTURE = Path(__file__).parent.parent / "fixtures" / "reference-base.json"
COMPUTED_TYPES = {"formula", "rollup", "count", "lookup", "multipleLookupValues", "createdTime", "lastModifiedTime"}


def reference_tables() -> dict[str, dict[str, str]]:
    """Table name -> {field name: field type} of the production base."""
    meta = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return {t["name"]: {f["name"]: f["type"] for f in t["fields"]} for t in meta["tables"]}


def test_logical_names_map_to_airtable_field_names(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme") as client:
        client.update(
            posts_processed=42,
            profiles_examined_for_scoring=7,
            apify_run_id="run-1",
            apify_api_costs=1.25,
            progress="half",
        )
        client.incr(token_usage=1500, total_posts_harvested=3)
        job.update(progress="50% complete")
    record = only(sink.client_records())
    assert record["Posts Processed"] == 42
    assert record["Profiles Examined for Scoring"] == 7
    assert record["Apify Run ID"] == "run-1"
    assert record["Apify API Costs"] == 1.25
    assert record["Progress"] == "half"
    assert record["Token Usage"] == 1500
    assert record["Total Posts Harvested"] == 3
    assert only(sink.job_records())["Progress"] == "50% complete"


def test_notes_maps_to_system_notes(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        job.update(notes="Processing batch 2 of 4")
    assert only(sink.job_records())["System Notes"].endswith("Processing batch 2 of 4")


def test_exact_airtable_names_are_accepted_too(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme") as client:
        client.update(**{"Posts Processed": 3, "Profiles Examined for Scoring": 2})
        client.incr(**{"Posts Processed": 1})
    record = only(sink.client_records())
    assert record["Posts Processed"] == 4
    assert record["Profiles Examined for Scoring"] == 2


def test_update_sets_values_and_incr_adds_to_them(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme") as client:
        client.incr(posts_processed=1, token_usage=1500)
        client.incr(posts_processed=1, token_usage=500)
        client.update(posts_processed=42)
        client.incr(posts_processed=1)
        jobtrace.incr(token_usage=1)
        jobtrace.update(progress="done")
    record = only(sink.client_records())
    assert record["Posts Processed"] == 43
    assert record["Token Usage"] == 2001
    assert record["Progress"] == "done"


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("job", "duration"),
        ("job", "Duration"),
        ("job", "success_rate"),
        ("job", "Success Rate"),
        ("job", "created"),
        ("job", "Created"),
        ("client", "duration"),
        ("client", "profile_scoring_success_rate"),
        ("client", "Profile Scoring Success Rate"),
        ("client", "post_scoring_success_rate"),
        ("client", "Post Scoring Success Rate"),
    ],
)
def test_computed_fields_are_never_written(sink: MemorySink, kind: str, name: str) -> None:
    with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme") as client:
        run = job if kind == "job" else client
        writes = sink.write_count
        with pytest.raises(ComputedFieldError) as info:
            run.update(**{name: 1})
        with pytest.raises(ComputedFieldError):
            run.incr(**{name: 1})
        assert sink.write_count == writes
    assert "computed" in str(info.value)
    assert "Posts Processed" in str(info.value) or "posts_processed" in str(info.value)
    for record in sink.job_records() + sink.client_records():
        assert not {"Duration", "Success Rate", "Created"} & set(record)


@pytest.mark.parametrize("name", ["Notes", "Source", "source", "notes_field", "post_processed", "Posts processed"])
def test_an_unknown_field_name_raises_at_the_call_listing_the_valid_names(sink: MemorySink, name: str) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        with pytest.raises(UnknownFieldError) as info:
            job.update(**{name: "x"})
        with pytest.raises(UnknownFieldError) as info_incr:
            job.incr(**{name: 1})
    message = str(info.value)
    assert repr(name) in message
    for valid in ("posts_processed", "token_usage", "progress", "notes"):
        assert valid in message, message
    assert "posts_processed" in str(info_incr.value)
    assert "System Notes" not in only(sink.job_records())  # nothing was written anywhere


@pytest.mark.parametrize("name", ["Notes", "Source"])
def test_notes_and_source_point_to_system_notes(name: str) -> None:
    with (
        jobtrace.tracked_job("post-scoring"),
        jobtrace.client_run("acme") as client,
        pytest.raises(UnknownFieldError) as info,
    ):
        client.update(**{name: "x"})
    assert "System Notes" in str(info.value)


def test_a_client_field_is_unknown_on_the_job(sink: MemorySink) -> None:
    with (
        jobtrace.tracked_job("post-scoring") as job,
        pytest.raises(UnknownFieldError, match="profiles_examined_for_scoring"),
    ):
        job.update(profiles_examined_for_scoring=1)


def test_a_failing_update_changes_nothing(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        job.update(progress="before")
        before = sink.job_record(job.run_id)
        with pytest.raises(UnknownFieldError):
            job.update(progress="after", Notes="lost?")
        with pytest.raises(UnknownFieldError):
            job.incr(posts_processed=1, nope=1)
        assert sink.job_record(job.run_id) == before


@pytest.mark.parametrize(
    "field", ["run_id", "Run ID", "start_time", "end_time", "clients_processed", "last_client_processed", "job_type"]
)
def test_fields_jobtrace_maintains_cannot_be_set_directly(field: str) -> None:
    with (
        jobtrace.tracked_job("post-scoring") as job,
        pytest.raises(UnknownFieldError, match="maintained by jobtrace"),
    ):
        job.update(**{field: "x"})


def test_a_value_of_the_wrong_type_raises(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme") as client:
        with pytest.raises(jobtrace.InvalidValueError):
            client.update(posts_processed="many")
        with pytest.raises(jobtrace.InvalidValueError):
            client.incr(posts_processed="1")  # type: ignore[arg-type]
        with pytest.raises(jobtrace.InvalidValueError):
            client.incr(apify_run_id=1)
        with pytest.raises(jobtrace.InvalidValueError):
            client.update(progress=50)


def test_the_default_schema_writes_only_fields_of_the_reference_base_and_never_a_computed_one(
    recorder: RecordingSink,
) -> None:
    tables = reference_tables()
    with jobtrace.tracked_job("post-scoring") as job:
        job.update(progress="0%", notes="starting")
        for i, client_id in enumerate(("acme", "globex", "initech")):
            try:
                with jobtrace.client_run(client_id, name=client_id.title()) as client:
                    client.incr(posts_processed=2, token_usage=100)
                    client.update(
                        profiles_examined_for_scoring=1,
                        profiles_successfully_scored=1,
                        profile_scoring_tokens=10,
                        posts_examined_for_scoring=2,
                        posts_successfully_scored=2,
                        post_scoring_tokens=20,
                        total_posts_harvested=5,
                        apify_run_id="r",
                        apify_api_costs=0.5,
                        progress="done",
                    )
                    client.note("ok")
                    if i == 1:
                        raise RuntimeError("boom")
            except RuntimeError:
                pass
        job.update(progress="100%")
    assert recorder.changes
    expected_table = {"job": "Job Tracking", "client": "Client Run Results"}
    for change in recorder.changes:
        assert change.table == expected_table[change.kind]
        fields = tables[change.table]
        for name in change.fields:
            assert name in fields, f"{change.table} has no field {name!r}"
            assert fields[name] not in COMPUTED_TYPES, f"{name!r} is computed"
        assert "Run ID" in change.fields
        if change.kind == "client":
            assert change.fields["Client ID"] == change.client_id
            assert change.fields["Run ID"] == f"{change.run_id}-{change.client_id}"
        else:
            assert change.fields["Run ID"] == change.run_id
    written = {(c.table, n) for c in recorder.changes for n in c.fields}
    # The full job touched the fields a user relies on.
    for table, name in [
        ("Job Tracking", "Clients Processed"),
        ("Job Tracking", "Last Client Processed"),
        ("Job Tracking", "Posts Processed"),
        ("Job Tracking", "Token Usage"),
        ("Job Tracking", "End Time"),
        ("Client Run Results", "Errors"),
        ("Client Run Results", "Client Name"),
    ]:
        assert (table, name) in written


def test_writable_names_are_the_snake_case_of_the_fields_plus_notes() -> None:
    schema = Schema.default()
    names = schema.client.writable_names()
    assert "profiles_examined_for_scoring" in names
    assert "apify_api_costs" in names
    assert "notes" in names
    assert "duration" not in names
    assert "run_id" not in names
    assert schema.job.name == "Job Tracking"
    assert schema.client.name == "Client Run Results"


# -- a user-supplied schema ------------------------------------------------------------


def custom_base() -> dict[str, Any]:
    return {
        "tables": [
            {
                "name": "Jobs",
                "fields": [
                    {"name": "Run", "type": "singleLineText"},
                    {
                        "name": "State",
                        "type": "singleSelect",
                        "options": {"choices": [{"name": c} for c in ("Running", "Completed", "Failed", "Skipped")]},
                    },
                    {"name": "Log", "type": "multilineText"},
                    {"name": "Leads Scored", "type": "number"},
                    {"name": "Elapsed", "type": "formula"},
                ],
            },
            {
                "name": "Tenants",
                "fields": [
                    {"name": "Run", "type": "singleLineText"},
                    {"name": "Tenant", "type": "singleLineText"},
                    {"name": "State", "type": "singleLineText"},
                    {"name": "Leads Scored", "type": "number"},
                ],
            },
        ]
    }


def test_a_user_supplied_schema_replaces_the_default(sink: MemorySink) -> None:
    schema = Schema.from_metadata(
        custom_base(),
        job_table="Jobs",
        client_table="Tenants",
        job_roles={"run_id": "Run", "status": "State", "notes": "Log"},
        client_roles={"run_id": "Run", "client_id": "Tenant", "status": "State"},
    )
    recorder = RecordingSink()
    prev = jobtrace.configure([sink, recorder], strict=True, schema=schema)
    try:
        with jobtrace.tracked_job("lead-scoring") as job:
            with jobtrace.client_run("acme") as client:
                client.incr(leads_scored=3)
            with pytest.raises(UnknownFieldError):
                job.update(progress="not in this base")
            with pytest.raises(ComputedFieldError):
                job.update(elapsed=1)
            job.note("custom")
            job.update(status="skipped")
    finally:
        jobtrace.restore(prev)
    record = only(sink.job_records())
    assert record["Run"] == job.run_id
    assert record["State"] == "Skipped"
    assert record["Leads Scored"] == 3
    assert record["Log"].endswith("custom")
    assert "Run ID" not in record and "Status" not in record
    client_record = only(sink.client_records())
    assert client_record == {
        "Run": f"{job.run_id}-acme",
        "Tenant": "acme",
        "State": "Completed",
        "Leads Scored": 3,
    }
    assert {c.table for c in recorder.changes} == {"Jobs", "Tenants"}


def test_a_schema_whose_mapping_names_a_missing_field_fails_at_configuration() -> None:
    with pytest.raises(jobtrace.ConfigurationError, match="Nope"):
        Schema.from_metadata(
            custom_base(),
            job_table="Jobs",
            client_table="Tenants",
            job_roles={"run_id": "Run", "status": "Nope"},
            client_roles={"run_id": "Run", "client_id": "Tenant", "status": "State"},
        )


def test_a_schema_mapping_a_role_to_a_computed_field_fails_at_configuration() -> None:
    with pytest.raises(jobtrace.ConfigurationError, match="computed"):
        Schema.from_metadata(
            custom_base(),
            job_table="Jobs",
            client_table="Tenants",
            job_roles={"run_id": "Run", "status": "State", "notes": "Elapsed"},
            client_roles={"run_id": "Run", "client_id": "Tenant", "status": "State"},
        )


def test_the_default_schema_can_be_read_from_the_reference_base_file() -> None:
    assert Schema.from_metadata(FIXTURE) == Schema.default()


def test_module_level_verbs_act_on_the_current_client_run_else_the_job(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"):
        jobtrace.incr(token_usage=7)
        jobtrace.update(progress="job progress")
        jobtrace.note("job note")
        with jobtrace.client_run("acme"):
            jobtrace.incr(posts_processed=2)
            jobtrace.update(progress="client progress")
            jobtrace.note("client note")
        jobtrace.incr(token_usage=1)
    client = only(sink.client_records())
    assert (client["Posts Processed"], client["Progress"]) == (2, "client progress")
    assert client["System Notes"].endswith("client note")
    job = only(sink.job_records())
    assert job["Progress"] == "job progress"
    assert job["System Notes"].endswith("job note")
    assert job["Token Usage"] == 8
    assert job["Posts Processed"] == 2  # rolled up from the client


def test_clearing_a_counter_restarts_it_from_zero(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme") as client:
        client.incr(posts_processed=5)
        client.update(posts_processed=None)
        assert "Posts Processed" not in (sink.client_record(job.run_id, "acme") or {})
        client.incr(posts_processed=2)
    record = sink.client_record(job.run_id, "acme")
    assert record is not None and record["Posts Processed"] == 2


def test_incr_with_no_counters_writes_nothing(recorder: RecordingSink) -> None:
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme") as client:
        before = len(recorder.changes)
        client.incr()
        assert len(recorder.changes) == before


def test_a_retried_client_does_not_keep_the_error_of_its_failed_attempt(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        with pytest.raises(RuntimeError), jobtrace.client_run("acme"):
            raise RuntimeError("scoring API down")
        assert sink.client_record(job.run_id, "acme")["Errors"] == "RuntimeError: scoring API down"  # type: ignore[index]
        with jobtrace.client_run("acme"):
            pass
    record = sink.client_record(job.run_id, "acme")
    assert record is not None
    assert record["Status"] == "Completed"
    assert "Errors" not in record
    assert "Failed: RuntimeError: scoring API down" in record["System Notes"]
