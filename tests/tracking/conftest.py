"""Fixtures for the explicit API tests: a strict MemorySink per test, an emulator-backed Airtable sink."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import jobtrace
from jobtrace.schema import default_base_metadata
from jobtrace.sinks import MemorySink
from jobtrace.testing import reset

BASE_ID = "appTrackingApi001"


@pytest.fixture(autouse=True)
def sink() -> Iterator[MemorySink]:
    """A strict MemorySink configured for one test; the previous configuration is restored after it."""
    sink = MemorySink()
    prev = jobtrace.configure([sink], strict=True)
    yield sink
    jobtrace.restore(prev)


@pytest.fixture(autouse=True)
def _forget_records() -> Iterator[None]:
    """Each test starts with an explicit API that remembers nothing (as a fresh process would)."""
    forget()
    yield
    forget()


def forget() -> None:
    """Drop what the explicit API remembers, as if this were a new process."""
    reset(keep_configuration=True)


@pytest.fixture
def emulator() -> Iterator[object]:
    from jobtrace.testing import AirtableEmulator

    with AirtableEmulator(bases={BASE_ID: default_base_metadata()}, rate_limit_penalty=0.5) as emu:
        yield emu


@pytest.fixture
def airtable(emulator: object, tmp_path: Path) -> Iterator[object]:
    """An AirtableSink writing to the emulator, configured for one test (real pyairtable over HTTP)."""
    from jobtrace.sinks import AirtableSink

    sink = AirtableSink(
        emulator.api_key,  # type: ignore[attr-defined]
        BASE_ID,
        endpoint_url=emulator.url,  # type: ignore[attr-defined]
        journal_path=tmp_path / "journal.sqlite3",
    )
    prev = jobtrace.configure([sink], strict=True)
    yield sink
    jobtrace.flush(10)
    sink.close(5)
    jobtrace.restore(prev)
