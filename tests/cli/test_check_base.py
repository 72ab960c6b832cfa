"""Item 11: `jobtrace check` fails on a base Airtable does not know, and says what is wrong with a /v0 endpoint URL."""

from __future__ import annotations

from typing import Any

import pytest

from jobtrace.cli import main
from jobtrace.testing import Fault


def test_check_of_a_well_formed_but_unknown_base_fails_and_says_it_was_not_found(
    capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    code = main(["check"], env={**env, "AIRTABLE_BASE_ID": "appNoSuchBase0001"})
    out = capsys.readouterr().out
    assert code == 1
    assert "base appNoSuchBase0001 was not found" in out
    assert "AIRTABLE_BASE_ID" in out
    assert "usable" not in out


def test_check_with_a_token_lacking_the_schema_scope_is_usable_with_a_warning(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], emulator: Any
) -> None:
    emulator.inject(Fault.FORBIDDEN, count=None, path_contains="/v0/meta/")
    code = main(["check"], env=env)
    out = capsys.readouterr().out
    assert code == 0
    assert "schema.bases:read" in out and "usable, with warnings" in out


@pytest.mark.parametrize("suffix", ["/v0", "/v0/"])
def test_check_with_an_endpoint_url_ending_in_v0_says_what_is_wrong_with_the_url(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], suffix: str
) -> None:
    url = env["AIRTABLE_ENDPOINT_URL"]
    code = main(["check"], env={**env, "AIRTABLE_ENDPOINT_URL": url + suffix})
    _, err = capsys.readouterr()
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("jobtrace: error: ")
    assert "ends in /v0" in line and f"use {url!r}" in line
    assert "base" not in line.split("ends in /v0")[1].split(";")[0]  # not reported as a base-ID problem


@pytest.mark.parametrize("url", ["127.0.0.1:8765", "ftp://example.com", "http://", "http://host:port"])
def test_check_with_an_endpoint_url_that_is_no_url_says_so(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], url: str
) -> None:
    code = main(["check"], env={**env, "AIRTABLE_ENDPOINT_URL": url})
    _, err = capsys.readouterr()
    assert code == 1
    (line,) = err.strip().splitlines()
    assert "endpoint URL" in line and "Traceback" not in err


def test_check_of_a_base_whose_job_table_was_renamed_fails_and_names_both_names() -> None:
    """A table found only by its ID was renamed: jobtrace writes by name, so the check must not pass."""
    import copy

    from jobtrace.schema import Schema, default_base_metadata
    from jobtrace.sinks.airtable import check_base, make_api
    from jobtrace.testing import AirtableEmulator

    metadata = default_base_metadata()
    schema = Schema.from_metadata(metadata)  # carries the tables' IDs
    renamed = copy.deepcopy(metadata)
    job_table = next(t for t in renamed["tables"] if t["name"] == "Job Tracking")
    job_table["name"] = "Job Runs"
    base_id = "appRenamedTable01"
    with AirtableEmulator(bases={base_id: renamed}) as emulator:
        problems = check_base(make_api(emulator.api_key, emulator.url), base_id, schema)
        # Why it matters: a write by the schema's name is refused by the base.
        table = make_api(emulator.api_key, emulator.url).table(base_id, "Job Tracking")
        with pytest.raises(Exception, match=r"404|NOT_FOUND|not found"):
            table.create({"Run ID": "261202-120000"})
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1, problems
    (error,) = errors
    assert "'Job Runs'" in error.message and "'Job Tracking'" in error.message and "renamed" in error.message
    assert "job_table='Job Runs'" in error.fix
