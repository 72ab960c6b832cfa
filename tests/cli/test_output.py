"""What the CLI prints: control characters from the records shown visibly in every output; show's
formatting of computed values; --version and ``python -m jobtrace``. Real processes against the emulator."""

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
from jobtrace.schema import default_base_metadata
from jobtrace.testing import AirtableEmulator

ROOT = Path(__file__).resolve().parents[2]
BASE, BROKEN = "appOutputTests001", "appOutputBroken01"
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # anything but a newline
HOSTILE = "scraped \x1b[2J\x1b[31mred\x1b]0;pwned\x07 \x9b2J bell\x07 tab\there \u202etxt"


def cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobtrace", *argv],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A base with hostile text in a finished run, a running record, and a broken base whose table name is hostile."""
    from jobtrace.sinks import AirtableSink

    tmp = tmp_path_factory.mktemp("output")
    broken = default_base_metadata()
    broken["tables"][1]["name"] = "Evil\x1b]0;title\x07"
    del broken["tables"][1]["id"]  # not the default base's table under another name
    with AirtableEmulator(bases={BASE: default_base_metadata(), BROKEN: broken}, rate_limit=False) as emu:
        sink = AirtableSink(emu.api_key, BASE, endpoint_url=emu.url, journal_path=tmp / "journal.sqlite3")
        previous = jobtrace.configure([sink], strict=True)
        try:
            with jobtrace.tracked_job(f"post-scoring {HOSTILE}") as job:
                job.note(HOSTILE)
                for client_id in ("acme", "globex"):
                    with jobtrace.client_run(client_id) as client:
                        client.incr(posts_processed=5)
                        client.note(HOSTILE)
                with pytest.raises(RuntimeError), jobtrace.client_run("initech"):
                    raise RuntimeError(HOSTILE)
            assert jobtrace.flush(10)
        finally:
            sink.close(5)
            jobtrace.restore(previous)
        pyairtable.Api(emu.api_key, endpoint_url=emu.url).table(BASE, "Job Tracking").create(
            {"Run ID": "260101-000000", "Status": "Running", "Start Time": "2026-01-01T00:00:00.000Z"}
        )
        env = {"AIRTABLE_API_KEY": emu.api_key, "AIRTABLE_BASE_ID": BASE, "AIRTABLE_ENDPOINT_URL": emu.url}
        yield {"env": env, "run_id": job.run_id, "tmp": tmp}


def test_every_output_shows_control_characters_visibly(base: Any) -> None:
    env, run_id = base["env"], base["run_id"]
    outputs = {
        "runs": cli(env, "runs"),
        "runs --json": cli(env, "runs", "--json"),
        "show": cli(env, "show", run_id),
        "show --json": cli(env, "show", run_id, "--json"),
        "watch (ended run)": cli(env, "watch", run_id),
        "report": cli(env, "report", run_id, "-o", str(base["tmp"] / "r.html")),
        "check (hostile table name)": cli({**env, "AIRTABLE_BASE_ID": BROKEN}, "check"),
        "error (hostile argument)": cli(env, "show", "\x1b[31m260101-000000\x07"),
        "usage error (hostile argument)": cli(env, "runs", "--limit", "\x1b[2J\x07"),
        "schema export": cli({**env, "AIRTABLE_BASE_ID": BROKEN}, "schema", "export"),
    }
    for name, done in outputs.items():
        text = done.stdout + done.stderr
        assert not RAW_CONTROL.search(text), (name, text)
        assert "\u202e" not in text, name
    shown = outputs["show"].stdout
    assert "scraped ␛[2J␛[31mred␛]0;pwned␇ <U+009B>2J bell␇ tab␉here <U+202E>txt" in shown
    assert "␛]0;title␇" in outputs["check (hostile table name)"].stdout
    assert "RuntimeError: scraped ␛[2J" in outputs["watch (ended run)"].stdout
    assert outputs["error (hostile argument)"].returncode == 1
    exported = json.loads(outputs["schema export"].stdout)  # still exact JSON
    assert exported["tables"][1]["name"] == "Evil\x1b]0;title\x07"


def test_show_formats_computed_values(base: Any) -> None:
    env, run_id = base["env"], base["run_id"]
    done = cli(env, "show", run_id)
    assert done.returncode == 0, done.stderr
    lines = {line.split("  ")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert re.fullmatch(r"\s+Success Rate\s+66\.7%", lines["Success Rate"])
    assert re.fullmatch(r"\s+Duration\s+\d+s", lines["Duration"])  # seconds shown as a duration
    assert "specialValue" not in done.stdout
    running = cli(env, "show", "260101-000000").stdout
    assert re.search(r"^  Duration\s*$", running, re.M)  # NaN while End Time is empty: blank
    assert "specialValue" not in running and "NaN" not in running


def test_version_and_python_m_jobtrace() -> None:
    done = cli({}, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"jobtrace {jobtrace.__version__}"
    helped = cli({}, "--help")
    assert helped.returncode == 0
    for command in ("runs", "show", "check", "replay", "schema", "watch", "report", "emulator"):
        assert command in helped.stdout
