"""Fixtures for the CLI tests: an emulator seeded with the default base, and the environment pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobtrace
from jobtrace.schema import default_base_metadata

BASE_ID = "appCliTests000001"


@pytest.fixture
def emulator() -> Iterator[Any]:
    from jobtrace.testing import AirtableEmulator

    with AirtableEmulator(bases={BASE_ID: default_base_metadata()}, rate_limit_penalty=0.5) as emu:
        yield emu


@pytest.fixture
def env(emulator: Any, tmp_path: Path) -> dict[str, str]:
    """What a user would export to point the CLI at the base."""
    return {
        "AIRTABLE_API_KEY": emulator.api_key,
        "AIRTABLE_BASE_ID": BASE_ID,
        "AIRTABLE_ENDPOINT_URL": emulator.url,
        "JOBTRACE_JOURNAL": str(tmp_path / "journal.sqlite3"),
    }


@pytest.fixture
def tracked(emulator: Any, tmp_path: Path) -> Iterator[None]:
    """jobtrace configured with an AirtableSink writing to the emulator, for populating the base."""
    from jobtrace.sinks import AirtableSink

    sink = AirtableSink(
        emulator.api_key, BASE_ID, endpoint_url=emulator.url, journal_path=tmp_path / "writer-journal.sqlite3"
    )
    prev = jobtrace.configure([sink], strict=True)
    yield
    jobtrace.flush(10)
    sink.close(5)
    jobtrace.restore(prev)
