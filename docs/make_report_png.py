"""Make docs/report.png: four runs of examples/post_scoring.py against the emulator, their report, a screenshot.

    python docs/make_report_png.py          (needs Chromium: chromium or $CHROMIUM)

The job's clients run four at a time, so the timeline shows overlapping bars.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))

import post_scoring  # noqa: E402

import jobtrace  # noqa: E402
from jobtrace.cli import main  # noqa: E402
from jobtrace.schema import default_base_metadata  # noqa: E402
from jobtrace.sinks import AirtableSink  # noqa: E402
from jobtrace.testing import AirtableEmulator  # noqa: E402

BASE = "appReportPicture1"
_sleep = asyncio.sleep


async def _slower(delay: float) -> None:
    await _sleep(delay * 30)  # the example's "API calls" take 5-20 ms; make the picture's runs a few seconds


def run() -> None:
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Chromium (set CHROMIUM)")
    with tempfile.TemporaryDirectory() as tmp, AirtableEmulator(bases={BASE: default_base_metadata()}) as emu:
        sink = AirtableSink(emu.api_key, BASE, endpoint_url=emu.url, journal_path=os.path.join(tmp, "j.sqlite3"))
        jobtrace.configure([sink])
        post_scoring.asyncio.sleep = _slower  # type: ignore[attr-defined]
        for seed in (3, 5, 11, 7):
            asyncio.run(post_scoring.score_posts(post_scoring.CLIENTS, seed=seed))
            jobtrace.flush(30)
        jobtrace.shutdown()
        page = os.path.join(tmp, "report.html")
        env = {"AIRTABLE_API_KEY": emu.api_key, "AIRTABLE_BASE_ID": BASE, "AIRTABLE_ENDPOINT_URL": emu.url}
        assert main(["report", "--job-type", "post-scoring", "--last", "20", "-o", page], env=env) == 0
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--force-device-scale-factor=1"]  # fmt: skip
        subprocess.run(
            [chromium, *flags, f"--user-data-dir={os.path.join(tmp, 'profile')}", "--window-size=1010,1640",
             f"--screenshot={HERE / 'report.png'}", Path(page).as_uri()],
            check=True, capture_output=True,
        )  # fmt: skip
    print(f"wrote {HERE / 'report.png'}")


if __name__ == "__main__":
    run()
