"""Fixtures: a running emulator on a free port and real pyairtable clients for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyairtable
import pytest

from jobtrace.testing.emulator import AirtableEmulator

REFERENCE_BASE = Path(__file__).resolve().parents[1] / "fixtures" / "reference-base.json"
BASE_ID = "appJobTracking001"
TYPES_BASE_ID = "appFieldTypes0001"
JOBS = "Job Tracking"


def types_schema() -> dict[str, Any]:
    """A small hand-written base (no IDs, few options) exercising many field types."""
    return {
        "tables": [
            {
                "name": "Things",
                "fields": [
                    {"name": "Name", "type": "singleLineText"},
                    {"name": "Notes", "type": "multilineText"},
                    {"name": "Email", "type": "email"},
                    {"name": "Count", "type": "number", "options": {"precision": 0}},
                    {"name": "Price", "type": "currency", "options": {"precision": 2, "symbol": "$"}},
                    {"name": "Ratio", "type": "percent", "options": {"precision": 1}},
                    {"name": "Done", "type": "checkbox"},
                    {"name": "Tags", "type": "multipleSelects", "options": {"choices": [{"name": "a"}, {"name": "b"}]}},
                    {"name": "Kind", "type": "singleSelect", "options": {"choices": [{"name": "x"}]}},
                    {"name": "Day", "type": "date"},
                    {"name": "When", "type": "dateTime", "options": {"timeZone": "America/New_York"}},
                    {"name": "Seq", "type": "autoNumber"},
                    {"name": "Double", "type": "formula", "options": {"formula": "{Count} * 2"}},
                    {"name": "Label", "type": "formula", "options": {"formula": "Name & '-' & Count"}},
                    {"name": "Parts", "type": "multipleRecordLinks", "options": {"linkedTableId": "Parts"}},
                    {"name": "Payload", "type": "someFutureType"},
                ],
                "views": [{"name": "All things"}],
            },
            {
                "name": "Parts",
                "fields": [{"name": "Part", "type": "singleLineText"}],
            },
        ]
    }


@pytest.fixture
def emu() -> Iterator[AirtableEmulator]:
    """Emulator with the reference base and the types base, rate limit off."""
    with AirtableEmulator(bases={BASE_ID: REFERENCE_BASE, TYPES_BASE_ID: types_schema()}, rate_limit=False) as emulator:
        yield emulator


@pytest.fixture
def api(emu: AirtableEmulator) -> pyairtable.Api:
    """A pyairtable client with its default retry strategy."""
    return pyairtable.Api(emu.api_key, endpoint_url=emu.url)


@pytest.fixture
def raw_api(emu: AirtableEmulator) -> pyairtable.Api:
    """A pyairtable client that does not retry, so faults are seen as they are."""
    return pyairtable.Api(emu.api_key, endpoint_url=emu.url, retry_strategy=False)


@pytest.fixture
def jobs(api: pyairtable.Api) -> pyairtable.Table:
    return api.table(BASE_ID, JOBS)


@pytest.fixture
def things(api: pyairtable.Api) -> pyairtable.Table:
    return api.table(TYPES_BASE_ID, "Things")


def error_of(exc: BaseException) -> Any:
    """The Airtable error pyairtable attached to an HTTPError (the ``error`` value)."""
    import ast

    return ast.literal_eval(exc.args[-1])
