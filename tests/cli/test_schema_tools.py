"""The schema from the operator's side: export, from_metadata inputs, the role list, aliases, check --fix.

The CLI runs as a real process (``python -m jobtrace``) against the emulator.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyairtable
import pytest

import jobtrace
from jobtrace.schema import CLIENT_ROLES, JOB_ROLES, Schema, SchemaMismatchError, default_base_metadata
from jobtrace.sinks import AirtableSink
from jobtrace.testing import AirtableEmulator

ROOT = Path(__file__).resolve().parents[2]
LEGACY = "appLegacyBase0001"


def jobtrace_cli(env: dict[str, str], *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobtrace", *argv],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def legacy_metadata(drop_fields: tuple[str, ...] = (), drop_choices: tuple[str, ...] = ()) -> dict[str, Any]:
    """The default base with fields and Status choices taken out of Job Tracking."""
    meta = default_base_metadata()
    job = meta["tables"][0]
    job["fields"] = [f for f in job["fields"] if f["name"] not in drop_fields]
    status = next(f for f in job["fields"] if f["name"] == "Status")
    status["options"]["choices"] = [c for c in status["options"]["choices"] if c["name"] not in drop_choices]
    return meta


def env_for(emu: AirtableEmulator, base_id: str) -> dict[str, str]:
    return {"AIRTABLE_API_KEY": emu.api_key, "AIRTABLE_BASE_ID": base_id, "AIRTABLE_ENDPOINT_URL": emu.url}


def field_names(emu: AirtableEmulator, base_id: str, table: str = "Job Tracking") -> list[str]:
    tables = {t["name"]: t for t in emu.schema(base_id)["tables"]}
    return [f["name"] for f in tables[table]["fields"]]


# -- Schema.from_metadata ----------------------------------------------------------------------


def test_from_metadata_takes_pyairtables_base_schema_a_dict_or_a_path(tmp_path: Path) -> None:
    with AirtableEmulator(bases={LEGACY: default_base_metadata()}, rate_limit=False) as emu:
        live = pyairtable.Api(emu.api_key, endpoint_url=emu.url).base(LEGACY).schema()
        path = tmp_path / "base.json"
        path.write_text(json.dumps(emu.schema(LEGACY)))
        for source in (live, emu.schema(LEGACY), path, str(path)):
            schema = Schema.from_metadata(source)
            assert schema.job.names.run_id == "Run ID" and schema.client.names.client_id == "Client ID"
            assert "posts_processed" in schema.client.writable_names()
    with pytest.raises(TypeError, match="BaseSchema"):
        Schema.from_metadata(42)


def test_every_mapping_problem_is_reported_at_once() -> None:
    meta = default_base_metadata()
    job, client = meta["tables"]
    job["fields"] = [f for f in job["fields"] if f["name"] != "Run ID"]
    client["fields"] = [f for f in client["fields"] if f["name"] not in ("Client ID", "Status")]
    with pytest.raises(SchemaMismatchError) as caught:
        Schema.from_metadata(meta, job_roles={"notes": "Nope"})
    problems = caught.value.problems
    assert len(problems) == 4, problems
    message = str(caught.value)
    for fragment in ("'run_id'", "'Nope'", "'client_id'", "'status'"):
        assert fragment in message
    assert isinstance(caught.value, jobtrace.ConfigurationError)


# -- status aliases -------------------------------------------------------------------------------


def test_a_legacy_base_writes_its_own_choice_for_cancelled_and_interrupted(tmp_path: Path) -> None:
    meta = legacy_metadata(drop_choices=("Cancelled", "Interrupted"))
    with pytest.raises(jobtrace.ConfigurationError, match="not a choice"):
        Schema.from_metadata(meta, status_aliases={"Cancelled": "Aborted"})
    with pytest.raises(jobtrace.ConfigurationError, match="not a status jobtrace writes"):
        Schema.from_metadata(meta, status_aliases={"Stopped": "Failed"})
    schema = Schema.from_metadata(meta, status_aliases={"Cancelled": "Failed", "Interrupted": "Failed"})
    with AirtableEmulator(bases={LEGACY: meta}, rate_limit=False) as emu:
        # Without the aliases the sink refuses the base at configure (the status check).
        plain = AirtableSink(emu.api_key, LEGACY, endpoint_url=emu.url, journal_path=tmp_path / "j0.sqlite3")
        with pytest.raises(jobtrace.ConfigurationError, match="'Cancelled', 'Interrupted'"):
            jobtrace.configure([plain], schema=Schema.from_metadata(meta), strict=True)
        sink = AirtableSink(emu.api_key, LEGACY, endpoint_url=emu.url, journal_path=tmp_path / "j.sqlite3")
        previous = jobtrace.configure([sink], schema=schema, strict=True)
        try:
            with pytest.raises(KeyboardInterrupt), jobtrace.tracked_job("legacy") as job:
                with jobtrace.client_run("acme"):
                    pass
                raise KeyboardInterrupt
            assert jobtrace.flush(10)
        finally:
            sink.close(5)
            jobtrace.restore(previous)
        record = next(r["fields"] for r in emu.records(LEGACY, "Job Tracking") if r["fields"]["Run ID"] == job.run_id)
        assert record["Status"] == "Failed"
        assert "Interrupted" in record["System Notes"]


# -- the role list in the README -----------------------------------------------------------------


def test_the_readme_lists_every_role_as_the_code_has_it() -> None:
    """Each role's row in the README is the one `jobtrace schema roles --markdown` prints; no other role is listed.

    (The README may list a role documented in ROLE_DOCS before its branch lands: the lifecycle's heartbeat.)
    """
    from jobtrace._cli_schema import roles_markdown
    from jobtrace.schema import ROLE_DOCS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = roles_markdown()
    for row in table.splitlines():
        assert row in readme, f"README's role table is out of date; paste `jobtrace schema roles --markdown`:\n{table}"
    start = readme.index("| Role | Tables | Default field | Type | What it is for |")
    section = readme[start : readme.index("\n\n", start)]
    listed = set(re.findall(r"^\| `([a-z_]+)`", section, re.M))
    assert {*JOB_ROLES, *CLIENT_ROLES} <= listed <= set(ROLE_DOCS)


# -- schema export ------------------------------------------------------------------------------


def test_schema_export_writes_the_live_bases_metadata(tmp_path: Path) -> None:
    meta = legacy_metadata(drop_fields=("Token Usage",))
    # Rate limit off: these tests start several CLI processes in a row, each with its own budget.
    with AirtableEmulator(bases={LEGACY: meta}, rate_limit=False) as emu:
        out = tmp_path / "my-base.json"
        done = jobtrace_cli(env_for(emu, LEGACY), "schema", "export", "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert str(out) in done.stdout and emu.api_key not in done.stdout
        exported = json.loads(out.read_text())

        def shape(meta: dict[str, Any]) -> list[Any]:
            return [
                (t["id"], t["name"], [(f["id"], f["name"], f["type"]) for f in t["fields"]]) for t in meta["tables"]
            ]

        assert shape(exported) == shape(emu.schema(LEGACY))
        assert "Token Usage" not in [f["name"] for f in exported["tables"][0]["fields"]]
        assert Schema.from_metadata(out).job.name == "Job Tracking"
        to_stdout = jobtrace_cli(env_for(emu, LEGACY), "schema", "export")
        assert json.loads(to_stdout.stdout) == exported


# -- check --fix ----------------------------------------------------------------------------------


def test_check_fix_lists_asks_and_creates_the_missing_fields() -> None:
    meta = legacy_metadata(drop_fields=("Clients Failed", "Token Usage"))
    # Rate limit off: these tests start several CLI processes in a row, each with its own budget.
    with AirtableEmulator(bases={LEGACY: meta}, rate_limit=False) as emu:
        env = env_for(emu, LEGACY)
        assert jobtrace_cli(env, "check").returncode == 1
        declined = jobtrace_cli(env, "check", "--fix", stdin="n\n")
        assert declined.returncode == 1
        assert "create number field 'Clients Failed' in table 'Job Tracking'" in declined.stdout
        assert "create number field 'Token Usage'" in declined.stdout
        assert "nothing changed" in declined.stdout
        assert "Clients Failed" not in field_names(emu, LEGACY)
        accepted = jobtrace_cli(env, "check", "--fix", stdin="y\n")
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr
        assert "ok: tables" in accepted.stdout.splitlines()[-1]
        assert {"Clients Failed", "Token Usage"} <= set(field_names(emu, LEGACY))
        again = jobtrace_cli(env, "check", "--fix", "--yes")
        assert again.returncode == 0 and "nothing to fix" in again.stdout
        # The sink accepts the base now and writes the new fields.
        assert jobtrace_cli(env, "check").returncode == 0


def test_check_fix_says_what_to_click_for_choices_the_api_cannot_add() -> None:
    meta = legacy_metadata(drop_fields=("Clients Failed",), drop_choices=("Cancelled", "Interrupted"))
    tokens = next(f for f in meta["tables"][0]["fields"] if f["name"] == "Token Usage")
    tokens.update(type="singleLineText", options=None)
    del tokens["options"]
    # Rate limit off: these tests start several CLI processes in a row, each with its own budget.
    with AirtableEmulator(bases={LEGACY: meta}, rate_limit=False) as emu:
        done = jobtrace_cli(env_for(emu, LEGACY), "check", "--fix", "--yes")
        assert done.returncode == 1
        assert "Airtable's API cannot add choices to an existing single select" in done.stdout
        assert "click the arrow on the 'Status' column header, then 'Edit field'" in done.stdout
        assert "'Cancelled', 'Interrupted'" in done.stdout
        assert "'Job Tracking'.'Token Usage': the field is singleLineText in the base but number" in done.stdout
        assert "and change its type to number" in done.stdout
        assert "Clients Failed" in field_names(emu, LEGACY)  # what the API can do is done


def test_fix_covers_every_role_the_mapping_knows_including_optional_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """A role without a field in the default base (the lifecycle's heartbeat) is created with its role type."""
    from jobtrace.sinks.airtable import make_api
    from jobtrace.sinks.airtable.fix import create_fields, plan_fixes

    monkeypatch.setitem(JOB_ROLES, "heartbeat", "Last Heartbeat")  # type: ignore[index]
    monkeypatch.setitem(CLIENT_ROLES, "heartbeat", "Last Heartbeat")  # type: ignore[index]
    meta = default_base_metadata()
    for table in meta["tables"]:
        table["fields"] = [f for f in table["fields"] if f["name"] != "Last Heartbeat"]
    creates, manual = plan_fixes(meta, Schema.from_metadata(meta))
    assert manual == []
    assert [(c.table, c.name, c.type) for c in creates] == [
        ("Job Tracking", "Last Heartbeat", "dateTime"),
        ("Client Run Results", "Last Heartbeat", "dateTime"),
    ]
    with AirtableEmulator(bases={LEGACY: meta}, rate_limit=False) as emu:
        created = create_fields(make_api(emu.api_key, emu.url), LEGACY, creates)
        assert [f["type"] for f in created] == ["dateTime", "dateTime"]
        assert created[0]["options"]["timeZone"] == "utc"
        assert plan_fixes(emu.schema(LEGACY), Schema.from_metadata(meta)) == ([], [])
