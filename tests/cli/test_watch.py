"""``jobtrace watch``: rich's recording console for the view, tmux for the real thing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobtrace.schema import Schema, default_base_metadata
from jobtrace.testing import AirtableEmulator

ROOT = Path(__file__).resolve().parents[2]
JOB = Path(__file__).with_name("job_process.py")
BASE = "appWatchTests0001"


def recorded(renderable: Any) -> str:
    from rich.console import Console

    console = Console(record=True, width=100, force_terminal=True, color_system="truecolor")
    console.print(renderable)
    return console.export_text()


def test_the_view_shows_counts_in_flight_progress_notes_and_errors_visibly() -> None:
    from jobtrace._cli_watch import Snapshot, render

    schema = Schema.default()
    job = {
        "Run ID": "260101-120000",
        "Job Type": "post-scoring",
        "Status": "Running",
        "Start Time": "2026-01-01T12:00:00.000Z",
        "Progress": "12 of 50 clients, 1 failed",
        "Clients Processed": 12,
        "Clients Succeeded": 11,
        "Clients Failed": 1,
        "System Notes": "[12:00:00] Started\n[12:00:05] scraped \x1b[31m[bold]red[/bold]\x07",
    }
    running = [{"Client ID": "acme"}, {"Client ID": "globex"}]
    failures = [{"Client ID": "initech", "Status": "Failed", "Errors": "ScoringError: \x1b[2Jboom"}]
    from datetime import datetime, timezone

    now = datetime(2026, 1, 1, 12, 2, 0, tzinfo=timezone.utc)
    text = recorded(render(Snapshot("260101-120000", job, running, failures, time.time()), schema, now))
    assert "12 done: 11 succeeded, 1 failed" in text
    assert "In flight  2: acme, globex" in text
    assert "6.0 clients/min" in text and "Elapsed    2m00s" in text
    assert "12/50" in text and "━" in text  # the progress bar
    assert "scraped ␛[31m[bold]red[/bold]␇" in text  # visible, and not taken as markup
    assert "initech: ScoringError: ␛[2Jboom" in text
    assert "\x1b[2J" not in text and "\x07" not in text


@pytest.fixture
def emulator() -> Iterator[AirtableEmulator]:
    # No rate limit: the job and the watch are separate processes with separate budgets.
    with AirtableEmulator(bases={BASE: default_base_metadata()}, rate_limit=False) as emu:
        yield emu


def env_for(emu: AirtableEmulator, tmp_path: Path) -> dict[str, str]:
    return {
        "AIRTABLE_API_KEY": emu.api_key,
        "AIRTABLE_BASE_ID": BASE,
        "AIRTABLE_ENDPOINT_URL": emu.url,
        "JOBTRACE_JOURNAL": str(tmp_path / "journal.sqlite3"),
        "PYTHONPATH": str(ROOT),
    }


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_watch_in_a_real_terminal_follows_a_real_job_and_prints_the_summary(
    emulator: AirtableEmulator, tmp_path: Path
) -> None:
    env = env_for(emulator, tmp_path)
    job = subprocess.Popen(
        [sys.executable, str(JOB), "6", "0.8"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert job.stdout is not None
    run_id = job.stdout.readline().strip()
    wait_for(lambda: emulator.records(BASE, "Job Tracking"), 10, "the job record")
    socket = f"jobtrace-test-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", socket]
    exports = " ".join(f"-e {k}={v}" for k, v in env.items())
    command = f"{sys.executable} -m jobtrace watch --interval 1; echo WATCH-EXIT=$?; sleep 60"
    subprocess.run([*tmux, "new-session", "-d", "-s", "w", "-x", "110", "-y", "40", *exports.split(), command],
                   check=True)  # fmt: skip

    def screen() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-J", "-t", "w"], capture_output=True, text=True).stdout

    def screen_with(*fragments: str) -> str | None:
        text = screen()
        return text if all(f in text for f in fragments) else None

    try:
        live = wait_for(lambda: screen_with("In flight  1: client-", "/6"), 15, "the view")
        assert f"Job run {run_id}" in live and "post-scoring" in live and "Running" in live
        assert "━" in live  # the progress bar of expect_clients(6)
        assert "Started scoring ␛[31mred␛[0m posts␇" in live
        final = wait_for(lambda: screen_with("WATCH-EXIT="), 30, "the end of the run")
        assert "WATCH-EXIT=0" in final
        assert f"Job run {run_id} ended Completed with Errors" in final
        assert "6 client run(s), 5 succeeded, 1 failed" in final
        assert "failed: initech: ScoringError: scoring API said ␛[2J␛[31mno␇" in final
        assert "initech" in final.split("Latest errors")[-1]
        assert job.wait(timeout=20) == 0
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        if job.poll() is None:
            job.kill()
    # The watch reads sparingly: at most three requests a poll, one poll per --interval (1 s here).
    reads = [r for r in emulator.requests if r.method == "GET" and "/meta/" not in r.path]
    span = reads[-1].time - reads[0].time
    assert 4 <= len(reads) <= 3 * (span + 1) + 1, (len(reads), span)


def test_watch_without_a_running_job_says_so(emulator: AirtableEmulator, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobtrace", "watch"],
        env={**os.environ, **env_for(emulator, tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("jobtrace: error: no running job in base appWatchTests0001")


@pytest.mark.parametrize("interval", ["0", "0.5", "nan", "inf", "1e9", "soon"])
def test_a_bad_interval_is_a_one_line_usage_error(interval: str, capsys: pytest.CaptureFixture[str]) -> None:
    from jobtrace.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["watch", "--interval", interval], env={})
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--interval: expected a number of seconds from 1 to 604800" in err and "Traceback" not in err
