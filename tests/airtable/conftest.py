"""Fixtures: the local Airtable emulator (real HTTP), AirtableSinks with short penalties and backoffs."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import jobtrace
from jobtrace.schema import default_base_metadata
from jobtrace.sinks import AirtableSink
from jobtrace.testing import AirtableEmulator

BASE_ID = "appJobtraceSink01"
JOBS = "Job Tracking"
CLIENTS = "Client Run Results"
#: Short enough that the suite stays fast, long enough to be a real pause.
PENALTY = 1.0

SinkFactory = Callable[..., AirtableSink]


def sink_options(emulator: AirtableEmulator, journal: Path) -> dict[str, Any]:
    """Constructor arguments for a sink talking to ``emulator`` with test-sized delays."""
    return {
        "endpoint_url": emulator.url,
        "journal_path": journal,
        "rate_limit_penalty": PENALTY,
        "backoff_initial": 0.05,
        "backoff_max": 0.5,
        "timeout": (2.0, 5.0),
    }


@pytest.fixture
def emulator() -> Iterator[AirtableEmulator]:
    """The default base, Airtable's rate limit on (5/s per base) with a short penalty."""
    with AirtableEmulator(bases={BASE_ID: default_base_metadata()}, rate_limit=True, rate_limit_penalty=PENALTY) as emu:
        yield emu


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.sqlite3"


@pytest.fixture
def make_sink(emulator: AirtableEmulator, journal_path: Path) -> Iterator[SinkFactory]:
    """Build AirtableSinks for the emulator (closed after the test)."""
    made: list[AirtableSink] = []

    def make(**overrides: Any) -> AirtableSink:
        options = {**sink_options(emulator, journal_path), **overrides}
        sink = AirtableSink(emulator.api_key, options.pop("base_id", BASE_ID), **options)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close(0.5)


@pytest.fixture
def tracked(make_sink: SinkFactory) -> Iterator[AirtableSink]:
    """An AirtableSink configured (strict) as jobtrace's only sink for one test."""
    sink = make_sink()
    previous = jobtrace.configure([sink], strict=True)
    yield sink
    jobtrace.restore(previous)


def fields_by_client(emulator: AirtableEmulator, base_id: str = BASE_ID) -> dict[str, dict[str, Any]]:
    """Client run records keyed by Client ID; fails if a client has two records."""
    found: dict[str, dict[str, Any]] = {}
    for record in emulator.records(base_id, CLIENTS):
        client = record["fields"]["Client ID"]
        assert client not in found, f"two records for client {client!r}"
        found[client] = record["fields"]
    return found


def base_without(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The default base metadata with ``change`` applied to a copy."""
    meta = copy.deepcopy(default_base_metadata())
    change(meta)
    return meta


def table(meta: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in meta["tables"] if t["name"] == name)
