"""One reading of Airtable's errors and one retry policy, for the CLI and the sink's reads.

Against the emulator's real error responses (fault injection, a wrong token, a
bad formula), through real pyairtable over HTTP.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pyairtable
import pytest
import requests

from jobtrace.cli import main
from jobtrace.delivery import Refused, RetryAfter
from jobtrace.delivery.airtable import AUTH_RETRY, AirtableError, airtable_error, classify
from jobtrace.schema import Schema
from jobtrace.sinks.airtable import BaseReader, budget_for
from jobtrace.testing.emulator import Fault

from .conftest import BASE_ID

ROOT = Path(__file__).resolve().parents[2]
JOBS = Schema.default().job.name
WRONG_KEY = "patWRONGwrongWRONG.0123456789abcdef"


def failure(api: pyairtable.Api, call: Any) -> BaseException:
    """What a raw pyairtable call (no retries) raises."""
    with pytest.raises(requests.RequestException) as info:
        call(api)
    return info.value


def raw(emulator: Any, key: str | None = None, timeout: tuple[float, float] = (2.0, 5.0)) -> pyairtable.Api:
    return pyairtable.Api(key or emulator.api_key, endpoint_url=emulator.url, retry_strategy=False, timeout=timeout)  # type: ignore[arg-type]


def reader(emulator: Any, **options: Any) -> BaseReader:
    budget = budget_for(emulator.url, BASE_ID, redis_url="")
    options.setdefault("rate_limit_penalty", 0.3)
    options.setdefault("backoff", (0.05, 0.1))
    return BaseReader(options.pop("key", emulator.api_key), BASE_ID, emulator.url, budget, **options)


def list_jobs(api: pyairtable.Api) -> Any:
    return api.table(BASE_ID, JOBS).all()


# -- the mapping ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "kind"),
    [
        (Fault.RATE_LIMIT, 429, "rate_limited"),
        (Fault.FORBIDDEN, 403, "no_access"),
        (Fault.UNAVAILABLE, 503, "unavailable"),
        (Fault.BAD_GATEWAY, 502, "unavailable"),
        (Fault.DROP, 0, "unreachable"),
    ],
)
def test_each_injected_fault_is_one_kind_and_classify_agrees(
    emulator: Any, fault: Fault, status: int, kind: str
) -> None:
    emulator.inject(fault)
    exc = failure(raw(emulator), list_jobs)
    error = airtable_error(exc, BASE_ID, emulator.url)
    assert error is not None
    assert (error.kind, error.status) == (kind, status)
    assert error.retriable == (kind in ("rate_limited", "unavailable", "unreachable"))
    assert len(str(error).splitlines()) == 1
    assert emulator.api_key not in str(error) + repr(error) + error.detail
    if isinstance(exc, requests.HTTPError):  # the engine's reading of the same answer
        outcome = classify(exc, [{"Run ID": "x"}], penalty=30.0)
        assert isinstance(outcome, RetryAfter)
        assert outcome.pause_all == (kind == "rate_limited")
        assert outcome.seconds == {"rate_limited": 30.0, "no_access": AUTH_RETRY}.get(kind, 0.0)


def test_the_mapping_names_the_fix_and_airtables_own_words(emulator: Any) -> None:
    token = airtable_error(failure(raw(emulator, WRONG_KEY), list_jobs), BASE_ID, emulator.url)
    assert token is not None and token.kind == "token"
    assert "AIRTABLE_API_KEY" in str(token) and WRONG_KEY not in str(token) + repr(token)
    no_base = airtable_error(
        failure(raw(emulator), lambda api: api.table("appNoSuchBase0001", JOBS).all()), "appNoSuchBase0001", ""
    )
    assert no_base is not None and no_base.kind == "no_access"
    assert "AIRTABLE_BASE_ID" in str(no_base) and "appNoSuchBase0001" in str(no_base)
    bad = failure(raw(emulator), lambda api: api.table(BASE_ID, JOBS).all(formula="NOPE("))
    rejected = airtable_error(bad, BASE_ID, emulator.url)
    assert rejected is not None and (rejected.kind, rejected.status) == ("rejected", 422)
    assert "INVALID_FILTER_BY_FORMULA" in rejected.detail and "jobtrace check" in str(rejected)
    assert isinstance(bad, requests.HTTPError)
    assert isinstance(classify(bad, [{"Run ID": "x"}]), Refused)
    emulator.inject(Fault.DELAY, delay=0.5)
    timed_out = airtable_error(failure(raw(emulator, timeout=(2.0, 0.1)), list_jobs), BASE_ID, emulator.url)
    assert timed_out is not None and (timed_out.kind, timed_out.reason) == ("unreachable", "ReadTimeout")
    assert emulator.url in str(timed_out)
    assert airtable_error(ValueError("not Airtable's"), BASE_ID, emulator.url) is None


# -- the retry policy ------------------------------------------------------------------------------------------


def test_a_5xx_or_a_dropped_connection_is_tried_again_with_backoff(emulator: Any) -> None:
    emulator.inject(Fault.UNAVAILABLE, count=1)
    emulator.inject(Fault.DROP, count=1)
    emulator.clear_requests()
    assert reader(emulator, attempts=3).records(JOBS) == []
    assert [r.status for r in emulator.requests] == [503, 0, 200]


def test_airtables_trouble_fails_after_the_attempts_with_one_error(emulator: Any) -> None:
    emulator.inject(Fault.UNAVAILABLE, count=None)
    emulator.clear_requests()
    with pytest.raises(AirtableError) as info:
        reader(emulator, attempts=3).first(JOBS)
    assert (info.value.kind, info.value.status) == ("unavailable", 503)
    assert len(emulator.requests) == 3


@pytest.mark.parametrize("what", ["token", "formula"])
def test_a_refused_token_or_a_rejected_query_is_sent_once(emulator: Any, what: str) -> None:
    emulator.clear_requests()
    with pytest.raises(AirtableError) as info:
        if what == "token":
            reader(emulator, key=WRONG_KEY, attempts=5).records(JOBS)
        else:
            reader(emulator, attempts=5).records(JOBS, formula="NOPE(")
    assert info.value.kind == ("token" if what == "token" else "rejected")
    assert len(emulator.requests) == 1


def test_a_429_pauses_everyone_on_the_budget_then_is_tried_again(emulator: Any) -> None:
    emulator.inject(Fault.RATE_LIMIT, count=1)
    emulator.clear_requests()
    budget = budget_for(emulator.url, BASE_ID, redis_url="")
    started = time.monotonic()
    assert reader(emulator, rate_limit_penalty=0.4).records(JOBS) == []
    assert time.monotonic() - started >= 0.4  # the penalty, waited out in the shared budget
    assert [r.status for r in emulator.requests] == [429, 200]
    emulator.inject(Fault.RATE_LIMIT, count=None)
    with pytest.raises(AirtableError) as info:
        reader(emulator, rate_limit_penalty=0.5, max_rate_limited=2).records(JOBS)
    assert info.value.kind == "rate_limited"
    assert budget.blocked_for > 0  # anyone else on the budget waits too


def test_a_create_is_not_sent_again_after_an_error_it_may_have_come_after(emulator: Any) -> None:
    emulator.inject(Fault.LOST_RESPONSE, method="POST")
    base_reader = reader(emulator, attempts=5)
    with pytest.raises(AirtableError) as info:
        base_reader.run(lambda: base_reader.api.table(BASE_ID, JOBS).create({"Run ID": "once"}), idempotent=False)
    assert info.value.kind == "unreachable"
    assert [r["fields"]["Run ID"] for r in emulator.records(BASE_ID, JOBS)] == ["once"]  # applied once, not twice


def test_no_slot_in_time_is_busy_and_sends_nothing(emulator: Any) -> None:
    budget = budget_for(emulator.url, BASE_ID, redis_url="")
    held = [budget.acquire(timeout=5.0) for _ in range(budget.jobtrace_share)]
    emulator.clear_requests()
    try:
        with pytest.raises(AirtableError) as info:
            reader(emulator, slot_wait=0.2).records(JOBS)
    finally:
        for slot in held:
            assert slot is not None
            budget.done(slot)
    assert info.value.kind == "busy"
    assert emulator.requests == []


def test_update_if_reads_again_and_leaves_a_changed_record_alone(emulator: Any) -> None:
    base_reader = reader(emulator)
    created = base_reader.api.table(BASE_ID, JOBS).create({"Run ID": "251005-210247", "Status": "Running"})
    seen: list[Any] = []

    def end(fresh: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(fresh.get("Status"))
        return {"Status": "Interrupted"} if fresh.get("Status") == "Running" else None

    assert base_reader.update_if(JOBS, created["id"], end)[1] == {"Status": "Interrupted"}
    assert base_reader.update_if(JOBS, created["id"], end)[1] is None
    assert seen == ["Running", "Interrupted"]


# -- the CLI renders what the reader says -------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    code = main(argv, env=env)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_rides_out_a_brief_outage(
    capsys: pytest.CaptureFixture[str], emulator: Any, env: dict[str, str]
) -> None:
    emulator.inject(Fault.UNAVAILABLE, count=1)
    emulator.inject(Fault.DROP, count=1)
    code, out, err = run_cli(capsys, ["runs"], env)
    assert (code, out.strip(), err) == (0, "no job runs found", "")


@pytest.mark.parametrize(
    ("fault", "fragments"),
    [
        (Fault.UNAVAILABLE, ("Airtable answered HTTP 503", BASE_ID, "RETRIABLE_ERROR")),
        (Fault.BAD_GATEWAY, ("Airtable answered HTTP 502", "Bad Gateway")),
        (Fault.FORBIDDEN, ("Airtable answered 403", "AIRTABLE_BASE_ID", "jobtrace check")),
        (Fault.DROP, ("cannot reach Airtable at", "ConnectionError")),
    ],
)
@pytest.mark.parametrize("command", [["runs"], ["show", "251005-210247"], ["report", "251005-210247"]])
def test_a_lasting_failure_is_one_line_for_every_command(
    capsys: pytest.CaptureFixture[str],
    emulator: Any,
    env: dict[str, str],
    tmp_path: Path,
    fault: Fault,
    fragments: tuple[str, ...],
    command: list[str],
) -> None:
    emulator.inject(fault, count=None)
    argv = [*command, "-o", str(tmp_path / "r.html")] if command[0] == "report" else command
    code, out, err = run_cli(capsys, argv, env)
    assert (code, out) == (1, "")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobtrace: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]
    assert env["AIRTABLE_API_KEY"] not in err


def test_the_command_modules_and_the_check_handle_no_http_errors_themselves() -> None:
    """Airtable's HTTP is read in one place (jobtrace/delivery/airtable.py): the CLI and the check only render."""
    modules = [
        *sorted((ROOT / "jobtrace").glob("_cli_*.py")),
        ROOT / "jobtrace" / "cli.py",
        ROOT / "jobtrace" / "_lifecycle_cli.py",
        ROOT / "jobtrace" / "sinks" / "airtable" / "check.py",
        ROOT / "jobtrace" / "sinks" / "airtable" / "dead_runs.py",
    ]
    pattern = re.compile(r"^\s*(import requests|from requests)|HTTPError|status_code|RequestException", re.M)
    offenders = {m.name: pattern.findall(m.read_text()) for m in modules}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_reads_from_two_threads_share_the_budget_without_a_429(emulator: Any) -> None:
    """Readers in several threads (one each) stay inside the base's 5 requests a second together."""
    emulator.rate_limit = True
    errors: list[BaseException] = []

    def read_some() -> None:
        mine = reader(emulator)
        try:
            for _ in range(4):
                mine.records(JOBS)
        except BaseException as exc:  # pragma: no cover - the failure is the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=read_some) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert 429 not in [r.status for r in emulator.requests]


def test_the_sinks_reads_follow_the_same_policy(emulator: Any, tmp_path: Path) -> None:
    """AirtableSink.read: a brief 503 is ridden out; a refused token is one request and one SinkError saying so."""
    import jobtrace
    from jobtrace.changes import JOB
    from jobtrace.sinks import AirtableSink

    sink = AirtableSink(
        emulator.api_key,
        BASE_ID,
        endpoint_url=emulator.url,
        journal_path=tmp_path / "journal.sqlite3",
        deliver_leftovers=False,
        backoff_initial=0.05,
        backoff_max=0.1,
    )
    sink.start(Schema.default())
    try:
        emulator.inject(Fault.UNAVAILABLE, count=2, method="GET")
        assert sink.read(JOB, "251005-210247", None) is None
        emulator.inject(Fault.FORBIDDEN, count=None, method="GET")
        emulator.clear_requests()
        with pytest.raises(jobtrace.SinkError) as info:
            sink.read(JOB, "251005-210247", None)
        assert len(emulator.requests) == 1
        assert "could not read run 251005-210247" in str(info.value) and "403" in str(info.value)
        assert emulator.api_key not in str(info.value)
    finally:
        emulator.clear_faults()
        sink.close(2)
