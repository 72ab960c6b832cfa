"""Item 8: every number argument of the CLI is validated, with a one-line error and no traceback."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobtrace.argtypes import MAX_SECONDS, non_negative_seconds, port_number, positive_count, positive_seconds
from jobtrace.cli import main

from .conftest import BASE_ID

ENV = {"AIRTABLE_API_KEY": "patNeverUsedHere0", "AIRTABLE_BASE_ID": BASE_ID}
BAD_SECONDS = ["inf", "-inf", "nan", "-1", "1e400", "604801", "soon", "", "0x10"]


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], option: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv, env=ENV)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[-1].startswith("jobtrace") and f"argument {option}: expected" in lines[-1], err
    assert all(line.startswith(("usage:", " ")) for line in lines[:-1]), err  # the rest is the usage line


@pytest.mark.parametrize("value", [*BAD_SECONDS, "0"])
def test_replay_timeout_that_no_wait_can_take_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    _usage_error(capsys, ["replay", f"--timeout={value}"], "--timeout")


@pytest.mark.parametrize("value", ["0", "-3", "1e3", "2.5", "1000001", "many"])
def test_runs_limit_that_is_not_a_sane_count_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    _usage_error(capsys, ["runs", f"--limit={value}"], "--limit")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--port", v) for v in ("-1", "65536", "80.5", "http")] + [("--rate-limit-penalty", v) for v in BAD_SECONDS],
)
def test_emulator_number_options_are_validated(capsys: pytest.CaptureFixture[str], option: str, value: str) -> None:
    _usage_error(capsys, ["emulator", f"{option}={value}"], option)


def test_replay_timeout_inf_from_the_shell_prints_one_line_not_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jobtrace.cli", "replay", "--timeout", "inf"],
        capture_output=True,
        text=True,
        env={**ENV, "PATH": ""},
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("got 'inf'")


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_seconds_accept_exactly_the_finite_waits_up_to_a_week(value: float) -> None:
    usable = math.isfinite(value) and 0 <= value <= MAX_SECONDS
    for parse, zero_ok in ((positive_seconds, False), (non_negative_seconds, True)):
        ok = usable and (value > 0 or zero_ok)
        if ok:
            assert parse(repr(value)) == value
        else:
            with pytest.raises(argparse.ArgumentTypeError):
                parse(repr(value))


@given(st.integers())
def test_counts_and_ports_accept_exactly_their_range(value: int) -> None:
    for parse, low, high in ((positive_count, 1, 1_000_000), (port_number, 0, 65535)):
        if low <= value <= high:
            assert parse(str(value)) == value
        else:
            with pytest.raises(argparse.ArgumentTypeError):
                parse(str(value))
