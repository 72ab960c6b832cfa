"""The public API: a pinned ``__all__`` and an import that stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import jobtrace

EXPECTED_ALL = [
    "Change",
    "ClientRun",
    "ComputedFieldError",
    "ConfigurationError",
    "InvalidClientIdError",
    "InvalidRunIdError",
    "InvalidValueError",
    "JobRun",
    "JobtraceError",
    "NoActiveRunError",
    "RecordNotFoundError",
    "RecordUnavailableError",
    "RunContext",
    "RunId",
    "Schema",
    "SinkError",
    "Status",
    "ThreadPoolExecutor",
    "UnknownFieldError",
    "bind",
    "child_env",
    "client_run",
    "client_run_id",
    "collect",
    "configure",
    "configure_from_env",
    "current_client_id",
    "current_run_id",
    "diagnostics",
    "extract",
    "flush",
    "generate_run_id",
    "incr",
    "inject",
    "note",
    "parse_run_id",
    "restore",
    "shutdown",
    "sinks",
    "tracked_job",
    "tracking",
    "update",
]


def test_all_is_sorted_and_exactly_the_public_api() -> None:
    # Adding or removing a public name is a contract change: update this list on purpose.
    assert jobtrace.__all__ == sorted(jobtrace.__all__)
    assert jobtrace.__all__ == EXPECTED_ALL


def test_every_name_in_all_exists() -> None:
    for name in jobtrace.__all__:
        assert hasattr(jobtrace, name), name


def test_the_sinks_namespace_offers_the_memory_and_log_sinks() -> None:
    assert {"MemorySink", "LogSink", "Sink"} <= set(jobtrace.sinks.__all__)
    assert issubclass(jobtrace.sinks.MemorySink, jobtrace.sinks.Sink)
    assert issubclass(jobtrace.sinks.LogSink, jobtrace.sinks.Sink)


def test_import_jobtrace_does_not_import_pyairtable_requests_pydantic_or_rich() -> None:
    code = (
        "import json, sys\n"
        "import jobtrace, jobtrace.sinks\n"
        "heavy = ('pyairtable', 'requests', 'pydantic', 'urllib3', 'rich')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_a_whole_job_does_not_import_pyairtable_requests_or_pydantic() -> None:
    code = (
        "import json, sys\n"
        "import jobtrace\n"
        "sink = jobtrace.sinks.MemorySink()\n"
        "jobtrace.configure([sink, jobtrace.sinks.LogSink()])\n"
        "with jobtrace.tracked_job('post-scoring'):\n"
        "    with jobtrace.client_run('acme') as c:\n"
        "        c.incr(posts_processed=1)\n"
        "heavy = ('pyairtable', 'requests', 'pydantic')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
