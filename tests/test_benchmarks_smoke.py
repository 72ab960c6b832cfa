"""The benchmark suite still runs: its hot-path section, with tiny iteration counts.

No timing is asserted (timings are the benchmark's to print, not a test's to
judge); these tests only keep ``benchmarks/`` from rotting as the API changes.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

import jobtrace

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def hotpath(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    if not (REPO / "benchmarks" / "hotpath.py").exists():
        pytest.skip("benchmarks/ is not part of this checkout")
    monkeypatch.syspath_prepend(str(REPO))
    return importlib.import_module("benchmarks.hotpath")


def test_hot_path_section_runs_every_jobtrace_case_and_leaves_no_configuration_behind(hotpath: ModuleType) -> None:
    before = jobtrace.tracker.get_config()
    figures = hotpath.run_hotpath(iterations=20, samples=1, verbose=False)
    cases = figures["cases"]
    for sink in ("jobtrace + MemorySink", "jobtrace + LogSink (null logger)"):
        for case in (
            "@tracked_job, sync function",
            "@tracked_job, async function",
            "with client_run(...) + incr",
            "async with client_run(...) + incr",
        ):
            name = f"{sink}: {case}"
            assert cases[name]["median_ns"] > 0
            assert name in figures["text"]
    assert jobtrace.tracker.get_config() is before


def test_hot_path_compares_against_opentelemetry_when_installed(hotpath: ModuleType) -> None:
    pytest.importorskip("opentelemetry.sdk.trace", reason="opentelemetry-sdk is installed in the bench env only")
    figures = hotpath.run_hotpath(iterations=20, samples=1, verbose=False)
    assert "OpenTelemetry SDK: with start_as_current_span + set_attribute" in figures["cases"]
    targets = [row[0] for row in figures["checks"]]
    assert "client run (sync) <= 1/6 of an OTel span" in targets
    assert "client run (async) < 2.5 us" in targets


def test_memory_section_counts_retained_bytes_of_finished_client_runs(hotpath: ModuleType) -> None:
    figures = hotpath.run_memory(n=50, verbose=False)
    assert figures["jobtrace_bytes"] > 0
    assert "finished client run in MemorySink" in figures["text"]


def test_multiprocess_section_runs_its_job_processes_and_counts_their_records(monkeypatch: pytest.MonkeyPatch) -> None:
    if not (REPO / "benchmarks" / "multiprocess.py").exists():
        pytest.skip("benchmarks/ is not part of this checkout")
    monkeypatch.syspath_prepend(str(REPO))
    multiprocess = importlib.import_module("benchmarks.multiprocess")
    row = multiprocess.run_row("smoke", 2, ["host", "host"], None)
    assert row.delivered and row.distinct_run_ids == 2
    assert (row.job_records, row.client_records, row.duplicates) == (2, 4, 0)
    assert row.requests > 0 and row.app_requests >= 1
