"""Airtable's 5 requests/second/base limit and its penalty (kept short here)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyairtable
import pytest
import requests

from jobtrace.testing.emulator import AirtableEmulator

from .conftest import BASE_ID, JOBS, REFERENCE_BASE

OTHER = "appOtherBase00001"
PENALTY = 0.5


@pytest.fixture
def limited() -> Iterator[AirtableEmulator]:
    with AirtableEmulator(bases={BASE_ID: REFERENCE_BASE, OTHER: REFERENCE_BASE}, rate_limit_penalty=PENALTY) as emu:
        yield emu


def _raw(emu: AirtableEmulator) -> pyairtable.Api:
    return pyairtable.Api(emu.api_key, endpoint_url=emu.url, retry_strategy=False)


def test_sixth_request_in_a_second_is_429_then_penalty(limited: AirtableEmulator) -> None:
    jobs = _raw(limited).table(BASE_ID, JOBS)
    for _ in range(5):
        jobs.all()
    with pytest.raises(requests.HTTPError) as info:
        jobs.all()
    assert info.value.response.status_code == 429
    assert info.value.response.json() == {
        "errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]
    }
    with pytest.raises(requests.HTTPError):
        jobs.all()  # still in the penalty
    _raw(limited).table(OTHER, JOBS).all()  # limits are per base
    time.sleep(PENALTY + 0.1)
    jobs.all()
    assert [r.status for r in limited.requests if r.base_id == BASE_ID] == [200] * 5 + [429, 429, 200]


def test_metadata_requests_count(limited: AirtableEmulator) -> None:
    api = _raw(limited)
    for _ in range(5):
        api.base(BASE_ID).schema(force=True)
    with pytest.raises(requests.HTTPError) as info:
        api.table(BASE_ID, JOBS).all()
    assert info.value.response.status_code == 429


def test_default_pyairtable_retries_ride_out_a_short_penalty(limited: AirtableEmulator) -> None:
    jobs = pyairtable.Api(limited.api_key, endpoint_url=limited.url).table(BASE_ID, JOBS)
    created = jobs.batch_create([{"Run ID": str(i)} for i in range(80)])  # 8 requests
    assert len(created) == 80 and len(limited.records(BASE_ID, JOBS)) == 80
    assert 429 in [r.status for r in limited.requests]


def test_rate_limit_can_be_switched(limited: AirtableEmulator) -> None:
    limited.rate_limit = False
    jobs = _raw(limited).table(BASE_ID, JOBS)
    for _ in range(12):
        jobs.all()
    limited.rate_limit = True
    for _ in range(5):
        jobs.all()
    with pytest.raises(requests.HTTPError):
        jobs.all()
    limited.reset_rate_limit()
    jobs.all()
