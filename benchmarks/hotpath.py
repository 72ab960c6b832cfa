"""Hot-path overhead: jobtrace's decorator and context managers against OpenTelemetry's SDK.

Every case runs ``iterations`` calls per sample and records three figures per
call, all with ``time.*_ns`` clocks:

- **job thread**: CPU time of the calling thread (``thread_time_ns``): what the
  job itself pays. Since delivery moved to the dispatcher thread, this is the
  figure the targets are about.
- **wall**: elapsed time of the loop (``perf_counter_ns``). It includes the
  time the job waits for the GIL while the dispatcher (and, for the
  AirtableSink, its delivery engine) runs on the other thread.
- **total CPU**: CPU time of the whole process (``process_time_ns``) from the
  loop's start until everything recorded has been handed to the sinks
  (``jobtrace.flush()`` inside the job): the job's thread plus the dispatcher.
  For the AirtableSink it also holds the delivery engine's HTTP work (not a target).

Samples of all cases are interleaved (round robin) so that load from other
processes hits every case alike. Sinks and the span exporter are emptied
between samples, outside the timed loop, so memory does not grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import structlog

import jobtrace
from jobtrace.sinks import LogSink, MemorySink

from ._report import table, verdict

REPO = Path(__file__).resolve().parent.parent

#: The job thread's cost of a client run may be at most this share of an OpenTelemetry span ...
SPAN_SHARE_TARGET = 1 / 6
#: ... and at most this many nanoseconds ...
CLIENT_RUN_TARGET_NS = 2_500
#: ... and the whole process's CPU per client run (job thread + delivery to a MemorySink) at most this share.
TOTAL_SHARE_TARGET = 1 / 2

_thread_ns = time.thread_time_ns
_wall_ns = time.perf_counter_ns
_cpu_ns = time.process_time_ns


class Sample(NamedTuple):
    """One sample's figures, in ns per call."""

    wall: float
    thread: float
    total: float


@dataclass
class Case:
    """One timed case: ``run(n)`` performs n calls and returns (wall, job thread, total CPU) ns in all."""

    group: str
    name: str
    run: Callable[[int], tuple[int, int, int]]
    baseline: str
    samples: list[Sample] = field(default_factory=list)
    iterations: int | None = None
    """Calls per sample, when not the run's (the AirtableSink cases: their delivery is HTTP to the emulator)."""

    def median(self, what: str = "wall") -> float:
        return statistics.median(getattr(s, what) for s in self.samples)

    def min(self, what: str = "wall") -> float:
        return min(getattr(s, what) for s in self.samples)


def _null_structlog_logger() -> Any:
    """A structlog logger that merges the bound context vars, then drops the event."""

    def drop(logger: Any, method: str, event: Any) -> Any:
        raise structlog.DropEvent

    return structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[structlog.contextvars.merge_contextvars, drop],
    )


def _client_ids(n: int) -> list[str]:
    return [f"client-{i:06d}" for i in range(n)]


class _Clocks:
    """Reads the three clocks at the start of a loop and at its end (the end of delivery for total CPU)."""

    __slots__ = ("cpu0", "thread0", "thread1", "wall0", "wall1")

    def start(self) -> None:
        self.cpu0 = _cpu_ns()
        self.thread0 = _thread_ns()
        self.wall0 = _wall_ns()

    def stop(self) -> None:
        self.wall1 = _wall_ns()
        self.thread1 = _thread_ns()

    def result(self) -> tuple[int, int, int]:
        return (self.wall1 - self.wall0, self.thread1 - self.thread0, _cpu_ns() - self.cpu0)


# -- baselines -------------------------------------------------------------------


def _bare_call_case() -> Callable[[int], tuple[int, int, int]]:
    def fn() -> None:
        return None

    def run(n: int) -> tuple[int, int, int]:
        rng = range(n)
        clocks = _Clocks()
        clocks.start()
        for _ in rng:
            fn()
        clocks.stop()
        return clocks.result()

    return run


def _bare_await_case() -> Callable[[int], tuple[int, int, int]]:
    async def fn() -> None:
        return None

    async def loop(n: int) -> tuple[int, int, int]:
        rng = range(n)
        clocks = _Clocks()
        clocks.start()
        for _ in rng:
            await fn()
        clocks.stop()
        return clocks.result()

    return lambda n: asyncio.run(loop(n))


# -- jobtrace --------------------------------------------------------------------


def _jobtrace_cases(
    sink_factory: Callable[[], jobtrace.sinks.Sink],
    label: str,
    ids: list[str],
    decorators: bool = True,
    iterations: int | None = None,
) -> list[Case]:
    """The jobtrace cases, each sample run under its own configuration with a fresh (or emptied) sink."""

    def configured(body: Callable[[int], tuple[int, int, int]]) -> Callable[[int], tuple[int, int, int]]:
        def run(n: int) -> tuple[int, int, int]:
            sink = sink_factory()
            previous = jobtrace.configure(sinks=[sink])
            try:
                return body(n)
            finally:
                jobtrace.flush(60)
                jobtrace.restore(previous)
                if isinstance(sink, MemorySink):
                    sink.clear()

        return run

    @jobtrace.tracked_job("bench")
    def job_sync() -> None:
        return None

    @jobtrace.tracked_job("bench")
    async def job_async() -> None:
        return None

    def tracked_sync(n: int) -> tuple[int, int, int]:
        rng = range(n)
        clocks = _Clocks()
        clocks.start()
        for _ in rng:
            job_sync()
        clocks.stop()
        return clocks.result()

    async def tracked_async_loop(n: int) -> tuple[int, int, int]:
        rng = range(n)
        clocks = _Clocks()
        clocks.start()
        for _ in rng:
            await job_async()
        clocks.stop()
        return clocks.result()

    def client_sync(n: int) -> tuple[int, int, int]:
        client_ids = ids[:n]
        client_run = jobtrace.client_run
        clocks = _Clocks()
        with jobtrace.tracked_job("bench"):
            clocks.start()
            for cid in client_ids:
                with client_run(cid) as client:
                    client.incr(posts_processed=1)
            clocks.stop()
            jobtrace.flush(60)  # total CPU: until the dispatcher has handed everything over
            return clocks.result()

    async def client_async_loop(n: int) -> tuple[int, int, int]:
        client_ids = ids[:n]
        client_run = jobtrace.client_run
        clocks = _Clocks()
        async with jobtrace.tracked_job("bench"):
            clocks.start()
            for cid in client_ids:
                async with client_run(cid) as client:
                    client.incr(posts_processed=1)
            clocks.stop()
            jobtrace.flush(60)
            return clocks.result()

    cases = []
    if decorators:
        cases += [
            Case(label, "@tracked_job, sync function", configured(tracked_sync), "bare call"),
            Case(
                label,
                "@tracked_job, async function",
                configured(lambda n: asyncio.run(tracked_async_loop(n))),
                "bare await",
            ),
        ]
    return [
        *cases,
        Case(label, "with client_run(...) + incr", configured(client_sync), "bare call", iterations=iterations),
        Case(
            label,
            "async with client_run(...) + incr",
            configured(lambda n: asyncio.run(client_async_loop(n))),
            "bare await",
            iterations=iterations,
        ),
    ]


# -- OpenTelemetry ----------------------------------------------------------------


def _otel_cases() -> list[Case]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("jobtrace-bench")

    @tracer.start_as_current_span("job")
    def job_sync() -> None:
        return None

    @tracer.start_as_current_span("job")
    async def job_async() -> None:
        return None

    def cleared(body: Callable[[int], tuple[int, int, int]]) -> Callable[[int], tuple[int, int, int]]:
        def run(n: int) -> tuple[int, int, int]:
            try:
                return body(n)
            finally:
                exporter.clear()

        return run

    def deco_sync(n: int) -> tuple[int, int, int]:
        rng = range(n)
        clocks = _Clocks()
        clocks.start()
        for _ in rng:
            job_sync()
        clocks.stop()
        return clocks.result()

    async def deco_async_loop(n: int) -> tuple[int, int, int]:
        rng = range(n)
        clocks = _Clocks()
        clocks.start()
        for _ in rng:
            await job_async()
        clocks.stop()
        return clocks.result()

    def cm_sync(n: int) -> tuple[int, int, int]:
        rng = range(n)
        span_cm = tracer.start_as_current_span
        clocks = _Clocks()
        with span_cm("job"):
            clocks.start()
            for _ in rng:
                with span_cm("client") as span:
                    span.set_attribute("posts_processed", 1)
            clocks.stop()
            return clocks.result()

    async def cm_async_loop(n: int) -> tuple[int, int, int]:
        # OpenTelemetry has no `async with`: its context manager used inside a coroutine.
        rng = range(n)
        span_cm = tracer.start_as_current_span
        clocks = _Clocks()
        with span_cm("job"):
            clocks.start()
            for _ in rng:
                with span_cm("client") as span:
                    span.set_attribute("posts_processed", 1)
            clocks.stop()
            return clocks.result()

    label = "OpenTelemetry SDK"
    return [
        Case(label, "@start_as_current_span, sync function", cleared(deco_sync), "bare call"),
        Case(
            label,
            "@start_as_current_span, async function",
            cleared(lambda n: asyncio.run(deco_async_loop(n))),
            "bare await",
        ),
        Case(label, "with start_as_current_span + set_attribute", cleared(cm_sync), "bare call"),
        Case(label, "same, inside a coroutine", cleared(lambda n: asyncio.run(cm_async_loop(n))), "bare await"),
    ]


def otel_available() -> bool:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


def airtable_available() -> bool:
    try:
        import pyairtable  # noqa: F401
    except ImportError:
        return False
    return True


AIRTABLE_LABEL = "jobtrace + AirtableSink (emulator process)"
MEMORY_LABEL = "jobtrace + MemorySink"
LOG_LABEL = "jobtrace + LogSink (null logger)"


@contextlib.contextmanager
def _airtable_sink_factory() -> Iterator[Callable[[], jobtrace.sinks.Sink]]:
    """One AirtableSink writing to an emulator in a child process (rate limit off), reused by every sample."""
    from jobtrace.sinks import AirtableSink

    from .scale import BASE_ID, _emulator_process

    with tempfile.TemporaryDirectory(prefix="jobtrace-hotpath-") as tmp, _emulator_process() as (url, key, _):
        sink = AirtableSink(
            api_key=key,
            base_id=BASE_ID,
            endpoint_url=url,
            journal_path=Path(tmp) / "journal.sqlite3",
            check_schema=False,
            requests_per_second=10_000,
        )
        try:
            yield lambda: sink
        finally:
            sink.close(30)


# -- running ---------------------------------------------------------------------


def build_cases(iterations: int, airtable: Callable[[], jobtrace.sinks.Sink] | None = None) -> list[Case]:
    ids = _client_ids(iterations)
    cases = [
        Case("baseline", "bare function call", _bare_call_case(), "bare call"),
        Case("baseline", "bare await", _bare_await_case(), "bare await"),
    ]
    cases += _jobtrace_cases(MemorySink, MEMORY_LABEL, ids)
    cases += _jobtrace_cases(lambda: LogSink(logger=_null_structlog_logger()), LOG_LABEL, ids)
    if airtable is not None:
        # A fiftieth of the calls: every sample's records are delivered (HTTP, to an emulator whose
        # upserts scan its table) before the next sample starts.
        cases += _jobtrace_cases(airtable, AIRTABLE_LABEL, ids, decorators=False, iterations=max(20, iterations // 50))
    if otel_available():
        cases += _otel_cases()
    return cases


def run_hotpath(
    iterations: int = 20_000, samples: int = 7, verbose: bool = True, airtable: bool | None = None
) -> dict[str, Any]:
    """Time every case; print the table and the targets; return the figures.

    ``airtable`` (default: when pyairtable is installed) adds the AirtableSink
    cases, against the emulator in a child process.
    """
    with contextlib.ExitStack() as stack:
        factory = None
        if airtable if airtable is not None else airtable_available():
            factory = stack.enter_context(_airtable_sink_factory())
        return _run_cases(build_cases(iterations, factory), iterations, samples, verbose)


def _run_cases(cases: list[Case], iterations: int, samples: int, verbose: bool) -> dict[str, Any]:
    gc_was_enabled = gc.isenabled()
    for case in cases:  # warm-up: first calls, caches, imports
        case.run(min(iterations, 200))
    try:
        for _ in range(samples):
            for case in cases:
                gc.collect()
                gc.disable()  # collections would land on whichever case happens to allocate past the threshold
                try:
                    n = case.iterations or iterations
                    wall, thread, total = case.run(n)
                    case.samples.append(Sample(wall / n, thread / n, total / n))
                finally:
                    if gc_was_enabled:
                        gc.enable()
    finally:
        if gc_was_enabled:
            gc.enable()

    by_name = {c.name: c for c in cases}
    bases = {"bare call": by_name["bare function call"].median(), "bare await": by_name["bare await"].median()}
    rows = []
    for c in cases:
        rows.append(
            [
                f"{c.group}: {c.name}",
                c.median("thread"),
                c.min("thread"),
                c.median(),
                c.min(),
                c.median("total"),
                c.min("total"),
                f"{c.median('thread') / bases[c.baseline]:.0f}x {c.baseline}",
            ]
        )
    figures: dict[str, Any] = {
        "iterations": iterations,
        "samples": samples,
        "cases": {
            f"{c.group}: {c.name}": {
                "median_ns": c.median(),
                "min_ns": c.min(),
                "thread_median_ns": c.median("thread"),
                "thread_min_ns": c.min("thread"),
                "total_median_ns": c.median("total"),
                "total_min_ns": c.min("total"),
            }
            for c in cases
        },
    }
    out = table(
        f"Hot path, ns per call ({samples} samples x {iterations:,} calls, AirtableSink cases"
        f" {max(20, iterations // 50):,}; medians and mins)",
        [
            "case",
            "job thread med",
            "min",
            "wall med",
            "min",
            "total CPU med",
            "min",
            "job thread vs baseline",
        ],
        rows,
    )
    checks: list[list[object]] = []
    if otel_available():
        spans = {
            "sync": by_name["with start_as_current_span + set_attribute"],
            "async": by_name["same, inside a coroutine"],
        }
        names = {"sync": "with client_run(...) + incr", "async": "async with client_run(...) + incr"}
        groups = [g for g in (MEMORY_LABEL, LOG_LABEL, AIRTABLE_LABEL) if any(c.group == g for c in cases)]
        for group in groups:
            suffix = "" if group == MEMORY_LABEL else f" [{group.split(' + ')[1].split(' ')[0]}]"
            for label in ("sync", "async"):
                ours, span = by_name_of(cases, group, names[label]), spans[label]
                share = ours.median("thread") / span.median("thread")
                checks.append(
                    [
                        f"client run ({label}) <= 1/6 of an OTel span{suffix}",
                        f"job thread {ours.median('thread'):,.0f} / {span.median('thread'):,.0f} ns"
                        f" = 1/{1 / share:.1f} (mins: 1/{span.min('thread') / ours.min('thread'):.1f})",
                        verdict(share <= SPAN_SHARE_TARGET),
                    ]
                )
                figures[f"span_share_{label}{suffix}"] = share
        for label in ("sync", "async"):
            ours, span = by_name_of(cases, MEMORY_LABEL, names[label]), spans[label]
            checks.append(
                [
                    f"client run ({label}) < 2.5 us",
                    f"job thread {ours.median('thread'):,.0f} ns ({CLIENT_RUN_TARGET_NS / ours.median('thread'):.2f}x)",
                    verdict(ours.median("thread") < CLIENT_RUN_TARGET_NS),
                ]
            )
            share = ours.median("total") / span.median("total")
            checks.append(
                [
                    f"client run ({label}) total CPU <= 1/2 of an OTel span",
                    f"{ours.median('total'):,.0f} / {span.median('total'):,.0f} ns = 1/{1 / share:.1f}"
                    f" (mins: 1/{span.min('total') / ours.min('total'):.1f})",
                    verdict(share <= TOTAL_SHARE_TARGET),
                ]
            )
            figures[f"total_share_{label}"] = share
        title = "Hot-path targets (job thread CPU and total CPU, medians)"
        out += "\n" + table(title, ["target", "measured", "verdict"], checks)
    figures["checks"] = checks
    if verbose:
        print(out)
    figures["text"] = out
    return figures


def by_name_of(cases: list[Case], group: str, name: str) -> Case:
    return next(c for c in cases if c.group == group and c.name == name)


# -- retained memory ----------------------------------------------------------------


def _retained(body: Callable[[], Any], n: int) -> float:
    """Bytes still allocated per item after ``body()`` built n items and returned what holds them."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        holder = body()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del holder
    return (after - before) / n


def run_memory(n: int = 5_000, verbose: bool = True) -> dict[str, Any]:
    """Retained bytes per finished client run (MemorySink) and per span held by InMemorySpanExporter."""
    ids = _client_ids(n)

    def jobtrace_runs() -> Any:
        sink = MemorySink()
        previous = jobtrace.configure(sinks=[sink])
        try:
            with jobtrace.tracked_job("bench"):
                for cid in ids:
                    with jobtrace.client_run(cid) as client:
                        client.incr(posts_processed=1)
            # Lets go of held-back roll-ups (and the finished job they belong to) now,
            # not at the refresher's next tick: what stays is what a finished run costs.
            jobtrace.flush()
        finally:
            jobtrace.restore(previous)
        return sink

    # Warm caches (schema lookups, interned strings) outside the measurement.
    jobtrace_runs()
    rows: list[list[object]] = []
    ours = _retained(jobtrace_runs, n)
    rows.append(["jobtrace: finished client run in MemorySink", ours])
    figures: dict[str, Any] = {"n": n, "jobtrace_bytes": ours}
    if otel_available():
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        def otel_spans() -> Any:
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            tracer = provider.get_tracer("jobtrace-bench")
            with tracer.start_as_current_span("job"):
                for _ in range(n):
                    with tracer.start_as_current_span("client") as span:
                        span.set_attribute("posts_processed", 1)
            return (exporter, provider)

        otel_spans()
        theirs = _retained(otel_spans, n)
        rows.append(["OpenTelemetry: finished span in InMemorySpanExporter", theirs])
        rows.append(["ratio (jobtrace / OpenTelemetry)", ours / theirs])
        figures["otel_bytes"] = theirs
    out = table(f"Retained memory, bytes per finished run ({n:,} runs, tracemalloc)", ["what", "bytes"], rows)
    if verbose:
        print(out)
    figures["text"] = out
    return figures


# -- import time -------------------------------------------------------------------


_IMPORTTIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s*(\S+)\s*$")


def _import_us(module: str) -> int:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure imports from bytecode, as a user's would be
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    for line in proc.stderr.splitlines():
        m = _IMPORTTIME.match(line)
        if m and m.group(3) == module:
            return int(m.group(2))
    raise RuntimeError(f"no importtime line for {module}")


def _heavy_modules_loaded() -> list[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    code = (
        "import sys, jobtrace; print(' '.join(m for m in ('pyairtable', 'requests', 'pydantic') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return proc.stdout.split()


def run_imports(runs: int = 7, verbose: bool = True) -> dict[str, Any]:
    """Median cumulative import time of jobtrace and structlog, each in fresh interpreters."""
    for module in ("jobtrace", "structlog"):
        _import_us(module)  # warm-up, writes bytecode caches
    results = {m: statistics.median(_import_us(m) for _ in range(runs)) for m in ("jobtrace", "structlog")}
    heavy = _heavy_modules_loaded()
    rows = [
        ["import jobtrace", results["jobtrace"], f"{results['jobtrace'] / results['structlog']:.2f}x structlog"],
        ["import structlog", results["structlog"], "1.00x"],
    ]
    out = table(f"Import time, cumulative us (median of {runs} fresh interpreters)", ["import", "us", "ratio"], rows)
    out += f"import jobtrace loads pyairtable/requests/pydantic: {', '.join(heavy) if heavy else 'none of them'}\n"
    if verbose:
        print(out)
    return {"jobtrace_us": results["jobtrace"], "structlog_us": results["structlog"], "heavy": heavy, "text": out}
