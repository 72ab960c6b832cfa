"""Hot-path overhead: jobtrace's decorator and context managers against OpenTelemetry's SDK.

Every case runs ``iterations`` calls per sample, timed with ``perf_counter_ns``;
samples of all cases are interleaved (round robin) so that load from other
processes hits every case alike. Sinks and the span exporter are emptied
between samples, outside the timed loop, so memory does not grow without bound.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

import jobtrace
from jobtrace.sinks import LogSink, MemorySink

from ._report import table, verdict

REPO = Path(__file__).resolve().parent.parent

#: A client run may cost at most this share of an OpenTelemetry span ...
SPAN_SHARE_TARGET = 1 / 6
#: ... and at most this many nanoseconds.
CLIENT_RUN_TARGET_NS = 2_500


@dataclass
class Case:
    """One timed case: ``run(n)`` performs n calls and returns the elapsed nanoseconds."""

    group: str
    name: str
    run: Callable[[int], int]
    baseline: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)


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


# -- baselines -------------------------------------------------------------------


def _bare_call_case() -> Callable[[int], int]:
    def fn() -> None:
        return None

    def run(n: int) -> int:
        rng = range(n)
        t0 = time.perf_counter_ns()
        for _ in rng:
            fn()
        return time.perf_counter_ns() - t0

    return run


def _bare_await_case() -> Callable[[int], int]:
    async def fn() -> None:
        return None

    async def loop(n: int) -> int:
        rng = range(n)
        t0 = time.perf_counter_ns()
        for _ in rng:
            await fn()
        return time.perf_counter_ns() - t0

    return lambda n: asyncio.run(loop(n))


# -- jobtrace --------------------------------------------------------------------


def _jobtrace_cases(sink_factory: Callable[[], jobtrace.sinks.Sink], label: str, ids: list[str]) -> list[Case]:
    """The four jobtrace cases, each run under its own configuration with a fresh sink."""

    def configured(body: Callable[[int], int]) -> Callable[[int], int]:
        def run(n: int) -> int:
            sink = sink_factory()
            previous = jobtrace.configure(sinks=[sink])
            try:
                return body(n)
            finally:
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

    def tracked_sync(n: int) -> int:
        rng = range(n)
        t0 = time.perf_counter_ns()
        for _ in rng:
            job_sync()
        return time.perf_counter_ns() - t0

    async def tracked_async_loop(n: int) -> int:
        rng = range(n)
        t0 = time.perf_counter_ns()
        for _ in rng:
            await job_async()
        return time.perf_counter_ns() - t0

    def client_sync(n: int) -> int:
        client_ids = ids[:n]
        client_run = jobtrace.client_run
        with jobtrace.tracked_job("bench"):
            t0 = time.perf_counter_ns()
            for cid in client_ids:
                with client_run(cid) as client:
                    client.incr(posts_processed=1)
            return time.perf_counter_ns() - t0

    async def client_async_loop(n: int) -> int:
        client_ids = ids[:n]
        client_run = jobtrace.client_run
        async with jobtrace.tracked_job("bench"):
            t0 = time.perf_counter_ns()
            for cid in client_ids:
                async with client_run(cid) as client:
                    client.incr(posts_processed=1)
            return time.perf_counter_ns() - t0

    return [
        Case(label, "@tracked_job, sync function", configured(tracked_sync), "bare call"),
        Case(
            label,
            "@tracked_job, async function",
            configured(lambda n: asyncio.run(tracked_async_loop(n))),
            "bare await",
        ),
        Case(label, "with client_run(...) + incr", configured(client_sync), "bare call"),
        Case(
            label,
            "async with client_run(...) + incr",
            configured(lambda n: asyncio.run(client_async_loop(n))),
            "bare await",
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

    def cleared(body: Callable[[int], int]) -> Callable[[int], int]:
        def run(n: int) -> int:
            try:
                return body(n)
            finally:
                exporter.clear()

        return run

    def deco_sync(n: int) -> int:
        rng = range(n)
        t0 = time.perf_counter_ns()
        for _ in rng:
            job_sync()
        return time.perf_counter_ns() - t0

    async def deco_async_loop(n: int) -> int:
        rng = range(n)
        t0 = time.perf_counter_ns()
        for _ in rng:
            await job_async()
        return time.perf_counter_ns() - t0

    def cm_sync(n: int) -> int:
        rng = range(n)
        span_cm = tracer.start_as_current_span
        with span_cm("job"):
            t0 = time.perf_counter_ns()
            for _ in rng:
                with span_cm("client") as span:
                    span.set_attribute("posts_processed", 1)
            return time.perf_counter_ns() - t0

    async def cm_async_loop(n: int) -> int:
        # OpenTelemetry has no `async with`: its context manager used inside a coroutine.
        rng = range(n)
        span_cm = tracer.start_as_current_span
        with span_cm("job"):
            t0 = time.perf_counter_ns()
            for _ in rng:
                with span_cm("client") as span:
                    span.set_attribute("posts_processed", 1)
            return time.perf_counter_ns() - t0

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


# -- running ---------------------------------------------------------------------


def build_cases(iterations: int) -> list[Case]:
    ids = _client_ids(iterations)
    cases = [
        Case("baseline", "bare function call", _bare_call_case(), "bare call"),
        Case("baseline", "bare await", _bare_await_case(), "bare await"),
    ]
    cases += _jobtrace_cases(MemorySink, "jobtrace + MemorySink", ids)
    cases += _jobtrace_cases(lambda: LogSink(logger=_null_structlog_logger()), "jobtrace + LogSink (null logger)", ids)
    if otel_available():
        cases += _otel_cases()
    return cases


def run_hotpath(iterations: int = 20_000, samples: int = 7, verbose: bool = True) -> dict[str, Any]:
    """Time every case; print the table and the targets; return the figures."""
    cases = build_cases(iterations)
    gc_was_enabled = gc.isenabled()
    for case in cases:  # warm-up: first calls, caches, imports
        case.run(min(iterations, 200))
    try:
        for _ in range(samples):
            for case in cases:
                gc.collect()
                gc.disable()  # collections would land on whichever case happens to allocate past the threshold
                try:
                    case.samples.append(case.run(iterations) / iterations)
                finally:
                    if gc_was_enabled:
                        gc.enable()
    finally:
        if gc_was_enabled:
            gc.enable()

    by_name = {c.name: c for c in cases}
    bases = {"bare call": by_name["bare function call"].median, "bare await": by_name["bare await"].median}
    rows = []
    for c in cases:
        rows.append([f"{c.group}: {c.name}", c.median, c.min, f"{c.median / bases[c.baseline]:.1f}x {c.baseline}"])
    figures: dict[str, Any] = {
        "iterations": iterations,
        "samples": samples,
        "cases": {f"{c.group}: {c.name}": {"median_ns": c.median, "min_ns": c.min} for c in cases},
    }
    out = table(
        f"Hot path, ns per call ({samples} samples x {iterations:,} calls; ratio of medians)",
        ["case", "median ns", "min ns", "vs baseline"],
        rows,
    )
    checks = []
    if otel_available():
        mem = "jobtrace + MemorySink"
        pairs = [
            (
                "sync",
                by_name_of(cases, mem, "with client_run(...) + incr"),
                by_name["with start_as_current_span + set_attribute"],
            ),
            ("async", by_name_of(cases, mem, "async with client_run(...) + incr"), by_name["same, inside a coroutine"]),
        ]
        for label, ours, span in pairs:
            share = ours.median / span.median
            checks.append(
                [
                    f"client run ({label}) <= 1/6 of an OTel span",
                    f"{ours.median:,.0f} / {span.median:,.0f} ns = 1/{span.median / ours.median:.1f}",
                    verdict(share <= SPAN_SHARE_TARGET),
                ]
            )
            checks.append(
                [
                    f"client run ({label}) < 2.5 us",
                    f"{ours.median:,.0f} ns ({CLIENT_RUN_TARGET_NS / ours.median:.2f}x margin)",
                    verdict(ours.median < CLIENT_RUN_TARGET_NS),
                ]
            )
            figures[f"span_share_{label}"] = share
        out += "\n" + table("Hot-path targets (MemorySink, medians)", ["target", "measured", "verdict"], checks)
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
