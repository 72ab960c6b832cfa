"""Run IDs: the seed's format, uniqueness within a process, parsing, client ID validation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

import jobtrace
from jobtrace import InvalidClientIdError, InvalidRunIdError, JobtraceError
from jobtrace.sinks import MemorySink

JOB_ID = re.compile(r"[0-9]{6}-[0-9]{6}")
EXPECTED_FORMAT = "YYMMDD-HHMMSS"


def test_generated_run_id_has_the_yymmdd_hhmmss_format() -> None:
    assert JOB_ID.fullmatch(jobtrace.generate_run_id())


def test_generated_run_id_is_utc_by_default() -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    parsed = jobtrace.parse_run_id(jobtrace.generate_run_id())
    # Earlier calls in this process may have pushed the next free second forward, never backward.
    assert parsed.timestamp >= before
    assert parsed.timestamp.utcoffset() == timedelta(0)


def test_generated_run_id_is_utc_even_when_local_time_is_not() -> None:
    # A fresh process (no IDs issued yet) whose local time is UTC+9.
    code = "import jobtrace; print(jobtrace.generate_run_id())"
    env = {**os.environ, "TZ": "Asia/Tokyo"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    generated = jobtrace.parse_run_id(out.stdout.strip()).timestamp
    # Hours apart if it were local time; the hour is enough to tell (not a timing assertion).
    assert abs(generated - datetime.now(timezone.utc)) < timedelta(hours=1)


def test_generate_run_id_formats_the_given_now() -> None:
    assert jobtrace.generate_run_id(datetime(2025, 10, 5, 21, 2, 47, tzinfo=timezone.utc)) == "251005-210247"


def test_generate_run_id_formats_now_in_its_own_time_zone() -> None:
    eastern = timezone(timedelta(hours=-4))
    assert jobtrace.generate_run_id(datetime(2025, 10, 5, 17, 2, 47, tzinfo=eastern)) == "251005-170247"


def test_two_run_ids_generated_in_the_same_second_differ() -> None:
    ids = [jobtrace.generate_run_id() for _ in range(5)]
    assert len(set(ids)) == 5


def test_run_ids_generated_by_many_threads_at_once_are_all_different() -> None:
    n = 32
    barrier = threading.Barrier(n)
    ids: list[str] = []

    def worker() -> None:
        barrier.wait()
        ids.append(jobtrace.generate_run_id())

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == n
    assert len(set(ids)) == n


def test_jobs_started_in_the_same_second_get_different_run_ids(sink: MemorySink) -> None:
    run_ids = []
    for _ in range(3):
        with jobtrace.tracked_job("post-scoring") as job:
            run_ids.append(job.run_id)
    assert len(set(run_ids)) == 3
    assert len(sink.job_records()) == 3


def test_jobs_started_by_threads_at_once_get_different_run_ids_and_records(sink: MemorySink) -> None:
    n = 8
    barrier = threading.Barrier(n)
    run_ids: list[str] = []

    def worker() -> None:
        barrier.wait()
        with jobtrace.tracked_job("post-scoring") as job:
            run_ids.append(job.run_id)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(run_ids)) == n
    assert sorted(r["Run ID"] for r in sink.job_records()) == sorted(run_ids)


def test_client_run_id_appends_the_client_id() -> None:
    assert jobtrace.client_run_id("251005-210247", "Guy-Wilson") == "251005-210247-Guy-Wilson"


def test_client_run_id_rejects_a_client_run_id_as_the_job_part() -> None:
    with pytest.raises(InvalidRunIdError):
        jobtrace.client_run_id("251005-210247-Guy", "Wilson")


def test_parse_run_id_of_a_job_run_id() -> None:
    parsed = jobtrace.parse_run_id("251005-210247")
    assert parsed.run_id == "251005-210247"
    assert parsed.client_id is None
    assert parsed.timestamp == datetime(2025, 10, 5, 21, 2, 47, tzinfo=timezone.utc)
    assert str(parsed) == "251005-210247"


def test_parse_run_id_of_a_client_run_id_keeps_dashes_in_the_client_id() -> None:
    parsed = jobtrace.parse_run_id("251005-210247-Guy-Wilson")
    assert parsed.run_id == "251005-210247"
    assert parsed.client_id == "Guy-Wilson"
    assert parsed.timestamp == datetime(2025, 10, 5, 21, 2, 47, tzinfo=timezone.utc)
    assert str(parsed) == "251005-210247-Guy-Wilson"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "251005",
        "251005-2102",
        "251005210247",
        "251005-210247-",
        "2510052-10247",
        " 251005-210247",
        "251005-210247\n",
        "251305-210247",  # month 13
        "251005-250000",  # hour 25
        "25100a-210247",
        "251005-210247-\x00",
        "251005-210247- ",
        "\u0662\u0665\u0661\u0660\u0660\u0665-\u0662\u0661\u0660\u0662\u0664\u0667",  # Arabic-Indic digits
        "\uff12\uff15\uff11\uff10\uff10\uff15-\uff12\uff11\uff10\uff12\uff14\uff17",  # full-width digits
    ],
)
def test_parse_run_id_rejects_anything_else_showing_the_expected_format(text: str) -> None:
    with pytest.raises(InvalidRunIdError) as info:
        jobtrace.parse_run_id(text)
    assert EXPECTED_FORMAT in str(info.value)


@pytest.mark.parametrize("value", [None, 251005210247, b"251005-210247"])
def test_parse_run_id_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidRunIdError) as info:
        jobtrace.parse_run_id(value)  # type: ignore[arg-type]
    assert EXPECTED_FORMAT in str(info.value)


def test_invalid_run_id_error_is_a_value_error_and_a_jobtrace_error() -> None:
    with pytest.raises(ValueError):
        jobtrace.parse_run_id("nope")
    with pytest.raises(JobtraceError):
        jobtrace.parse_run_id("nope")


def test_tracked_job_rejects_a_malformed_run_id_at_the_call(sink: MemorySink) -> None:
    with pytest.raises(InvalidRunIdError) as info:
        jobtrace.tracked_job("post-scoring", run_id="2025-10-05")
    assert EXPECTED_FORMAT in str(info.value)
    assert sink.job_records() == []


# -- client IDs ----------------------------------------------------------------

BAD_CLIENT_IDS = [
    pytest.param("", id="empty"),
    pytest.param("   ", id="whitespace"),
    pytest.param("\t\n", id="whitespace-controls"),
    pytest.param("Guy\x00Wilson", id="nul"),
    pytest.param("Guy\nWilson", id="newline"),
    pytest.param("Guy\x7fWilson", id="del"),
    pytest.param("Guy\x85Wilson", id="c1-control"),
    pytest.param("x" * 201, id="201-chars"),
    pytest.param(None, id="none"),
    pytest.param(42, id="int"),
    pytest.param(b"Guy", id="bytes"),
]


@pytest.mark.parametrize("client_id", BAD_CLIENT_IDS)
def test_client_run_rejects_an_invalid_client_id_before_any_record_is_touched(
    sink: MemorySink, client_id: object
) -> None:
    with jobtrace.tracked_job("post-scoring") as job:
        job.update(progress="before")
        before = sink.job_record(job.run_id)
        writes = sink.write_count
        with pytest.raises(InvalidClientIdError) as info, jobtrace.client_run(client_id):  # type: ignore[arg-type]
            pytest.fail("the block must not run")
        assert sink.write_count == writes
        assert sink.job_record(job.run_id) == before
    assert sink.client_records() == []
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, JobtraceError)


@pytest.mark.parametrize("client_id", BAD_CLIENT_IDS)
def test_client_run_id_rejects_an_invalid_client_id(client_id: object) -> None:
    with pytest.raises(InvalidClientIdError):
        jobtrace.client_run_id("251005-210247", client_id)  # type: ignore[arg-type]


def test_client_id_of_exactly_200_characters_is_accepted(sink: MemorySink) -> None:
    client_id = "x" * 200
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run(client_id):
        pass
    assert sink.client_records()[0]["Client ID"] == client_id


def test_invalid_client_id_message_says_what_is_wrong() -> None:
    with pytest.raises(InvalidClientIdError, match="200"):
        jobtrace.client_run_id("251005-210247", "x" * 201)
    with pytest.raises(InvalidClientIdError, match="control"):
        jobtrace.client_run_id("251005-210247", "a\x01b")
    with pytest.raises(InvalidClientIdError, match="string"):
        jobtrace.client_run_id("251005-210247", 7)  # type: ignore[arg-type]


# -- properties ------------------------------------------------------------------

# %y covers 2000-2068 for parsing back (69-99 read as 19xx).
utc_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2068, 12, 31, 23, 59, 59), timezones=st.just(timezone.utc)
)
valid_client_ids = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=200).filter(
    lambda s: s.strip() != ""
)


@given(utc_datetimes)
def test_generated_run_id_parses_back_to_its_time_to_the_second(now: datetime) -> None:
    run_id = jobtrace.generate_run_id(now)
    parsed = jobtrace.parse_run_id(run_id)
    assert JOB_ID.fullmatch(run_id)
    assert parsed.run_id == run_id
    assert parsed.client_id is None
    assert parsed.timestamp == now.replace(microsecond=0)


@given(utc_datetimes, valid_client_ids)
def test_client_run_id_parses_back_to_its_parts(now: datetime, client_id: str) -> None:
    run_id = jobtrace.generate_run_id(now)
    text = jobtrace.client_run_id(run_id, client_id)
    parsed = jobtrace.parse_run_id(text)
    assert parsed.run_id == run_id
    assert parsed.client_id == client_id
    assert str(parsed) == text


@given(st.text(max_size=40))
def test_parse_run_id_accepts_only_well_formed_ids(text: str) -> None:
    try:
        parsed = jobtrace.parse_run_id(text)
    except InvalidRunIdError as exc:
        assert EXPECTED_FORMAT in str(exc)
        return
    assert JOB_ID.fullmatch(parsed.run_id)
    assert str(parsed) == text
    if parsed.client_id is not None:
        assert jobtrace.client_run_id(parsed.run_id, parsed.client_id) == text


@given(st.from_regex(r"[0-9]{6}-[0-9]{6}", fullmatch=True))
def test_every_digit_string_in_the_format_parses_or_is_rejected_as_not_a_date(text: str) -> None:
    try:
        parsed = jobtrace.parse_run_id(text)
    except InvalidRunIdError as exc:
        assert "date" in str(exc)
        assert EXPECTED_FORMAT in str(exc)
    else:
        assert jobtrace.generate_run_id(parsed.timestamp) == text
