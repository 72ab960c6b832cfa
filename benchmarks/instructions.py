"""Hot-path cost in CPU instructions (valgrind's callgrind): a figure machine load does not move.

Timing on a shared machine is noisy; instruction counts are not. Each case runs
in a child interpreter under ``valgrind --tool=callgrind --separate-threads=yes``
twice, with 0 and with ``N`` calls after the same warm-up, and the difference
divided by ``N`` is the cost of one call: on the **job thread** (the thread
making the calls, callgrind's thread 1) and in **all threads** (the job thread
plus the dispatcher delivering to the sink, and jobtrace's roll-up refresher).

    python -m benchmarks.instructions [--calls 3000]

Needs ``valgrind`` (``apt-get install valgrind``) and OpenTelemetry's SDK for
the span (``benchmarks/requirements.txt``). About two minutes. Instruction
counts say nothing of cache misses or of the GIL hand-over between the job's
thread and the dispatcher, which the timed ``hotpath`` section holds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ._report import table

REPO = Path(__file__).resolve().parent.parent

_CHILD = r"""
import asyncio, gc, os, sys
n, case = int(sys.argv[1]), sys.argv[2]
gc.disable()
if case == "span":
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    span = provider.get_tracer("bench").start_as_current_span
    with span("job"):
        for i in range(50 + n):
            with span("client") as s:
                s.set_attribute("posts_processed", 1)
    os._exit(0)
import structlog
import jobtrace
from jobtrace.sinks import LogSink, MemorySink
if case.startswith("log"):
    def drop(logger, method, event):
        raise structlog.DropEvent
    sink = LogSink(logger=structlog.wrap_logger(
        structlog.ReturnLogger(), processors=[structlog.contextvars.merge_contextvars, drop]))
else:
    sink = MemorySink()
jobtrace.configure(sinks=[sink])
client_run = jobtrace.client_run
warm = [f"warm-{i:06d}" for i in range(50)]
ids = [f"client-{i:06d}" for i in range(n)]
def loop(ids):
    for cid in ids:
        with client_run(cid) as client:
            client.incr(posts_processed=1)
async def aloop(ids):
    for cid in ids:
        async with client_run(cid) as client:
            client.incr(posts_processed=1)
async def amain():
    async with jobtrace.tracked_job("bench"):
        await aloop(warm)
        jobtrace.flush()
        await aloop(ids)
        jobtrace.flush()
        os._exit(0)
if case.endswith("async"):
    asyncio.run(amain())
with jobtrace.tracked_job("bench"):
    loop(warm)
    jobtrace.flush()
    loop(ids)
    jobtrace.flush()  # all threads: until the dispatcher has handed everything over
    os._exit(0)
"""

CASES = [
    ("with client_run(...) + incr, MemorySink", "memory"),
    ("async with client_run(...) + incr, MemorySink", "memory-async"),
    ("with client_run(...) + incr, LogSink (null logger)", "log"),
    ("OpenTelemetry SDK: with start_as_current_span + set_attribute", "span"),
]


def _count(calls: int, case: str, tmp: Path) -> tuple[int, int]:
    """(job thread, all threads) instructions of one child run."""
    out = tmp / f"cg.{case}.{calls}"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-c",
            _CHILD,
            str(calls),
            case,
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    per_thread = {}
    for path in tmp.glob(f"{out.name}-*"):
        for line in path.read_text().splitlines():
            if line.startswith("summary:"):
                per_thread[path.name] = int(line.split()[1])
        path.unlink()
    first = min(per_thread)  # <file>-01: the main thread
    return per_thread[first], sum(per_thread.values())


def run_instructions(calls: int = 3000, verbose: bool = True) -> dict[str, tuple[float, float]]:
    """Instructions per call, job thread and all threads, for each case."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    figures: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="jobtrace-instructions-") as tmp:
        for label, case in CASES:
            job0, all0 = _count(0, case, Path(tmp))
            job1, all1 = _count(calls, case, Path(tmp))
            figures[label] = ((job1 - job0) / calls, (all1 - all0) / calls)
    span = figures[CASES[-1][0]][0]
    rows = [
        [label, job, total, f"1/{span / job:.1f}", f"1/{span / total:.1f}"] for label, (job, total) in figures.items()
    ]
    out = table(
        f"Hot path, CPU instructions per call (callgrind, {calls:,} calls)",
        ["case", "job thread", "all threads", "job thread vs span", "all threads vs span"],
        rows,
    )
    if verbose:
        print(out)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    run_instructions(parser.parse_args().calls)


if __name__ == "__main__":
    main()
