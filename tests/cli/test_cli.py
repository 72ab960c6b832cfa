"""The jobtrace command, against the emulator (real pyairtable over HTTP)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyairtable
import pytest

import jobtrace
from jobtrace.cli import main, parse_since
from jobtrace.schema import default_base_metadata
from jobtrace.sinks.airtable.throttle import throttle_for

from .conftest import BASE_ID

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    code = main(argv, env=env)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jobtrace: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in err


def populate(emulator: Any) -> dict[str, str]:
    """Three real runs through the Airtable sink, and one old record written directly."""
    run_ids: dict[str, str] = {}
    with jobtrace.tracked_job("post-scoring") as job:
        run_ids["scoring"] = job.run_id
        for i, client_id in enumerate(["acme", "globex", "O'Brien"]):
            with jobtrace.client_run(client_id) as client:
                client.incr(posts_processed=10 + i, token_usage=1000)
    with pytest.raises(RuntimeError), jobtrace.tracked_job("post-harvesting") as job:
        run_ids["failed"] = job.run_id
        raise RuntimeError("scraper down")
    with jobtrace.tracked_job("post-scoring") as job:
        run_ids["latest"] = job.run_id
    assert jobtrace.flush(20)
    old = (datetime.now(timezone.utc) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    api = pyairtable.Api(emulator.api_key, endpoint_url=emulator.url)
    # Under the base's rate limit, shared with the sink (and the CLI) in this process.
    throttle = throttle_for(emulator.url, BASE_ID)
    slot = throttle.acquire()
    try:
        api.table(BASE_ID, "Job Tracking").create(
            {"Run ID": "250101-000000", "Job Type": "post-scoring", "Status": "Completed", "Start Time": old}
        )
    finally:
        assert slot is not None
        throttle.done(slot)
    run_ids["old"] = "250101-000000"
    return run_ids


def table_rows(out: str) -> list[str]:
    return out.strip().splitlines()[1:]


# -- help ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [[], ["runs"], ["show"], ["check"], ["replay"], ["emulator"]])
def test_help_everywhere(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"], env={})
    assert exit_.value.code == 0
    assert "usage: jobtrace" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([], env={})
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


# -- runs -----------------------------------------------------------------------------------------------


def test_runs_lists_newest_first_as_an_aligned_table(
    capsys: pytest.CaptureFixture[str], emulator: Any, env: dict[str, str], tracked: None
) -> None:
    ids = populate(emulator)
    code, out, err = run(capsys, ["runs"], env)
    assert (code, err) == (0, "")
    header, *rows = out.strip().splitlines()
    assert header.split()[:3] == ["Run", "ID", "Job"]
    assert [r.split()[0] for r in rows] == [ids["latest"], ids["failed"], ids["scoring"], ids["old"]]
    # aligned: every row's Status column starts where the header's does
    col = header.index("Status")
    assert {r[col:].split()[0] for r in rows} == {"Completed", "Failed"}
    scoring = next(r for r in rows if r.startswith(ids["scoring"]))
    assert "3" in scoring[header.index("Clients") :].split()[0]
    assert scoring[header.index("Posts Processed") :].split()[0] == "33"


def test_runs_filters_by_status_job_type_since_and_limit(
    capsys: pytest.CaptureFixture[str], emulator: Any, env: dict[str, str], tracked: None
) -> None:
    ids = populate(emulator)
    assert [r.split()[0] for r in table_rows(run(capsys, ["runs", "--status", "failed"], env)[1])] == [ids["failed"]]
    by_type = run(capsys, ["runs", "--job-type", "post-scoring"], env)[1]
    assert [r.split()[0] for r in table_rows(by_type)] == [ids["latest"], ids["scoring"], ids["old"]]
    recent = run(capsys, ["runs", "--since", "2d", "--job-type", "post-scoring"], env)[1]
    assert [r.split()[0] for r in table_rows(recent)] == [ids["latest"], ids["scoring"]]
    assert [r.split()[0] for r in table_rows(run(capsys, ["runs", "--limit", "1"], env)[1])] == [ids["latest"]]


def test_runs_json_gives_the_records_fields(
    capsys: pytest.CaptureFixture[str], emulator: Any, env: dict[str, str], tracked: None
) -> None:
    ids = populate(emulator)
    code, out, _ = run(capsys, ["runs", "--json", "--status", "Completed", "--since", "1h"], env)
    records = json.loads(out)
    assert code == 0
    assert [r["Run ID"] for r in records] == [ids["latest"], ids["scoring"]]
    assert records[1]["Clients Processed"] == 3


def test_runs_filter_values_are_formula_safe(
    capsys: pytest.CaptureFixture[str], emulator: Any, env: dict[str, str], tracked: None
) -> None:
    populate(emulator)
    for job_type in ["x' OR TRUE() OR '", 'O\'Brien \\ "x"', "post-scoring' & '"]:
        code, out, err = run(capsys, ["runs", "--job-type", job_type], env)
        assert (code, out.strip(), err) == (0, "no job runs found", "")


@pytest.mark.parametrize("since", ["2 days", "yesterday", "-1d", "2y", ""])
def test_malformed_since_is_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], since: str
) -> None:
    code, out, err = run(capsys, ["runs", f"--since={since}"], env)
    assert (code, out) == (1, "")
    one_line_error(err, "--since expects")


def test_unknown_status_is_one_line_with_the_choices(capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> None:
    code, _, err = run(capsys, ["runs", "--status", "exploded"], env)
    assert code == 1
    one_line_error(err, "exploded", "Completed")


@pytest.mark.parametrize("limit", ["0", "-3", "many"])
def test_bad_limit_is_a_usage_error(capsys: pytest.CaptureFixture[str], env: dict[str, str], limit: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["runs", "--limit", limit], env=env)
    assert exit_.value.code == 2
    assert "positive whole number" in capsys.readouterr().err


def test_parse_since_units() -> None:
    now = datetime(2025, 10, 5, 21, 2, 47, tzinfo=timezone.utc)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("1w", now) == now - timedelta(weeks=1)


# -- configuration and connection errors ------------------------------------------------------------------


@pytest.mark.parametrize("command", [["runs"], ["show", "251005-210247"], ["check"], ["replay"]])
def test_no_configuration_says_what_to_set(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, out, err = run(capsys, command, {})
    assert (code, out) == (1, "")
    one_line_error(err, "AIRTABLE_API_KEY", "AIRTABLE_BASE_ID")


def test_malformed_base_id(capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> None:
    code, _, err = run(capsys, ["runs"], {**env, "AIRTABLE_BASE_ID": "base1"})
    assert code == 1
    one_line_error(err, "AIRTABLE_BASE_ID", "base1")


def test_wrong_api_key_is_reported_without_printing_any_key(
    capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    wrong = "patWRONGwrongWRONG.0123456789abcdef"
    for command in (["runs"], ["show", "251005-210247"]):
        code, out, err = run(capsys, command, {**env, "AIRTABLE_API_KEY": wrong})
        assert code == 1
        one_line_error(err, "401")
        assert wrong not in out + err and env["AIRTABLE_API_KEY"] not in out + err
    code, out, _ = run(capsys, ["check"], {**env, "AIRTABLE_API_KEY": wrong})
    assert code == 1
    assert "401" in out and wrong not in out


def test_unreachable_airtable(capsys: pytest.CaptureFixture[str], env: dict[str, str], emulator: Any) -> None:
    emulator.stop()
    code, _, err = run(capsys, ["runs"], env)
    assert code == 1
    one_line_error(err, "cannot reach Airtable", env["AIRTABLE_ENDPOINT_URL"])
    code, out, _ = run(capsys, ["check"], env)
    assert code == 1
    assert "not checked" in out


# -- show ------------------------------------------------------------------------------------------------


def test_show_prints_the_job_and_its_client_runs_with_counters_and_durations(
    capsys: pytest.CaptureFixture[str], emulator: Any, env: dict[str, str], tracked: None
) -> None:
    ids = populate(emulator)
    code, out, err = run(capsys, ["show", ids["scoring"]], env)
    assert (code, err) == (0, "")
    job_part, client_part = out.split("\n\n", 1)
    job_lines = dict(line.split(None, 1) for line in job_part.splitlines()[1:] if len(line.split(None, 1)) == 2)
    assert job_part.splitlines()[0] == f"Job run {ids['scoring']}"
    assert "Completed" in out.split("Status", 1)[1].splitlines()[0]
    assert any(
        line.strip().startswith("Clients Processed") and line.strip().endswith("3") for line in job_part.splitlines()
    )
    assert any(line.strip().startswith("Elapsed") and line.strip().endswith("s") for line in job_part.splitlines())
    assert job_lines
    header, *rows = client_part.strip().splitlines()[1:]
    assert client_part.startswith("Client runs (3)")
    assert header.split()[:4] == ["Client", "ID", "Status", "Start"]
    assert sorted(r.split()[0] for r in rows) == ["O'Brien", "acme", "globex"]
    acme = next(r for r in rows if r.startswith("acme"))
    assert acme[header.index("Posts Processed") :].split()[0] == "10"
    assert acme[header.index("Elapsed") :].split()[0].endswith("s")


def test_show_json(capsys: pytest.CaptureFixture[str], emulator: Any, env: dict[str, str], tracked: None) -> None:
    ids = populate(emulator)
    code, out, _ = run(capsys, ["show", ids["failed"], "--json"], env)
    data = json.loads(out)
    assert code == 0
    assert (data["job"]["Status"], data["clients"]) == ("Failed", [])
    assert "scraper down" in data["job"]["Error Summary"]


def test_show_unknown_run_id(capsys: pytest.CaptureFixture[str], emulator: Any, env: dict[str, str]) -> None:
    code, out, err = run(capsys, ["show", "251005-210247"], env)
    assert (code, out) == (1, "")
    one_line_error(err, "no run 251005-210247")


@pytest.mark.parametrize("bad", ["yesterday", "251005", "991332-250000", "251005-210247-"])
def test_show_malformed_run_id(capsys: pytest.CaptureFixture[str], env: dict[str, str], bad: str) -> None:
    code, _, err = run(capsys, ["show", bad], env)
    assert code == 1
    one_line_error(err, "YYMMDD-HHMMSS")


def test_show_client_run_id_points_to_the_job_run_id(capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> None:
    code, _, err = run(capsys, ["show", "251005-210247-Guy-Wilson"], env)
    assert code == 1
    one_line_error(err, "client run ID", "'251005-210247'")


# -- check -------------------------------------------------------------------------------------------------


def test_check_passes_on_a_base_that_fits(capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> None:
    code, out, err = run(capsys, ["check"], env)
    assert (code, err) == (0, "")
    assert "ok:" in out
    assert env["AIRTABLE_API_KEY"] not in out


def test_check_names_what_is_wrong_and_the_fix(
    capsys: pytest.CaptureFixture[str], emulator: Any, env: dict[str, str]
) -> None:
    broken = default_base_metadata()
    jobs = next(t for t in broken["tables"] if t["name"] == "Job Tracking")
    jobs["fields"] = [f for f in jobs["fields"] if f["name"] != "Progress"]
    emulator.add_base("appBrokenBase0001", broken)
    code, out, _ = run(capsys, ["check"], {**env, "AIRTABLE_BASE_ID": "appBrokenBase0001"})
    assert code == 1
    error_lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert any("'Progress'" in line and "Fix:" in line for line in error_lines), out


# -- replay ------------------------------------------------------------------------------------------------


def test_replay_without_a_journal_has_nothing_to_do(capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> None:
    code, out, _ = run(capsys, ["replay"], env)
    assert code == 0
    assert "nothing to replay" in out


def test_replay_delivers_what_a_process_left_in_the_journal(
    capsys: pytest.CaptureFixture[str], emulator: Any, env: dict[str, str]
) -> None:
    from jobtrace.sinks import AirtableSink

    emulator.set_down(True)
    sink = AirtableSink(
        emulator.api_key,
        BASE_ID,
        endpoint_url=emulator.url,
        journal_path=env["JOBTRACE_JOURNAL"],
        check_schema=False,
        deliver_leftovers=False,
        backoff_initial=0.05,
        backoff_max=0.1,
        timeout=(0.5, 0.5),
    )
    prev = jobtrace.configure([sink], strict=True)
    try:
        with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme") as client:
            client.incr(posts_processed=4)
        assert not jobtrace.flush(0.5)
        sink.close(0.5)
    finally:
        jobtrace.restore(prev)
    emulator.set_down(False)
    assert emulator.records(BASE_ID, "Job Tracking") == []

    code, out, err = run(capsys, ["replay", "--timeout", "20"], env)
    assert (code, err) == (0, "")
    assert "delivered 2" in out and "remaining 0" in out
    [record] = emulator.records(BASE_ID, "Job Tracking")
    assert (record["fields"]["Run ID"], record["fields"]["Status"]) == (job.run_id, "Completed")
    [client_record] = emulator.records(BASE_ID, "Client Run Results")
    assert client_record["fields"]["Posts Processed"] == 4
    # Replaying again doubles nothing.
    code, out, _ = run(capsys, ["replay"], env)
    assert code == 0
    assert len(emulator.records(BASE_ID, "Job Tracking")) == 1


# -- emulator ----------------------------------------------------------------------------------------------


def test_emulator_subcommand_serves_until_terminated(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "JOBTRACE_"))}
    env["PYTHONPATH"] = str(ROOT)
    schema = tmp_path / "base.json"
    schema.write_text(json.dumps(default_base_metadata()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobtrace.cli", "emulator", "--port", "0", "--base", f"{BASE_ID}={schema}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(3))
        api = pyairtable.Api(lines["api_key"], endpoint_url=lines["url"])
        assert api.table(BASE_ID, "Job Tracking").all() == []
        assert lines["bases"] == BASE_ID
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_a_reader_that_stops_early_is_not_an_error(emulator: Any, env: dict[str, str], tracked: None) -> None:
    # `jobtrace show RUN_ID | head -3`: the pipe closes while show is still printing.
    ids = populate(emulator)
    jobs = pyairtable.Api(emulator.api_key, endpoint_url=emulator.url).table(BASE_ID, "Job Tracking")
    (record,) = jobs.all(formula=pyairtable.formulas.match({"Run ID": ids["scoring"]}))
    # Far more than a pipe buffer holds, so the writer is still printing when the reader leaves.
    jobs.update(record["id"], {"System Notes": "\n".join(f"[note {i:05d}] " + "x" * 60 for i in range(1200))})
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobtrace.cli", "show", ids["scoring"]],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 0
    assert first.startswith(b"Job run ")
    assert "Traceback" not in err and "BrokenPipeError" not in err
