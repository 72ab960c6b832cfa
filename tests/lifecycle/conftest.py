"""Fixtures for how runs end: real child processes, real signals, the emulator over real HTTP."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobtrace
from jobtrace.schema import default_base_metadata
from jobtrace.testing import AirtableEmulator

BASE_ID = "appJobtraceLife01"
JOBS = "Job Tracking"
CLIENTS = "Client Run Results"
REPO = Path(jobtrace.__file__).resolve().parents[1]


def base_with_heartbeat() -> dict[str, Any]:
    """The reference base plus the optional ``Last Heartbeat`` dateTime field on both tables."""
    meta = copy.deepcopy(default_base_metadata())
    for table, suffix in zip(meta["tables"], ("Job01", "Cli01")):
        start = next(f for f in table["fields"] if f["name"] == "Start Time")
        table["fields"].append({**copy.deepcopy(start), "id": f"fldHeartbeat{suffix}", "name": "Last Heartbeat"})
    return meta


@pytest.fixture
def emulator() -> Iterator[AirtableEmulator]:
    with AirtableEmulator(bases={BASE_ID: default_base_metadata()}, rate_limit=True, rate_limit_penalty=1.0) as emu:
        yield emu


@pytest.fixture
def hb_emulator() -> Iterator[AirtableEmulator]:
    """A base with the Last Heartbeat field."""
    with AirtableEmulator(bases={BASE_ID: base_with_heartbeat()}, rate_limit=True, rate_limit_penalty=1.0) as emu:
        yield emu


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.sqlite3"


def child_env(emulator: AirtableEmulator, journal: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AIRTABLE_API_KEY": emulator.api_key,
        "AIRTABLE_BASE_ID": BASE_ID,
        "AIRTABLE_ENDPOINT_URL": emulator.url,
        "JOBTRACE_JOURNAL": str(journal),
    }


def spawn(code: str, env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_for_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the child ended before printing {prefix!r}: {proc.communicate()[1][-2000:]}")
        if line.startswith(prefix):
            return line[len(prefix) :].strip()


def records(emulator: AirtableEmulator, table: str) -> list[dict[str, Any]]:
    return [r["fields"] for r in emulator.records(BASE_ID, table)]


def by_client(emulator: AirtableEmulator) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for fields in records(emulator, CLIENTS):
        assert fields["Client ID"] not in found, f"two records for {fields['Client ID']}"
        found[fields["Client ID"]] = fields
    return found
