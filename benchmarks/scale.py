"""Scale: a job of 10,000 client runs through the AirtableSink's delivery engine.

The emulator runs in a child process with its rate limit off, so this
process's memory is jobtrace's (and pyairtable's) alone; the sink's own
client-side budget is raised to match (``requests_per_second``), so the
figure is the delivery engine's throughput, not Airtable's 5 requests per second.

Two passes of the same job:

1. timed: wall time from the job's start until ``flush()`` returns (every
   record delivered), RSS sampled every tenth of the job, peak RSS;
2. traced: ``tracemalloc`` on, and after every tenth of the job a ``flush()``
   so the sample is taken once that tenth is delivered: memory should stay
   flat but for the job's own per-client roll-up entry (needed to keep the
   job's roll-ups exact).
"""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jobtrace

from ._report import table

BASE_ID = "appBENCHSCALE0001"
REPO = Path(__file__).resolve().parent.parent


@contextmanager
def _emulator_process() -> Iterator[tuple[str, str, int]]:
    """Start ``python -m jobtrace.testing.emulator`` (rate limit off); yield its URL, token and PID."""
    from jobtrace.schema import _DEFAULT_BASE

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobtrace.testing.emulator",
            "--port",
            "0",
            "--no-rate-limit",
            "--base",
            f"{BASE_ID}={_DEFAULT_BASE}",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        info: dict[str, str] = {}
        while "api_key" not in info or "url" not in info:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the emulator process ended before it printed its URL")
            key, _, value = line.strip().partition("=")
            info[key] = value
        yield info["url"], info["api_key"], proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _rss_mib() -> float:
    """Current resident set size (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return _peak_rss_mib()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process so far (Linux /proc; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _job(clients: int, chunks: int, after_chunk: Callable[[int], None]) -> None:
    with jobtrace.tracked_job("bench-scale"):
        per_chunk = max(1, clients // chunks)
        for i in range(clients):
            cid = f"client-{i:05d}"
            with jobtrace.client_run(cid, name=f"Client {cid}") as client:
                for step in (1, 2, 3):
                    client.update(progress=f"step {step} of 3")
                    if step <= 2:
                        client.incr(posts_processed=10, token_usage=1500)
            if (i + 1) % per_chunk == 0:
                after_chunk(i + 1)


def run_scale(clients: int = 10_000, chunks: int = 10, verbose: bool = True) -> dict[str, Any]:
    """Both passes; print the tables; return the figures."""
    from jobtrace.sinks import AirtableSink

    with (
        tempfile.TemporaryDirectory(prefix="jobtrace-bench-") as tmp_dir,
        _emulator_process() as (
            url,
            api_key,
            emulator_pid,
        ),
    ):
        tmp = Path(tmp_dir)

        def configure(name: str) -> AirtableSink:
            sink = AirtableSink(
                api_key=api_key,
                base_id=BASE_ID,
                endpoint_url=url,
                journal_path=tmp / f"{name}.sqlite3",
                requests_per_second=10_000,
            )
            jobtrace.configure(sinks=[sink])
            return sink

        # Pass 1: timed, RSS sampled without waiting for delivery.
        previous = jobtrace.configure(sinks=[jobtrace.sinks.MemorySink()])
        try:
            sink = configure("timed")
            gc.collect()
            rss_start = _rss_mib()
            samples: list[list[object]] = []
            cpu0, emu_cpu0 = time.process_time(), _cpu_seconds(emulator_pid)
            t0 = time.perf_counter()

            def sample_rss(done: int) -> None:
                samples.append([done, time.perf_counter() - t0, _rss_mib(), sink.diagnostics()["backlog"]])

            _job(clients, chunks, sample_rss)
            job_done = time.perf_counter() - t0
            delivered = jobtrace.flush(timeout=600)
            wall = time.perf_counter() - t0
            cpu, emu_cpu = time.process_time() - cpu0, _cpu_seconds(emulator_pid) - emu_cpu0
            diag = sink.diagnostics()
            samples.append(["delivered", wall, _rss_mib(), diag["backlog"]])
            jobtrace.shutdown(timeout=30)

            # Pass 2: tracemalloc, sampled once each tenth is delivered.
            configure("traced")
            gc.collect()
            tracemalloc.start()
            traced: list[list[object]] = []
            base = tracemalloc.get_traced_memory()[0]

            def sample_traced(done: int) -> None:
                jobtrace.flush(timeout=600)
                gc.collect()
                current = tracemalloc.get_traced_memory()[0] - base
                traced.append([done, current / 2**20, current / done])

            try:
                _job(clients, chunks, sample_traced)
                jobtrace.flush(timeout=600)
                gc.collect()
                after_job = tracemalloc.get_traced_memory()[0] - base
            finally:
                tracemalloc.stop()
            traced.append(["job ended, delivered", after_job / 2**20, after_job / clients])
            jobtrace.shutdown(timeout=30)
        finally:
            jobtrace.restore(previous)

    per_run_us = wall / clients * 1e6
    out = table(
        f"Scale: {clients:,} client runs through the AirtableSink writer (emulator in a child process, no rate limit)",
        ["measure", "value"],
        [
            ["time per client run, end to end (job start to everything delivered)", f"{per_run_us:,.0f} us"],
            [
                "job's own time (all client runs queued)",
                f"{job_done:.2f} s ({job_done / clients * 1e6:,.0f} us per client run)",
            ],
            [
                "CPU time of this process (job, writer, pyairtable)",
                f"{cpu:.2f} s ({cpu / clients * 1e6:,.0f} us per client run)",
            ],
            ["CPU time of the emulator process (serving the requests)", f"{emu_cpu:.2f} s"],
            ["wall time until delivered", f"{wall:.2f} s ({'all delivered' if delivered else 'NOT all delivered'})"],
            ["requests", f"{diag['requests']:,} ({diag['requests'] / clients:.3f} per client run)"],
            ["records delivered", f"{diag['records_delivered']:,}"],
            ["RSS before the job", f"{rss_start:.1f} MiB"],
            ["peak RSS of the process", f"{_peak_rss_mib():.1f} MiB"],
        ],
    )
    out += "\n" + table(
        "Scale: RSS while the job runs (pass 1, sampled without waiting for delivery)",
        ["client runs done", "s", "RSS MiB", "backlog (records)"],
        samples,
    )
    out += "\n" + table(
        "Scale: memory once each tenth is delivered (pass 2, tracemalloc, growth since the job started)",
        ["client runs done", "traced MiB", "bytes per client run"],
        traced,
    )
    if verbose:
        print(out)
    return {
        "per_run_us": per_run_us,
        "wall": wall,
        "cpu": cpu,
        "emulator_cpu": emu_cpu,
        "peak_rss_mib": _peak_rss_mib(),
        "rss_samples": samples,
        "traced": traced,
        "text": out,
    }
