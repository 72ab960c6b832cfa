"""Metadata endpoints, validated by pyairtable's own pydantic models."""

from __future__ import annotations

import json
from pathlib import Path

import pyairtable
import pytest
from pyairtable.models.schema import BaseSchema

from jobtrace.testing.emulator import AirtableEmulator

from .conftest import BASE_ID, JOBS, REFERENCE_BASE, TYPES_BASE_ID


def test_reference_schema_round_trips(api: pyairtable.Api) -> None:
    schema = api.base(BASE_ID).schema()
    reference = json.loads(REFERENCE_BASE.read_text())
    assert [t.name for t in schema.tables] == [t["name"] for t in reference["tables"]]
    jobs = schema.table(JOBS)
    assert jobs.id == reference["tables"][0]["id"]
    assert jobs.field("Duration").type == "formula"
    assert jobs.field("Status").options.choices[0].name == "Running"  # type: ignore[union-attr]
    assert api.table(BASE_ID, JOBS).schema().primary_field_id == reference["tables"][0]["primaryFieldId"]


def test_hand_written_schema_gets_ids_and_documented_options(api: pyairtable.Api, emu: AirtableEmulator) -> None:
    schema = api.base(TYPES_BASE_ID).schema()  # pydantic validation passes
    things = schema.table("Things")
    assert things.field("When").options.time_zone == "America/New_York"  # type: ignore[union-attr]
    assert things.field("Count").options.precision == 0  # type: ignore[union-attr]
    assert things.field("Double").options.referenced_field_ids == [things.field("Count").id]  # type: ignore[union-attr]
    assert things.field("Parts").options.linked_table_id == schema.table("Parts").id  # type: ignore[union-attr]
    assert things.views[0].name == "All things"
    BaseSchema.model_validate(emu.schema(TYPES_BASE_ID))


def test_list_bases(api: pyairtable.Api) -> None:
    assert sorted(b.id for b in api.bases()) == sorted([BASE_ID, TYPES_BASE_ID])


def test_typecast_choice_appears_in_metadata(api: pyairtable.Api) -> None:
    api.table(BASE_ID, JOBS).create({"Status": "Brand New"}, typecast=True)
    field = api.base(BASE_ID).schema(force=True).table(JOBS).field("Status")
    choice = field.options.choices[-1]  # type: ignore[union-attr]
    assert choice.name == "Brand New" and choice.id.startswith("sel") and len(choice.id) == 17


def test_schema_can_be_a_path_and_bad_schemas_are_refused(tmp_path: Path) -> None:
    emu = AirtableEmulator(bases={"appFromPath000001": str(REFERENCE_BASE)})
    assert emu.schema("appFromPath000001")["tables"][0]["name"] == JOBS
    for bad in ({}, {"tables": [{"name": "T"}]}, {"tables": [{"name": "T", "fields": [{"name": "x"}]}]},
                {"tables": [{"name": "T", "fields": [{"name": "f", "type": "formula",
                                                      "options": {"formula": "{nope}"}}]}]}):  # fmt: skip
        with pytest.raises(ValueError):
            AirtableEmulator(bases={"appBadSchema00001": bad})
