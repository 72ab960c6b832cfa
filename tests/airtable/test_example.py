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


def test_the_example_says_its_run_id_where_the_records_went_and_explains_its_counts() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRTABLE_")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "post_scoring.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    run_id = re.search(r"^Run (\d{6}-\d{6}): scored (\d+) posts for 11 of 12 clients\.$", out, re.M)
    assert run_id is not None, out
    scored = int(run_id.group(2))
    total = int(re.search(r"Posts Processed\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    assert f"Run ID                  {run_id.group(1)}" in out
    assert f"The job record's Posts Processed says {total}: it sums every client run's" in out
    assert f"(Initech's {total - scored})" in out and total > scored
    assert "temporary local Airtable emulator" in out and "gone when this example ends" in out
    assert "jobtrace show RUN_ID" in out and "jobtrace report RUN_ID -o report.html" in out
    assert "Success Rate            91.7%" in out
