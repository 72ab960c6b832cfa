"""Fixtures for several jobtrace processes and "hosts" on one base: the emulator, a real redis-server, job processes.

A "host" is a state directory of its own (its run-ID claims, its request
budget file, its journal): processes of one host share it, processes of two
hosts do not, and only Redis (when given) connects them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jobtrace.schema import default_base_metadata
from jobtrace.testing import AirtableEmulator

BASE_ID = "appMultiProcess01"
JOBS = "Job Tracking"
CLIENTS = "Client Run Results"
REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("job_process.py")


@pytest.fixture
def emulator() -> Iterator[AirtableEmulator]:
    """The default base with Airtable's rate limit on (5/s per base); a 429 refuses the base for 2 s."""
    with AirtableEmulator(bases={BASE_ID: default_base_metadata()}, rate_limit=True, rate_limit_penalty=2.0) as emu:
        yield emu


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A real ``redis-server`` on 127.0.0.1 at a free port, without persistence; restartable on the same port."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; CI installs it)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@dataclass
class JobProcess:
    proc: subprocess.Popen[str]
    host: str
    result: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""


class Hosts:
    """Starts job processes on named "hosts" against the emulator; see the module docstring."""

    def __init__(self, emulator: AirtableEmulator, root: Path) -> None:
        self.emulator = emulator
        self.root = root
        self.procs: list[JobProcess] = []

    def env(self, host: str, redis_url: str | None = None) -> dict[str, str]:
        state = self.root / host
        env = {
            **os.environ,
            "AIRTABLE_API_KEY": self.emulator.api_key,
            "AIRTABLE_BASE_ID": BASE_ID,
            "AIRTABLE_ENDPOINT_URL": self.emulator.url,
            "JOBTRACE_STATE_DIR": str(state),
            "JOBTRACE_JOURNAL": str(state / "journal.sqlite3"),
            "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
        env.pop("JOBTRACE_REDIS_URL", None)
        if redis_url:
            env["JOBTRACE_REDIS_URL"] = redis_url
        return env

    def spawn(self, host: str, spec: dict[str, Any], redis_url: str | None = None) -> JobProcess:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(host, redis_url),
        )
        job = JobProcess(proc, host)
        self.procs.append(job)
        return job

    def start_together(self, jobs: list[JobProcess], delay: float = 0.3) -> float:
        """Wait until every process is configured, then have them all start their job at one instant."""
        for job in jobs:
            assert job.proc.stdout is not None
            line = job.proc.stdout.readline()
            if line.strip() != "ready":
                _, err = job.proc.communicate(timeout=10)
                raise AssertionError(f"job process failed to start: {line!r}\n{err}")
        # Early in a second, so that every process starts in the same one.
        start = time.time() + delay
        start = float(int(start) + 1) + 0.05 if start % 1 > 0.5 else start
        for job in jobs:
            assert job.proc.stdin is not None
            job.proc.stdin.write(f"{start}\n")
            job.proc.stdin.flush()
        return start

    def wait(self, jobs: list[JobProcess], timeout: float = 90.0) -> list[dict[str, Any]]:
        for job in jobs:
            out, err = job.proc.communicate(timeout=timeout)
            job.stderr = err
            assert job.proc.returncode == 0, f"job process failed ({job.proc.returncode}):\n{err}"
            job.result = json.loads(out.strip().splitlines()[-1])
        return [job.result for job in jobs]

    def close(self) -> None:
        for job in self.procs:
            if job.proc.poll() is None:
                job.proc.kill()
                job.proc.communicate(timeout=5)


@pytest.fixture
def hosts(emulator: AirtableEmulator, tmp_path: Path) -> Iterator[Hosts]:
    made = Hosts(emulator, tmp_path / "hosts")
    yield made
    made.close()


def records_by_key(emulator: AirtableEmulator) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Job records by Run ID, client records by client Run ID; fails on any duplicate."""
    jobs: dict[str, dict[str, Any]] = {}
    for record in emulator.records(BASE_ID, JOBS):
        run_id = record["fields"]["Run ID"]
        assert run_id not in jobs, f"two job records for run {run_id}"
        jobs[run_id] = record["fields"]
    clients: dict[str, dict[str, Any]] = {}
    for record in emulator.records(BASE_ID, CLIENTS):
        key = record["fields"]["Run ID"]
        assert key not in clients, f"two client records for {key}"
        clients[key] = record["fields"]
    return jobs, clients
