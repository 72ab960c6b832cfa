"""The budget's rule, on the host's file and on Redis: 5 slots, each held until a second after its response;
jobtrace's share leaves the application its headroom; a penalty refuses everyone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from jobtrace.sinks.airtable import Budget, budget_for
from jobtrace.sinks.airtable.throttle import Slot


@pytest.fixture(params=["host", "redis"])
def make_budget(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("JOBTRACE_STATE_DIR", str(tmp_path / "state"))
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    endpoint = f"http://127.0.0.1:1/{tmp_path.name}"  # a base of its own per test

    def make(**kwargs: Any) -> Budget:
        budget = budget_for(endpoint, "appBudgetRules001", redis_url=redis_url, **kwargs)
        assert budget.shared_through == request.param
        return budget

    return make


def test_jobtrace_takes_four_slots_and_leaves_the_fifth_to_the_application(make_budget: Any) -> None:
    ours, app = make_budget(), make_budget()
    slots = [ours.reserve() for _ in range(4)]
    assert all(isinstance(s, Slot) for s in slots)
    assert not isinstance(ours.reserve(), Slot)  # jobtrace's share is full
    fifth = app.reserve(application=True)
    assert isinstance(fifth, Slot)
    assert not isinstance(app.reserve(application=True), Slot)  # the base is full


def test_the_application_may_use_the_whole_budget_while_jobtrace_is_idle_and_jobtrace_still_fits_beside(
    make_budget: Any,
) -> None:
    app, ours = make_budget(), make_budget()
    assert all(isinstance(app.reserve(application=True), Slot) for _ in range(4))
    assert isinstance(ours.reserve(), Slot)  # jobtrace's own count is 0 < 4, the base's 4 < 5
    assert not isinstance(ours.reserve(), Slot)
    assert not isinstance(app.reserve(application=True), Slot)


def test_a_slot_is_held_until_a_second_after_its_response(make_budget: Any) -> None:
    budget = make_budget(application_headroom=0)
    slots = [budget.reserve() for _ in range(5)]
    time.sleep(0.3)  # the "requests" take 0.3 s: the window starts at their responses, not when they were sent
    for slot in slots:
        budget.done(slot)
    answered = time.monotonic()
    wait = budget.reserve()
    assert isinstance(wait, float) and 0.9 < wait <= 1.1
    slot = budget.acquire(timeout=3)
    assert slot is not None
    assert time.monotonic() - answered >= 1.0


def test_a_penalty_refuses_every_consumer_of_the_budget(make_budget: Any) -> None:
    ours, app = make_budget(), make_budget()
    ours.penalize(1.5)
    assert 1.0 < app.blocked_for <= 1.5
    assert isinstance(app.reserve(application=True), float)
    started = time.monotonic()
    assert app.acquire(timeout=5, application=True) is not None
    assert time.monotonic() - started >= 1.0


def test_a_redis_url_s_password_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    from jobtrace.sinks.airtable.redis_link import RedisLink, RedisUnavailable

    link = RedisLink("redis://worker:s3cret-passw0rd@127.0.0.1:9/0")  # nothing listens on port 9
    with pytest.raises(RedisUnavailable):
        link.call(lambda client: client.ping())
    assert "redis://127.0.0.1:9/0" in caplog.text
    assert "s3cret-passw0rd" not in caplog.text and "worker" not in caplog.text
    assert "s3cret-passw0rd" not in repr(link)


def test_slots_of_a_process_killed_mid_request_are_freed_at_once_not_at_their_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal
    import subprocess
    import sys

    state = tmp_path / "state"
    monkeypatch.setenv("JOBTRACE_STATE_DIR", str(state))
    endpoint = f"http://127.0.0.1:1/{tmp_path.name}"
    code = (
        "import sys, time\n"
        "from jobtrace.sinks.airtable import budget_for\n"
        f"budget = budget_for({endpoint!r}, 'appBudgetRules001', redis_url='')\n"
        "slots = [budget.reserve() for _ in range(4)]\n"
        "print(sum(1 for s in slots if not isinstance(s, float)), flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "JOBTRACE_STATE_DIR": str(state)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "4"  # four requests "in flight" in the child
        budget = budget_for(endpoint, "appBudgetRules001", redis_url="")
        assert isinstance(budget.reserve(), float)  # jobtrace's share is held by the child
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        assert isinstance(budget.reserve(), Slot)  # the dead process's slots are freed, not kept for 60 s
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("requests_per_second", 0),
        ("requests_per_second", -5),
        ("requests_per_second", float("nan")),
        ("requests_per_second", float("inf")),
        ("requests_per_second", "5"),
        ("application_headroom", -1),
        ("application_headroom", 1.5),
        ("application_headroom", True),
    ],
)
def test_a_bad_budget_setting_is_refused_at_the_sink_s_construction_saying_what_is_expected(
    option: str, value: object, tmp_path: Path
) -> None:
    from jobtrace import ConfigurationError
    from jobtrace.sinks import AirtableSink

    with pytest.raises(ConfigurationError, match=option):
        AirtableSink("patXXXXXXXXXXXXXX", "appBudgetRules001", journal_path=tmp_path / "j", **{option: value})
