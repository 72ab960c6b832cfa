"""``jobtrace report``: the page as headless Chromium renders it, from runs made against the emulator."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobtrace.schema import default_base_metadata
from jobtrace.testing import AirtableEmulator

from .pngread import bands_with_run, read_png

ROOT = Path(__file__).resolve().parents[2]
JOB = Path(__file__).with_name("job_process.py")
BASE = "appReportTests001"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]
GREEN, RED = (0x2E, 0x9D, 0x57), (0xD6, 0x45, 0x45)  # Completed, Failed (STATUS_COLOURS)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"chromium-{len(list(tmp_path.glob('chromium-*')))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """Two real runs of a job against the emulator (6 clients, one failing), and their reports."""
    tmp = tmp_path_factory.mktemp("report")
    with AirtableEmulator(bases={BASE: default_base_metadata()}, rate_limit=False) as emu:
        env = {
            **os.environ,
            "AIRTABLE_API_KEY": emu.api_key,
            "AIRTABLE_BASE_ID": BASE,
            "AIRTABLE_ENDPOINT_URL": emu.url,
            "JOBTRACE_JOURNAL": str(tmp / "journal.sqlite3"),
            "PYTHONPATH": str(ROOT),
        }
        run_ids = []
        for clients in ("4", "6"):
            job = subprocess.run([sys.executable, str(JOB), clients, "0.15"], env=env, capture_output=True, text=True)
            assert job.returncode == 0, job.stderr
            run_ids.append(job.stdout.split()[0])
        single = subprocess.run(
            [sys.executable, "-m", "jobtrace", "report", run_ids[-1], "-o", str(tmp / "run.html")],
            env=env,
            capture_output=True,
            text=True,
        )
        assert single.returncode == 0, single.stderr
        assert single.stdout.strip() == f"wrote {tmp / 'run.html'}: run {run_ids[-1]}, 6 client run(s), 1 failed"
        history = subprocess.run(
            [sys.executable, "-m", "jobtrace", "report", "--job-type", "post-scoring", "--last", "20", "-o",
             str(tmp / "history.html")],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert history.returncode == 0, history.stderr
        assert "history of 2 run(s)" in history.stdout
    return {"dir": tmp, "run": tmp / "run.html", "history": tmp / "history.html", "run_id": run_ids[-1]}


def test_the_report_is_one_file_that_needs_no_network(reports: dict[str, Path | str]) -> None:
    page = Path(reports["history"]).read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=|@import|url\(|<link|fetch\(|XMLHttpRequest""", page)
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}  # a namespace name
    assert "\x1b" not in page and "\x07" not in page
    assert r"scoring API said \x1b[2J\x1b[31mno\x07" in page  # scraped control characters, shown


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium")
def test_chromium_renders_a_bar_per_client_run_and_marks_the_failure(reports: dict[str, Path | str]) -> None:
    tmp, page = Path(reports["dir"]), Path(reports["history"])
    dom = chromium(tmp, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert '<div id="tooltip"' in html  # the page's script ran
    bars = re.findall(r'<rect class="bar( failed)?" data-client="([^"]+)" data-status="([^"]+)"', html)
    assert sorted(c for _, c, _ in bars) == sorted([f"client-{i:02d}" for i in range(5)] + ["initech"])
    assert [(c, s) for failed, c, s in bars if failed] == [("initech", "Failed")]
    assert re.search(r'<tr class="failure"><td>initech</td>.*ScoringError: scoring API said', html)
    assert len(re.findall(r'<rect class="run" data-run=', html)) == 2
    assert re.findall(r'data-failed="(\d+)"', html) == ["1", "1"]
    assert f"Job run {reports['run_id']}" in html

    shot = tmp / "report.png"
    done = chromium(tmp, "--window-size=1200,1700", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    _, _, rows = read_png(shot.read_bytes())
    # What a person sees: five wide green bars and one wide red bar, each on its own row (a bar is about
    # a sixth of the 760-pixel timeline wide; the legend's squares and the status badges are narrower).
    green, red = bands_with_run(rows, GREEN, 80), bands_with_run(rows, RED, 80)
    assert len(green) == 5, green
    assert len(red) == 1, red
    first_green, last_green = green[0][0], green[-1][1]
    assert first_green < red[0][0] < last_green  # the failed client ran in the middle, in the timeline


def test_report_errors_are_one_line(reports: dict[str, Path | str], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AIRTABLE_API_KEY": "patX", "AIRTABLE_BASE_ID": "appReportTests001"}
    done = subprocess.run([sys.executable, "-m", "jobtrace", "report"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.startswith("jobtrace: error: give a RUN_ID")
    done = subprocess.run(
        [sys.executable, "-m", "jobtrace", "report", "x", "--last", "0"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "--last" in done.stderr
