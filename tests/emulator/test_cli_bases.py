"""``jobtrace emulator``: the default base, --data across restarts, malformed base IDs, a lazy import."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyairtable
import pytest

from jobtrace.testing.emulator import AirtableEmulator

from .conftest import REFERENCE_BASE

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def start(*argv: str) -> tuple[subprocess.Popen[str], dict[str, str], dict[str, str]]:
    """``python -m jobtrace emulator ...``: the process, its key=value lines and its export lines."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobtrace", "emulator", "--port", "0", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stdout is not None
    info = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(3))
    comment = proc.stdout.readline()
    assert comment.startswith("# base ")
    exports = {}
    for _ in range(3):
        name, _, value = proc.stdout.readline().strip().removeprefix("export ").partition("=")
        exports[name] = value
    return proc, info, exports


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_without_base_it_serves_the_default_base_ready_to_paste() -> None:
    proc, info, exports = start("--no-rate-limit")
    try:
        assert exports == {
            "AIRTABLE_ENDPOINT_URL": info["url"],
            "AIRTABLE_API_KEY": info["api_key"],
            "AIRTABLE_BASE_ID": "appJobtraceLocal1",
        }
        check = subprocess.run(
            [sys.executable, "-m", "jobtrace", "check"], env={**ENV, **exports}, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "ok: tables 'Job Tracking' and 'Client Run Results' fit the field mapping" in check.stdout
    finally:
        stop(proc)


def test_data_keeps_records_and_created_fields_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "emulator.json"
    proc, info, exports = start("--data", str(data), "--no-rate-limit")
    try:
        api = pyairtable.Api(info["api_key"], endpoint_url=info["url"])
        table = api.table(exports["AIRTABLE_BASE_ID"], "Job Tracking")
        table.create_field("Retries", "number", options={"precision": 0})
        created = table.create({"Run ID": "260101-000000", "Status": "Running", "Retries": 3})
    finally:
        stop(proc)
    proc, info, exports = start("--data", str(data), "--no-rate-limit")
    try:
        api = pyairtable.Api(info["api_key"], endpoint_url=info["url"])
        table = api.table(exports["AIRTABLE_BASE_ID"], "Job Tracking")
        again = table.get(created["id"])
        assert again["fields"] == created["fields"] and again["createdTime"] == created["createdTime"]
        assert table.create({"Run ID": "260101-000001"})["id"] != created["id"]
        assert info["api_key"] not in data.read_text()
    finally:
        stop(proc)


def test_data_is_saved_while_running_not_only_at_a_clean_stop(tmp_path: Path) -> None:
    data = tmp_path / "emulator.json"
    with AirtableEmulator(bases={"appSavedWhileUp01": REFERENCE_BASE}, rate_limit=False, data=data) as emu:
        pyairtable.Api(emu.api_key, endpoint_url=emu.url).table("appSavedWhileUp01", "Job Tracking").create(
            {"Run ID": "saved"}
        )
        deadline = time.monotonic() + 5
        while not (data.exists() and "saved" in data.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "saved" in data.read_text()  # on disk while the emulator still runs
    reloaded = AirtableEmulator(data=data)
    assert [r["fields"]["Run ID"] for r in reloaded.records("appSavedWhileUp01", "Job Tracking")] == ["saved"]


@pytest.mark.parametrize("base_id", ["appX", "app", "appJobtraceLocal12", "tblJobtraceLocal1", "appJobtrace-ocal1"])
def test_malformed_base_ids_are_refused(base_id: str) -> None:
    with pytest.raises(ValueError, match="not an Airtable base ID"):
        AirtableEmulator(bases={base_id: REFERENCE_BASE})
    done = subprocess.run(
        [sys.executable, "-m", "jobtrace", "emulator", "--port", "0", "--base", f"{base_id}={REFERENCE_BASE}"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert done.returncode == 2
    assert "not an Airtable base ID" in done.stderr and "Traceback" not in done.stderr


def test_the_jobtrace_command_loads_no_emulator_rich_or_pyairtable_to_build_its_parser() -> None:
    code = (
        "import sys, json\n"
        "from jobtrace.cli import build_parser\n"
        "build_parser()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('jobtrace.testing.emulator.', 'rich', "
        "'pyairtable')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    loaded: list[Any] = __import__("json").loads(out.stdout)
    assert loaded == ["jobtrace.testing.emulator.cli"]
