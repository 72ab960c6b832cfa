"""The kill matrix's quick form: one SIGKILL and one SIGTERM per recovery; nothing doubled or left Running."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def kill_matrix(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    if not (REPO / "benchmarks" / "kill_matrix.py").exists():
        pytest.skip("benchmarks/ is not part of this checkout")
    monkeypatch.syspath_prepend(str(REPO))
    return importlib.import_module("benchmarks.kill_matrix")


def test_killed_jobs_recovered_by_replay_or_reap_double_nothing_leave_nothing_running_and_lose_nothing_journaled(
    kill_matrix: ModuleType,
) -> None:
    cells = kill_matrix.run(trials=1, seed=7)
    assert [(c["signal"], c["recovery"]) for c in cells] == [
        ("SIGKILL", "a"),
        ("SIGKILL", "b"),
        ("SIGTERM", "a"),
        ("SIGTERM", "b"),
    ]
    print(kill_matrix.render(cells))
    for cell in cells:
        assert (cell.get("duplicated", 0), cell.get("running", 0), cell.get("rollups_off", 0)) == (0, 0, 0), cell
        if cell["recovery"] == "a" or cell["signal"] == "SIGTERM":
            assert cell.get("lost", 0) == 0, cell  # the journal, or the exit path, keeps everything
        else:
            # A lost host keeps only what reached Airtable: what finished in the last moments before the
            # kill may be lost (the writer sends within the base's request budget, 4 requests a second:
            # a quarter second apart, up to half a second in a job's first second; twice that as margin).
            assert cell["oldest_lost_ms"] < 1000, cell
