"""Fixtures for the propagation tests: a strict MemorySink per test, and a way to run a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobtrace
from jobtrace import context
from jobtrace.sinks import MemorySink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def sink() -> Iterator[MemorySink]:
    """A strict MemorySink configured for one test; the previous configuration is restored after it."""
    sink = MemorySink()
    prev = jobtrace.configure([sink], strict=True)
    yield sink
    jobtrace.restore(prev)


@pytest.fixture(autouse=True)
def _no_inherited_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests start with no run inherited from the environment, and leave none behind."""
    monkeypatch.delenv(context.RUN_ID_ENV, raising=False)
    monkeypatch.delenv(context.CLIENT_ID_ENV, raising=False)
    context.read_parent_env({})
    yield
    context.read_parent_env({})


def run_child(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh Python; it must print one JSON document last. Returns it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JOBTRACE_")}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests" / "propagation")])
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stderr"] = proc.stderr
    return result
