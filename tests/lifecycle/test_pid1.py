"""A job running as PID 1 (a container's entrypoint), in a real PID namespace where the host allows one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jobtrace.testing import AirtableEmulator

from .conftest import CLIENTS, JOBS, by_client, child_env, records, wait_for_line


def _pid1_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return probe.returncode == 0 and probe.stdout.strip() == "1"


pytestmark = pytest.mark.skipif(not _pid1_available(), reason="no PID namespaces here (unshare --pid)")


def _as_pid1(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child=SIGKILL",
            sys.executable,
            "-c",
            textwrap.dedent(code),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _inner_pid(proc: subprocess.Popen[str]) -> int:
    """The outside PID of the process that is PID 1 inside (unshare's child)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return int(children[0])


JOB = """
    import os, time
    import jobtrace
    jobtrace.configure_from_env()
    print("pid", os.getpid(), flush=True)
    with jobtrace.tracked_job("pid-1") as job:
        for i in range(5):
            with jobtrace.client_run(f"done-{i}") as client:
                client.incr(posts_processed=1)
        with jobtrace.client_run("in-flight"):
            time.sleep(0.5)
            print("ready", flush=True)
            time.sleep(60)
"""

NEXT_START = """
    import os, time
    import jobtrace
    jobtrace.configure_from_env()
    print("pid", os.getpid(), flush=True)
    time.sleep(60)   # the sink delivers the dead PID 1's leftovers and closes its runs meanwhile
"""


def test_a_job_killed_as_pid_1_is_recovered_by_the_next_start_as_pid_1(
    emulator: AirtableEmulator, journal_path: Path
) -> None:
    env = child_env(emulator, journal_path)
    emulator.set_down(True)
    first = _as_pid1(JOB, env)
    assert wait_for_line(first, "pid") == "1"
    wait_for_line(first, "ready")
    os.kill(_inner_pid(first), signal.SIGKILL)
    first.wait(10)
    emulator.set_down(False)
    second = _as_pid1(NEXT_START, env)
    assert wait_for_line(second, "pid") == "1"  # the same PID as the dead owner: it must not look alive
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        jobs, clients = records(emulator, JOBS), records(emulator, CLIENTS)
        if jobs and jobs[0].get("Status") == "Interrupted" and all(f["Status"] != "Running" for f in clients):
            break
        time.sleep(0.1)
    second.kill()
    second.communicate(timeout=30)
    [job] = records(emulator, JOBS)
    clients = by_client(emulator)
    assert job["Status"] == "Interrupted"
    assert {c: f["Status"] for c, f in clients.items()} == {
        **{f"done-{i}": "Completed" for i in range(5)},
        "in-flight": "Interrupted",
    }
    assert job["Clients Processed"] == 5


def test_sigterm_to_pid_1_ends_its_runs_and_exits_143(emulator: AirtableEmulator, journal_path: Path) -> None:
    proc = _as_pid1(JOB, child_env(emulator, journal_path))
    assert wait_for_line(proc, "pid") == "1"
    wait_for_line(proc, "ready")
    start = time.monotonic()
    os.kill(_inner_pid(proc), signal.SIGTERM)
    proc.communicate(timeout=30)
    assert time.monotonic() - start < 10
    assert proc.returncode == 143  # PID 1 ignores its own SIGTERM: jobtrace exits with 143 itself
    [job] = records(emulator, JOBS)
    [client] = [f for f in records(emulator, CLIENTS) if f["Client ID"] == "in-flight"]
    assert (job["Status"], client["Status"]) == ("Interrupted", "Interrupted")
    assert "SIGTERM" in job["System Notes"].splitlines()[-1]
