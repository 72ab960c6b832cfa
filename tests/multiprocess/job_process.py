"""A jobtrace job in a process of its own, for the multi-process tests (run as a script).

Configuration from the environment (``AIRTABLE_*``, ``JOBTRACE_STATE_DIR``,
``JOBTRACE_JOURNAL``, ``JOBTRACE_REDIS_URL``); the job from the JSON in
``argv[1]``: ``job_type``, ``clients``, ``updates`` (progress updates per
client), ``pause`` (seconds of work before each update), ``penalty`` (the
sink's rate-limit penalty). Prints ``ready`` once configured, then waits for a
line on stdin: the wall-clock time to start the job at. Prints one JSON line
when done: the run ID, whether everything was delivered, the sink's counts.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import jobtrace
from jobtrace.sinks import AirtableSink


def main() -> int:
    spec = json.loads(sys.argv[1])
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(message)s")
    sink = AirtableSink.from_env(
        rate_limit_penalty=spec.get("penalty", 1.0), backoff_initial=0.05, backoff_max=0.5, timeout=(2.0, 10.0)
    )
    jobtrace.configure([sink])
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    with jobtrace.tracked_job(spec["job_type"]) as job:
        for i in range(spec["clients"]):
            with jobtrace.client_run(f"{spec['job_type']}-{i:03d}") as client:
                for step in range(spec.get("updates", 1)):
                    time.sleep(spec.get("pause", 0.0))
                    client.update(progress=f"{step + 1}/{spec.get('updates', 1)}")
                    client.incr(posts_processed=1)
    delivered = jobtrace.flush(spec.get("flush_timeout", 60.0))
    finished = time.time()
    counts = sink.diagnostics()
    jobtrace.shutdown(5.0)
    result = {**counts, "run_id": job.run_id, "delivered": delivered, "job_started": started, "job_finished": finished}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
