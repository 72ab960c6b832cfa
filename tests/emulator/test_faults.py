"""Injected faults, outages and restarts, as the unmodified client experiences them."""

from __future__ import annotations

import time

import pyairtable
import pytest
import requests

from jobtrace.testing.emulator import AirtableEmulator, Fault

from .conftest import BASE_ID, JOBS, error_of


def test_injected_429_is_seen_raw_and_retried_by_default(emu: AirtableEmulator, raw_api: pyairtable.Api) -> None:
    emu.inject(Fault.RATE_LIMIT)
    with pytest.raises(requests.HTTPError) as info:
        raw_api.table(BASE_ID, JOBS).all()
    assert info.value.response.status_code == 429
    assert info.value.response.json()["errors"][0]["error"] == "RATE_LIMIT_REACHED"
    emu.clear_requests()
    emu.inject("429", count=2)
    api = pyairtable.Api(emu.api_key, endpoint_url=emu.url)  # default strategy retries 429
    api.table(BASE_ID, JOBS).create({"Run ID": "after retries"})
    assert [r.status for r in emu.requests] == [429, 429, 200]
    assert len(emu.records(BASE_ID, JOBS)) == 1


def test_injected_503_and_502(emu: AirtableEmulator, raw_api: pyairtable.Api) -> None:
    emu.inject(Fault.UNAVAILABLE)
    with pytest.raises(requests.HTTPError) as info:
        raw_api.table(BASE_ID, JOBS).create({"Run ID": "x"})
    assert info.value.response.status_code == 503
    assert error_of(info.value)["type"] == "RETRIABLE_ERROR"
    emu.inject(Fault.BAD_GATEWAY)
    with pytest.raises(requests.HTTPError) as info:
        raw_api.table(BASE_ID, JOBS).create({"Run ID": "x"})
    assert info.value.response.status_code == 502
    assert "Bad Gateway" in info.value.response.text
    assert emu.records(BASE_ID, JOBS) == []  # neither was applied


def test_delay_slows_the_response_or_times_the_client_out(emu: AirtableEmulator) -> None:
    emu.inject(Fault.DELAY, delay=0.3)
    api = pyairtable.Api(emu.api_key, endpoint_url=emu.url)
    started = time.monotonic()
    api.table(BASE_ID, JOBS).all()
    assert time.monotonic() - started >= 0.3
    emu.inject(Fault.DELAY, delay=0.5)
    impatient = pyairtable.Api(emu.api_key, endpoint_url=emu.url, timeout=(2, 0.1), retry_strategy=False)
    with pytest.raises(requests.exceptions.ReadTimeout):
        impatient.table(BASE_ID, JOBS).all()


def test_drop_closes_the_connection_without_applying(emu: AirtableEmulator, raw_api: pyairtable.Api) -> None:
    emu.inject(Fault.DROP, method="POST")
    with pytest.raises(requests.ConnectionError):
        raw_api.table(BASE_ID, JOBS).create({"Run ID": "dropped"})
    assert emu.records(BASE_ID, JOBS) == []
    last = emu.requests[-1]
    assert (last.method, last.status, last.fault) == ("POST", 0, "drop")
    raw_api.table(BASE_ID, JOBS).create({"Run ID": "next one works"})


def test_lost_response_applies_the_write(emu: AirtableEmulator, raw_api: pyairtable.Api) -> None:
    emu.inject(Fault.LOST_RESPONSE, method="POST")
    with pytest.raises(requests.ConnectionError):
        raw_api.table(BASE_ID, JOBS).create({"Run ID": "applied"})
    assert [r["fields"]["Run ID"] for r in emu.records(BASE_ID, JOBS)] == ["applied"]
    assert emu.requests[-1].status == 0 and emu.requests[-1].fault == "lost_response"


def test_lost_response_duplicates_a_retried_create_but_not_an_upsert(emu: AirtableEmulator) -> None:
    api = pyairtable.Api(emu.api_key, endpoint_url=emu.url)  # retries connection errors
    jobs = api.table(BASE_ID, JOBS)
    emu.inject(Fault.LOST_RESPONSE, method="POST")
    jobs.create({"Run ID": "dup"})
    assert len(emu.records(BASE_ID, JOBS)) == 2  # the hazard duplicate-avoidance must handle
    emu.inject(Fault.LOST_RESPONSE, method="PATCH")
    jobs.batch_upsert([{"fields": {"Run ID": "once"}}], ["Run ID"])
    assert [r["fields"]["Run ID"] for r in emu.records(BASE_ID, JOBS)].count("once") == 1


def test_fault_filters_counts_and_clearing(emu: AirtableEmulator, raw_api: pyairtable.Api) -> None:
    jobs = raw_api.table(BASE_ID, JOBS)
    emu.inject(Fault.UNAVAILABLE, count=None, path_contains="/meta/")
    jobs.all()  # records are unaffected
    for _ in range(3):
        with pytest.raises(requests.HTTPError):
            raw_api.base(BASE_ID).schema(force=True)
    emu.clear_faults()
    raw_api.base(BASE_ID).schema(force=True)
    emu.inject(Fault.UNAVAILABLE, count=2, method="GET")
    jobs.create({"Run ID": "post unaffected"})
    for _ in range(2):
        with pytest.raises(requests.HTTPError):
            jobs.all()
    jobs.all()
    with pytest.raises(ValueError):
        emu.inject("teapot")
    with pytest.raises(ValueError):
        emu.inject(Fault.DELAY)
    with pytest.raises(ValueError):
        emu.inject(Fault.DROP, count=0)


def test_down_then_back(emu: AirtableEmulator, raw_api: pyairtable.Api) -> None:
    jobs = raw_api.table(BASE_ID, JOBS)
    jobs.create({"Run ID": "before"})
    emu.set_down(True)
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            jobs.all()
    emu.set_down(False)
    assert len(jobs.all()) == 1


def test_stop_and_restart_on_the_same_port_keeps_data(emu: AirtableEmulator, raw_api: pyairtable.Api) -> None:
    jobs = raw_api.table(BASE_ID, JOBS)
    jobs.create({"Run ID": "kept"})
    url = emu.url
    emu.stop()
    assert not emu.running
    with pytest.raises(requests.ConnectionError):
        jobs.all()
    emu.start()
    assert emu.url == url
    fresh = pyairtable.Api(emu.api_key, endpoint_url=emu.url).table(BASE_ID, JOBS)
    assert [r["fields"]["Run ID"] for r in fresh.all()] == ["kept"]
