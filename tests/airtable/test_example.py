"""examples/post_scoring.py runs against the local emulator when no Airtable is configured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jobtrace

REPO = Path(jobtrace.__file__).resolve().parents[1]


def test_the_example_prints_both_tables_and_the_request_count() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRTABLE_")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "post_scoring.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = done.stdout
    assert "Status                  Completed with Errors" in out
    assert "Clients Processed       12" in out
    assert re.search(r"-Initech\s+Failed .*ScoringError", out)
    assert len(re.findall(r"\bCompleted\b", out.split("Client Run Results")[1])) == 11
    requests = int(re.search(r"(\d+) Airtable API requests", out).group(1))  # type: ignore[union-attr]
    assert requests < 20  # 13 records and dozens of updates, batched
