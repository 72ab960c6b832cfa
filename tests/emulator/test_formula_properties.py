"""Property tests: whatever text pyairtable quotes, the emulator reads back exactly."""

from __future__ import annotations

import pyairtable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyairtable.formulas import Field, field_name, match, quoted

from jobtrace.testing.emulator import AirtableEmulator
from jobtrace.testing.emulator import formula as fx

from .conftest import BASE_ID, JOBS, REFERENCE_BASE

# Quotes, backslashes, braces and formula syntax are the interesting characters.
TEXT = st.text(alphabet=st.sampled_from("ab'\"\\{}()=&, \n\tTRUE()OR"), max_size=20) | st.text(max_size=20)
# pyairtable escapes only "}" in names, so a name may not end in a backslash (ambiguous).
NAMES = st.text(min_size=1, max_size=15).filter(lambda s: not s.endswith("\\") and "\\}" not in s)


class _Rec:
    record_id = "recAAAAAAAAAAAAAA"

    def __init__(self, values: dict[str, fx.Value]) -> None:
        self.values = values

    def field_value(self, name: str) -> fx.Value:
        return self.values.get(name)


@given(TEXT)
def test_quoted_strings_parse_back_to_the_same_text(value: str) -> None:
    assert fx.parse(quoted(value)) == fx.Literal(value)


@given(NAMES)
def test_field_names_parse_back_to_the_same_name(name: str) -> None:
    assert fx.parse(field_name(name), [name]) == fx.FieldRef(name)


@given(NAMES, TEXT, TEXT)
def test_match_is_true_only_for_the_exact_value(name: str, value: str, other: str) -> None:
    node = fx.parse(str(match({name: value})), [name])
    assert fx.truthy(fx.evaluate(node, _Rec({name: value})))  # type: ignore[arg-type]
    if other != value and (other or value):
        assert not fx.truthy(fx.evaluate(node, _Rec({name: other})))  # type: ignore[arg-type]


def test_filter_by_formula_over_http_matches_only_itself() -> None:
    with AirtableEmulator(bases={BASE_ID: REFERENCE_BASE}, rate_limit=False) as emu:
        jobs = pyairtable.Api(emu.api_key, endpoint_url=emu.url).table(BASE_ID, JOBS)

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.lists(TEXT.filter(bool), min_size=1, max_size=4, unique=True))
        def check(values: list[str]) -> None:
            created = jobs.batch_create([{"Run ID": v} for v in values])
            try:
                for value, rec in zip(values, created):
                    found = jobs.all(formula=Field("Run ID").eq(value))
                    assert [r["id"] for r in found] == [rec["id"]]
            finally:
                jobs.batch_delete([r["id"] for r in created])

        check()
