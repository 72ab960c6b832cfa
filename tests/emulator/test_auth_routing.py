"""Authentication, unknown bases/tables/routes, and what the emulator exposes."""

from __future__ import annotations

import pyairtable
import pytest
import requests

from jobtrace.testing.emulator import AirtableEmulator

from .conftest import BASE_ID, JOBS, error_of


def test_wrong_key_is_401_authentication_required(emu: AirtableEmulator) -> None:
    api = pyairtable.Api("patWRONGWRONGWRONG", endpoint_url=emu.url)
    with pytest.raises(requests.HTTPError) as info:
        api.table(BASE_ID, JOBS).all()
    assert info.value.response.status_code == 401
    assert error_of(info.value) == {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}


def test_missing_or_malformed_authorization_is_401(emu: AirtableEmulator) -> None:
    url = f"{emu.url}/v0/{BASE_ID}/{JOBS}"
    assert requests.get(url, timeout=5).status_code == 401
    for header in (emu.api_key, f"Basic {emu.api_key}", f"Bearer {emu.api_key}x"):
        resp = requests.get(url, headers={"Authorization": header}, timeout=5)
        assert resp.status_code == 401
        assert resp.json()["error"]["type"] == "AUTHENTICATION_REQUIRED"


def test_unknown_base_and_table_are_403(api: pyairtable.Api) -> None:
    for base_id, table in (("appNOPENOPENOPE00", JOBS), (BASE_ID, "Nope"), (BASE_ID, "tblNOPENOPENOPE00")):
        with pytest.raises(requests.HTTPError) as info:
            api.table(base_id, table).all()
        assert info.value.response.status_code == 403
        assert error_of(info.value)["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
    with pytest.raises(requests.HTTPError) as info:
        api.base("appNOPENOPENOPE00").schema()
    assert info.value.response.status_code == 403


def test_table_by_name_and_by_id_are_the_same(api: pyairtable.Api, emu: AirtableEmulator) -> None:
    table_id = emu.schema(BASE_ID)["tables"][0]["id"]
    rec = api.table(BASE_ID, JOBS).create({"Run ID": "by-name"})
    assert api.table(BASE_ID, table_id).get(rec["id"])["fields"]["Run ID"] == "by-name"


def test_unknown_route_is_404_not_found(emu: AirtableEmulator) -> None:
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    resp = requests.get(f"{emu.url}/v1/whatever", headers=headers, timeout=5)
    assert resp.status_code == 404
    assert resp.json() == {"error": "NOT_FOUND"}


def test_repr_hides_the_key_and_generated_keys_are_random() -> None:
    a, b = AirtableEmulator(), AirtableEmulator()
    assert a.api_key != b.api_key and a.api_key.startswith("pat")
    assert a.api_key not in repr(a)
    with AirtableEmulator(
        bases={BASE_ID: {"tables": [{"name": "T", "fields": [{"name": "N", "type": "singleLineText"}]}]}},
        api_key="patSECRET",
    ) as emu:
        text = repr(emu)
        assert "patSECRET" not in text and emu.url in text and BASE_ID in text


def test_request_log_records_method_path_status_base(api: pyairtable.Api, emu: AirtableEmulator) -> None:
    emu.clear_requests()
    api.table(BASE_ID, JOBS).all()
    entry = emu.requests[-1]
    assert (entry.method, entry.path, entry.status, entry.base_id) == ("GET", f"/v0/{BASE_ID}/{JOBS}", 200, BASE_ID)
    assert entry.time > 0 and entry.fault is None


def test_records_helper_raises_keyerror_for_unknown(emu: AirtableEmulator) -> None:
    with pytest.raises(KeyError):
        emu.records("appNOPENOPENOPE00", JOBS)
    with pytest.raises(KeyError):
        emu.records(BASE_ID, "Nope")


def test_lazy_reexport_from_jobtrace_testing() -> None:
    import jobtrace.testing as testing

    assert testing.AirtableEmulator is AirtableEmulator
    with pytest.raises(AttributeError):
        _ = testing.Nope  # type: ignore[attr-defined]
