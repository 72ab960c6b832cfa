"""Process-wide state in one place, and ``jobtrace.testing.reset()`` that puts it back."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import structlog

import jobtrace
from jobtrace import tracking
from jobtrace.changes import Change
from jobtrace.sinks import MemorySink, Sink, register_env_factory
from jobtrace.testing import reset

from .helpers import only

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = "251005-210247"


def test_after_configure_and_restore_the_explicit_api_writes_to_the_new_sink() -> None:
    first = MemorySink()
    prev = jobtrace.configure([first], strict=True)
    try:
        tracking.create_job_tracking_record(RUN_ID, "post-scoring")
    finally:
        jobtrace.restore(prev)
    second = MemorySink()
    prev = jobtrace.configure([second], strict=True)
    try:
        record = tracking.create_job_tracking_record(RUN_ID, "post-scoring")
        tracking.complete_job_tracking_record(RUN_ID, "completed")
    finally:
        jobtrace.restore(prev)
    assert record["Status"] == "Running"
    assert only(second.job_records())["Status"] == "Completed"  # not only in the first sink
    assert only(first.job_records())["Status"] == "Running"  # the first sink got nothing of the second run


def test_reset_forgets_live_runs_error_counts_and_the_configuration(sink: MemorySink) -> None:
    class Failing(Sink):
        def write(self, change: Change) -> None:
            raise ConnectionError("down")

    prev = jobtrace.configure([Failing()])
    try:
        job = jobtrace.tracked_job("post-scoring", run_id=RUN_ID)
        job.__enter__()  # left running, as a test that failed half-way would leave it
        assert jobtrace.diagnostics()["sink_errors"] > 0
        reset()
        assert jobtrace.diagnostics() == {
            "sink_errors": 0,
            "last_sink_error": None,
            "dispatch_backlog": 0,
            "sinks": [],
        }
        fresh = MemorySink()
        jobtrace.configure([fresh], strict=True)
        # The leaked run is gone: the same run ID starts (resumes) a run of its own here.
        with jobtrace.tracked_job("post-scoring", run_id=RUN_ID):
            pass
        assert only(fresh.job_records())["Status"] == "Completed"
    finally:
        reset()
        jobtrace.restore(prev)


def test_reset_keeping_the_configuration_forgets_what_the_explicit_api_remembers(sink: MemorySink) -> None:
    tracking.create_client_run_record(RUN_ID, "acme", {"Posts Processed": 1})
    reset(keep_configuration=True)
    # As a new process: the record is read back from the sink, not taken from memory.
    record = tracking.update_client_run_record(RUN_ID, "acme", {"postsProcessed": 3})
    assert record["Posts Processed"] == 3
    assert only(sink.client_records())["Posts Processed"] == 3


FIXTURE_TESTS = """
import jobtrace
from jobtrace import tracking

RUN_ID = "251005-210247"


def test_one(jobtrace_sink):
    tracking.create_job_tracking_record(RUN_ID, "post-scoring")
    assert len(jobtrace_sink.job_records()) == 1


def test_two_starts_from_a_clean_process(jobtrace_sink):
    tracking.create_job_tracking_record(RUN_ID, "post-scoring")
    assert [r["Run ID"] for r in jobtrace_sink.job_records()] == [RUN_ID]
"""


def test_the_jobtrace_sink_fixture_starts_each_test_from_a_reset(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_user=FIXTURE_TESTS)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_a_sink_package_factory_is_chosen_by_configure_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    class Custom(MemorySink):
        pass

    def factory(env: Mapping[str, str]) -> Sink | None:
        return Custom() if env.get("MY_BACKEND") == "on" else None

    register_env_factory(factory)
    monkeypatch.delenv("AIRTABLE_API_KEY", raising=False)
    monkeypatch.setenv("MY_BACKEND", "on")
    prev = jobtrace.configure_from_env()
    try:
        from jobtrace import tracker

        assert [type(s) for s in tracker.get_config().sinks] == [Custom]
    finally:
        jobtrace.restore(prev)
        monkeypatch.setenv("MY_BACKEND", "off")


def test_a_sink_asking_for_structlog_binding_gets_it() -> None:
    class Structured(MemorySink):
        binds_structlog = True

    prev = jobtrace.configure([Structured()], strict=True)
    try:
        with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme"):
            bound = structlog.contextvars.get_contextvars()
    finally:
        jobtrace.restore(prev)
    assert bound == {"run_id": job.run_id, "client_id": "acme"}
    prev = jobtrace.configure([MemorySink()], strict=True)
    try:
        with jobtrace.tracked_job("post-scoring"):
            assert "run_id" not in structlog.contextvars.get_contextvars()
    finally:
        jobtrace.restore(prev)


def _fresh(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBTRACE_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def _jobtrace_imports(path: Path) -> set[str]:
    """The jobtrace modules a file imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module.startswith("jobtrace"):
                found.add(module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("jobtrace")}
    return found


def test_statuses_are_a_leaf_that_sinks_use_without_reaching_into_the_core() -> None:
    assert _jobtrace_imports(ROOT / "jobtrace" / "statuses.py") == set()
    core = {"jobtrace.records", "jobtrace.tracker", "jobtrace.instrument", "jobtrace.tracking"}
    for path in (ROOT / "jobtrace" / "sinks").rglob("*.py"):
        assert not (_jobtrace_imports(path) & core), path
    assert "jobtrace.statuses" in _jobtrace_imports(ROOT / "jobtrace" / "sinks" / "airtable" / "check.py")


def test_the_core_names_no_concrete_sink() -> None:
    # The sink package chooses sinks (default_sinks, sinks_from_env); the core only knows the Sink interface.
    for name in ("tracker.py", "records.py", "instrument.py", "dispatch.py", "process_state.py"):
        imported = _jobtrace_imports(ROOT / "jobtrace" / name)
        assert not {m for m in imported if m.startswith("jobtrace.sinks.") and m != "jobtrace.sinks.base"}, name
    # (get_config() with nothing configured still gives the LogSink: test_with_no_configuration_... in test_sinks)


def test_the_cli_loads_the_emulator_only_for_the_emulator_command() -> None:
    out = _fresh(
        "import sys\n"
        "from jobtrace import cli\n"
        "cli.build_parser().parse_args(['runs'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('jobtrace.testing.emulator.')))\n"
    )
    assert out == "['jobtrace.testing.emulator.cli']"  # the parser's registration only
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBTRACE_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "jobtrace.cli", "emulator", "--help"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--port" in proc.stdout


def _imported_underscore_names(path: Path) -> list[str]:
    """``from .module import _name`` in a file (a package's own private modules, ``from . import _cli_x``,
    and dunders such as ``__version__`` are fine)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module not in ("__future__", None):
            found += [
                f"{node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_") and not (a.name.startswith("__") and a.name.endswith("__"))
            ]
    return found


def test_no_module_of_jobtrace_imports_another_modules_underscore_names() -> None:
    offenders = {
        str(path.relative_to(ROOT)): names
        for path in sorted((ROOT / "jobtrace").rglob("*.py"))
        if (names := _imported_underscore_names(path))
    }
    assert offenders == {}
