"""filterByFormula through pyairtable.formulas, and the formula engine itself."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pyairtable
import pytest
import requests
from pyairtable.formulas import (
    AND,
    BLANK,
    CONCATENATE,
    DATETIME_DIFF,
    DATETIME_PARSE,
    FIND,
    IF,
    IS_SAME,
    LEN,
    LOWER,
    NOT,
    OR,
    RECORD_ID,
    SEARCH,
    TRIM,
    UPPER,
    Field,
    Formula,
    match,
    to_formula_str,
)

from jobtrace.testing.emulator import AirtableEmulator
from jobtrace.testing.emulator import formula as fx

from .conftest import BASE_ID, JOBS, error_of

NASTY = ['O\'Brien \\ "x"', "x' OR TRUE() OR '", "back\\slash\\", 'dq " dq', "brace } {x}", "ünïcødé ✓", "a\nb"]


def _ids(recs: list[dict[str, object]]) -> list[object]:
    return sorted(r["fields"]["Run ID"] for r in recs)  # type: ignore[index]


@pytest.fixture
def runs(jobs: pyairtable.Table) -> pyairtable.Table:
    jobs.batch_create(
        [
            {"Run ID": "alpha", "Job Type": "Scoring", "Status": "Running", "Clients Processed": 4,
             "Clients Succeeded": 3, "Start Time": "2024-01-01T10:00:00Z", "End Time": "2024-01-01T11:30:00Z"},
            {"Run ID": "beta", "Job Type": "harvest", "Status": "Completed", "Clients Processed": 0,
             "Start Time": "2024-01-02T10:00:00Z"},
            {"Run ID": "gamma", "Job Type": "  padded  ", "Clients Processed": 10, "Clients Succeeded": 10},
        ]
        + [{"Run ID": v} for v in NASTY]
    )  # fmt: skip
    return jobs


def test_quotes_backslashes_and_injection_match_only_themselves(runs: pyairtable.Table) -> None:
    for value in NASTY:
        assert _ids(runs.all(formula=match({"Run ID": value}))) == [value], value
        assert _ids(runs.all(formula=Field("Run ID").eq(value))) == [value], value
    assert _ids(runs.all(formula=f"{{Run ID}} = {to_formula_str(NASTY[1])}")) == [NASTY[1]]


def test_double_quoted_strings_and_bare_names(runs: pyairtable.Table) -> None:
    assert _ids(runs.all(formula='{Run ID} = "alpha"')) == ["alpha"]
    assert _ids(runs.all(formula='{Run ID} = "dq \\" dq"')) == ['dq " dq']


def test_comparisons_and_arithmetic(runs: pyairtable.Table) -> None:
    assert _ids(runs.all(formula="{Clients Processed} > 3")) == ["alpha", "gamma"]
    assert _ids(runs.all(formula="{Clients Processed} >= 4")) == ["alpha", "gamma"]
    both = "AND({Clients Processed} < 10, {Clients Processed} <= 4, {Clients Processed} != 0)"
    assert _ids(runs.all(formula=both)) == ["alpha"]
    assert _ids(runs.all(formula="{Clients Succeeded} * 2 - 1 = 5")) == ["alpha"]
    assert _ids(runs.all(formula="{Clients Processed} / 2 = 5")) == ["gamma"]
    assert _ids(runs.all(formula="{Run ID} & '-' & {Clients Processed} = 'alpha-4'")) == ["alpha"]
    assert _ids(runs.all(formula="-{Clients Processed} = -10")) == ["gamma"]


def test_truthiness_blank_and_zero(runs: pyairtable.Table) -> None:
    assert _ids(runs.all(formula="{Clients Processed}")) == ["alpha", "gamma"]  # 0 and blank are false
    assert _ids(runs.all(formula="AND({Clients Processed} = 0, {Status})")) == ["beta"]
    # Airtable's quirk: 0 = BLANK() is true, like "" = BLANK().
    assert "beta" in _ids(runs.all(formula="{Clients Processed} = BLANK()"))
    assert "alpha" in _ids(runs.all(formula="{Progress} = ''"))
    assert _ids(runs.all(formula=AND(Field("Status"), NOT(Field("Status").eq("Running"))))) == ["beta"]
    assert _ids(runs.all(formula=OR(Field("Run ID").eq("alpha"), Field("Run ID").eq("beta")))) == ["alpha", "beta"]
    assert len(runs.all(formula="TRUE()")) == 3 + len(NASTY)
    assert runs.all(formula="FALSE()") == []
    assert _ids(runs.all(formula=match({"Status": "Running", "Job Type": "Scoring"}))) == ["alpha"]
    either = match({"Status": "Completed", "Run ID": "gamma"}, match_any=True)
    assert _ids(runs.all(formula=either)) == ["beta", "gamma"]


def test_each_listed_function(runs: pyairtable.Table, jobs: pyairtable.Table) -> None:
    alpha = runs.all(formula=match({"Run ID": "alpha"}))[0]
    assert _ids(runs.all(formula=RECORD_ID().eq(alpha["id"]))) == ["alpha"]
    assert _ids(runs.all(formula=IF(Field("Status"), 1, 0).eq(1))) == ["alpha", "beta"]
    assert _ids(runs.all(formula=FIND("cor", Field("Job Type")).eq(2))) == ["alpha"]
    assert _ids(runs.all(formula=FIND("COR", Field("Job Type")).eq(0))) != []  # FIND is case-sensitive
    assert _ids(runs.all(formula=SEARCH("arv", Field("Job Type")))) == ["beta"]
    assert _ids(runs.all(formula=LEN(Field("Run ID")).eq(4))) == ["beta"]
    assert _ids(runs.all(formula=LOWER(Field("Job Type")).eq("scoring"))) == ["alpha"]
    assert _ids(runs.all(formula=UPPER(Field("Job Type")).eq("HARVEST"))) == ["beta"]
    assert _ids(runs.all(formula=TRIM(Field("Job Type")).eq("padded"))) == ["gamma"]
    assert _ids(runs.all(formula=CONCATENATE(Field("Run ID"), "!", 1).eq("beta!1"))) == ["beta"]
    assert _ids(runs.all(formula=Field("Start Time").eq(DATETIME_PARSE("2024-01-01T10:00:00.000Z")))) == ["alpha"]
    parsed = DATETIME_PARSE("02/01/2024 10:00", "DD/MM/YYYY HH:mm")
    assert _ids(runs.all(formula=parsed.eq(Field("Start Time")))) == ["beta"]
    assert _ids(runs.all(formula=DATETIME_DIFF(Field("End Time"), Field("Start Time"), "minutes").eq(90))) == ["alpha"]
    assert _ids(runs.all(formula=IS_SAME(Field("Start Time"), "2024-01-02", "day"))) == ["beta"]
    ten = datetime(2024, 1, 1, 10, tzinfo=timezone.utc)
    assert _ids(runs.all(formula=IS_SAME(Field("Start Time"), ten, "second"))) == ["alpha"]
    assert _ids(runs.all(formula=Field("Duration").eq(5400))) == ["alpha"]  # formula fields are filterable
    assert _ids(runs.all(formula="{Success Rate} = 1")) == ["gamma"]
    assert runs.all(formula=BLANK()) == []


@pytest.mark.parametrize(
    "formula",
    [
        "{Run ID} =",
        "AND(",
        "{Run ID} = 'unterminated",
        "{Nope} = 1",
        "NOSUCHFUNC(1)",
        "1 +* 2",
        "()",
        "{Run ID}} = 1",
        "IF(1)",
        "Unknownbare = 1",
    ],
)
def test_invalid_formulas_are_422_invalid_filter_by_formula(jobs: pyairtable.Table, formula: str) -> None:
    jobs.create({"Run ID": "x"})
    with pytest.raises(requests.HTTPError) as info:
        jobs.all(formula=formula)
    assert info.value.response.status_code == 422
    assert error_of(info.value)["type"] == "INVALID_FILTER_BY_FORMULA"


def test_formula_errors_on_a_record_just_exclude_it(jobs: pyairtable.Table) -> None:
    jobs.batch_create([{"Run ID": "12"}, {"Run ID": "abc"}])
    assert _ids(jobs.all(formula="{Run ID} * 1 = 12")) == ["12"]
    assert _ids(jobs.all(formula="1 / {Clients Processed}")) == []


def test_formula_text_over_post_with_raw_request(emu: AirtableEmulator, runs: pyairtable.Table) -> None:
    resp = requests.post(
        f"{emu.url}/v0/{BASE_ID}/{JOBS}/listRecords",
        json={"filterByFormula": str(Field("Run ID").eq(NASTY[0]))},
        headers={"Authorization": f"Bearer {emu.api_key}"},
        timeout=5,
    )
    assert [r["fields"]["Run ID"] for r in resp.json()["records"]] == [NASTY[0]]


# ---------------------------------------------------------------- engine unit tests


class _Rec:
    record_id = "recAAAAAAAAAAAAAA"
    created_time = datetime(2024, 1, 1, tzinfo=timezone.utc)
    last_modified_time = created_time

    def __init__(self, **values: fx.Value) -> None:
        self.values = values

    def field_value(self, name: str) -> fx.Value:
        return self.values.get(name)


def _eval(text: str, **values: fx.Value) -> fx.Value:
    return fx.evaluate(fx.parse(text), _Rec(**values))


def test_engine_values() -> None:
    assert _eval("1 + 2 * 3") == 7
    assert _eval("(1 + 2) * 3") == 9
    assert _eval("7 / 2") == 3.5
    assert _eval("'a' & 1 & TRUE()") == "a11"
    assert _eval("1 = '1'") is True
    assert _eval("{x} = ''") is True and _eval("{x} = 0") is True and _eval("{x} < 1") is True
    assert _eval("IF({x}, 'y', 'n')", x="") == "n"
    assert _eval("IF({x}, 'y')") is None
    assert _eval("NOT('0')") is False  # non-empty text is true
    assert _eval("SEARCH('z', 'abc')") is None and _eval("FIND('z', 'abc')") == 0
    assert _eval("DATETIME_DIFF('2024-03-01', '2024-01-15', 'months')") == 1
    assert _eval("DATETIME_DIFF('2024-01-02', '2024-01-01')") == 86400
    assert math.isnan(_eval("DATETIME_DIFF({x}, '2024-01-01')"))  # type: ignore[arg-type]
    assert _eval("Name & ''", Name="bare") == "bare"
    assert _eval("1e3 + .5") == 1000.5
    assert _eval("3 <> 4") is True
    with pytest.raises(fx.FormulaEvalError):
        _eval("1 / 0")
    with pytest.raises(fx.FormulaEvalError):
        _eval("'abc' + 1")


def test_engine_parses_what_pyairtable_writes() -> None:
    names = ["Run ID", "a}b", "Count"]
    for formula in (
        match({"Run ID": NASTY[1], "a}b": 3}),
        AND(Field("Count").gt(1), Formula("TRUE()")),
        Field("a}b").eq(DATETIME_PARSE(datetime(2024, 1, 2, 3, 4, 5))),
    ):
        fx.parse(str(formula), names)
    assert fx.referenced_fields(fx.parse(str(Field("a}b").eq(1)))) == ["a}b"]
