"""A real job process for the watch and report tests: ``python job_process.py CLIENTS SECONDS``.

Tracks a ``post-scoring`` job to the base in ``AIRTABLE_*`` (the emulator), with
``expect_clients``, one client run at a time taking SECONDS each; the client
``initech`` fails with an error carrying terminal control characters (as scraped
content may). Prints the run ID on its first line.
"""

from __future__ import annotations

import sys
import time

import jobtrace
from jobtrace.sinks import AirtableSink


class ScoringError(Exception):
    pass


def main() -> None:
    count, seconds = int(sys.argv[1]), float(sys.argv[2])
    clients = [f"client-{i:02d}" for i in range(count - 1)] + ["initech"]
    clients.insert(count // 2, clients.pop())  # the failing one in the middle
    jobtrace.configure([AirtableSink.from_env()])
    with jobtrace.tracked_job("post-scoring") as job:
        print(job.run_id, flush=True)
        job.expect_clients(count)
        job.note("Started scoring \x1b[31mred\x1b[0m posts\x07")
        for client_id in clients:
            try:
                with jobtrace.client_run(client_id) as client:
                    time.sleep(seconds)
                    if client_id == "initech":
                        raise ScoringError("scoring API said \x1b[2J\x1b[31mno\x07")
                    client.incr(posts_processed=10, token_usage=1500)
            except ScoringError:
                pass
    jobtrace.flush(20)
    jobtrace.shutdown()


if __name__ == "__main__":
    main()
