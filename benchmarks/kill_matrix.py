"""The kill matrix: a 50-client job killed at random points, then recovered; what the base says after.

``python benchmarks/kill_matrix.py [--trials N] [--seed S] [--cold]``

For each signal (SIGKILL, SIGTERM) and each recovery, N trials: a child
process runs a job of 50 client runs (two counter updates and a progress
update each, a few milliseconds of work between them) through the
AirtableSink against the local emulator (Airtable's rate limit on, a base with
a ``Last Heartbeat`` field), and is sent the signal at a random point of the
job. The child keeps a ledger of every client run it finished (time, client,
counter), written before the next one starts. Each trial's base is new, but the
host has checked it before (a job started on it a few seconds earlier), as on
a host that runs its jobs against one base: the child's start spends no request
on the schema check (see ``jobtrace.sinks.airtable.checked``). ``--cold``:
every child is the first start on the host for its base. Then the run is
recovered:

- (a) same host: ``jobtrace replay`` with the journal the child left
  (what the next start of a job with that journal does too);
- (b) lost host: the journal is deleted, then ``jobtrace reap`` ends what was
  left ``Running`` (its heartbeat older than 2 s, after waiting for that).

Counted, per cell: client runs finished more than 0.25 s before the signal
whose record is not ``Completed`` with their counter (lost), records that
exist twice (duplicated), records left ``Running``, and job records whose
roll-ups disagree with their client records.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import table

CLIENTS = 50
GRACE = 0.25

CHILD = textwrap.dedent(
    """
    import os, random, sys, time
    import jobtrace
    from jobtrace.sinks import AirtableSink

    ledger = open(sys.argv[1], "a", buffering=1)
    random.seed(int(sys.argv[2]))
    jobtrace.configure([AirtableSink.from_env(rate_limit_penalty=1.0, backoff_initial=0.05, backoff_max=0.5)])
    print("started", flush=True)
    with jobtrace.tracked_job("kill-matrix") as job:
        for i in range(50):
            with jobtrace.client_run(f"client-{i:02d}") as client:
                client.incr(posts_processed=1)
                time.sleep(random.uniform(0.005, 0.03))
                client.update(progress="scored")
                client.incr(posts_processed=i)
                time.sleep(random.uniform(0.005, 0.03))
            ledger.write(f"{time.time()} client-{i:02d} {i + 1}\\n")
    """
)


def _base() -> dict[str, Any]:
    from jobtrace.schema import default_base_metadata

    meta = copy.deepcopy(default_base_metadata())
    for table_, suffix in zip(meta["tables"], ("Job01", "Cli01")):
        start = next(f for f in table_["fields"] if f["name"] == "Start Time")
        table_["fields"].append({**copy.deepcopy(start), "id": f"fldHeartbeat{suffix}", "name": "Last Heartbeat"})
    return meta


def _checked_before(emulator: Any, base_id: str, workdir: Path) -> None:
    """A job's start on this host checks the base (and remembers it passed); its request's slot then frees up."""
    from jobtrace.schema import Schema
    from jobtrace.sinks import AirtableSink

    sink = AirtableSink(emulator.api_key, base_id, endpoint_url=emulator.url, journal_path=workdir / "warm.sqlite3")
    sink.start(Schema.default())
    sink.close(5.0)
    time.sleep(1.5)


def trial(
    emulator: Any, base_id: str, workdir: Path, sig: signal.Signals, recovery: str, seed: int, cold: bool = False
) -> dict[str, int]:
    from jobtrace import cli
    from jobtrace.sinks.airtable import replay

    journal = workdir / f"{base_id}.sqlite3"
    ledger = workdir / f"{base_id}.ledger"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "AIRTABLE_API_KEY": emulator.api_key,
        "AIRTABLE_BASE_ID": base_id,
        "AIRTABLE_ENDPOINT_URL": emulator.url,
        "JOBTRACE_JOURNAL": str(journal),
    }
    rng = random.Random(seed)
    if not cold:
        _checked_before(emulator, base_id, workdir)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ledger), str(seed)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    time.sleep(rng.uniform(0.2, 2.0))  # the job takes about 2 s
    killed_at = time.time()
    proc.send_signal(sig)
    proc.wait(60)
    if recovery == "a":
        replay(emulator.api_key, base_id, journal_path=journal, endpoint_url=emulator.url, timeout=60,
               rate_limit_penalty=1.0)  # fmt: skip
    else:
        for path in workdir.glob(f"{base_id}.sqlite3*"):
            if path.is_file():
                path.unlink()
        time.sleep(2.5)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(["reap", "--older-than", "2s"], env=env)
    finished = {}
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            at, client, posts = line.split()
            finished[client] = (float(at), int(posts))
    jobs = [r["fields"] for r in emulator.records(base_id, "Job Tracking")]
    clients = [r["fields"] for r in emulator.records(base_id, "Client Run Results")]
    keys = Counter(f.get("Run ID") for f in jobs + clients)
    by_client = {f.get("Client ID"): f for f in clients}
    lost = 0
    oldest_lost = 0.0
    for client, (at, posts) in finished.items():
        if at < killed_at - GRACE:
            record = by_client.get(client)
            if record is None or record.get("Status") != "Completed" or record.get("Posts Processed") != posts:
                lost += 1
                oldest_lost = max(oldest_lost, killed_at - at)
    counted = [f for f in clients if f.get("Status") not in (None, "Running", "Interrupted")]
    rollups_off = sum(
        1
        for job in jobs
        if job.get("Status") != "Running"
        and (job.get("Clients Processed", 0), job.get("Posts Processed", 0))
        != (len(counted), sum(f.get("Posts Processed", 0) for f in counted))
    )
    return {
        "finished": sum(1 for at, _ in finished.values() if at < killed_at - GRACE),
        "lost": lost,
        "duplicated": sum(n - 1 for n in keys.values() if n > 1),
        "running": sum(1 for f in jobs + clients if f.get("Status") == "Running"),
        "rollups_off": rollups_off,
        "oldest_lost_ms": int(oldest_lost * 1000),
    }


def run(trials: int, seed: int = 1, cold: bool = False) -> list[dict[str, Any]]:
    from jobtrace.testing import AirtableEmulator

    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, AirtableEmulator(rate_limit=True, rate_limit_penalty=1.0) as emu:
        # The jobs, replay and reap of a host share one request budget (the state directory's), as in production.
        previous_state = os.environ.get("JOBTRACE_STATE_DIR")
        os.environ["JOBTRACE_STATE_DIR"] = tmp
        n = 0
        for sig in (signal.SIGKILL, signal.SIGTERM):
            for recovery in ("a", "b"):
                totals = Counter[str]()
                oldest = 0
                for _i in range(trials):
                    n += 1
                    base_id = f"appKillMatrix{n:04d}"
                    emu.add_base(base_id, _base())
                    result = trial(emu, base_id, Path(tmp), sig, recovery, seed * 1000 + n, cold)
                    oldest = max(oldest, result.pop("oldest_lost_ms"))
                    totals.update(result)
                cells.append(
                    {"signal": sig.name, "recovery": recovery, "trials": trials, **totals, "oldest_lost_ms": oldest}
                )
        if previous_state is None:
            os.environ.pop("JOBTRACE_STATE_DIR", None)
        else:
            os.environ["JOBTRACE_STATE_DIR"] = previous_state
    return cells


def render(cells: list[dict[str, Any]]) -> str:
    names = {"a": "(a) same host: jobtrace replay", "b": "(b) journal deleted: jobtrace reap"}
    rows = [
        [
            c["signal"],
            names[c["recovery"]],
            c["trials"],
            c.get("finished", 0),
            c.get("lost", 0),
            c.get("duplicated", 0),
            c.get("running", 0),
            c.get("rollups_off", 0),
            f"{c['oldest_lost_ms']} ms" if c.get("lost") else "-",
        ]
        for c in cells
    ]
    return table(
        f"Kill matrix: a {CLIENTS}-client job killed at a random point, then recovered (emulator, 5 req/s)",
        [
            "signal",
            "recovery",
            "trials",
            f"client runs finished >{GRACE}s before",
            "lost",
            "duplicated",
            "left Running",
            "job roll-ups off",
            "lost: finished at most this long before",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10, help="trials per signal and recovery (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cold", action="store_true", help="every job is the first on the host for its base")
    args = parser.parse_args(argv)
    logging.getLogger("jobtrace").setLevel(logging.ERROR)  # the table says what happened
    started = time.monotonic()
    cells = run(args.trials, args.seed, args.cold)
    print(render(cells))
    print(f"\n({4 * args.trials} trials in {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
