"""Score posts for a dozen clients, tracked by jobtrace.

Run it with ``python examples/post_scoring.py``. Each client's work is
simulated (posts, tokens, a little sleep); one client fails on purpose, so the
job ends ``Completed with Errors`` and that client's record is ``Failed``.
"""

from __future__ import annotations

import asyncio
import random

import jobtrace

CLIENTS = [
    "Guy-Wilson",
    "Acme-Corp",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark-Industries",
    "Wayne-Enterprises",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
]
FAILING_CLIENT = "Initech"


class ScoringError(Exception):
    """The scoring service rejected a client's batch."""


async def score_client(client_id: str, rng: random.Random) -> int:
    """Score one client's posts in batches; return how many were scored."""
    async with jobtrace.client_run(client_id, name=client_id.replace("-", " ")) as client:
        posts = rng.randint(5, 40)
        client.update(posts_examined_for_scoring=posts)
        scored = 0
        for batch_start in range(0, posts, 10):
            await asyncio.sleep(rng.uniform(0.005, 0.02))  # the scoring API call
            batch = min(10, posts - batch_start)
            if client_id == FAILING_CLIENT and batch_start >= 10:
                raise ScoringError(f"scoring service returned 503 for batch at post {batch_start}")
            scored += batch
            client.incr(posts_processed=batch, posts_successfully_scored=batch, token_usage=batch * 150)
        client.note(f"Scored {scored} of {posts} posts")
        return scored


@jobtrace.tracked_job("post-scoring")
async def score_posts(clients: list[str], seed: int = 7) -> dict[str, int]:
    """Score every client's posts; a failing client does not stop the others."""
    rng = random.Random(seed)
    jobtrace.note(f"Started batch scoring job for {len(clients)} clients")
    results: dict[str, int] = {}
    batches = [clients[i : i + 4] for i in range(0, len(clients), 4)]
    for number, batch in enumerate(batches, start=1):
        outcomes = await asyncio.gather(*(score_client(c, rng) for c in batch), return_exceptions=True)
        for client_id, outcome in zip(batch, outcomes):
            if isinstance(outcome, BaseException):
                jobtrace.note(f"{client_id} failed: {outcome}")
            else:
                results[client_id] = outcome
        jobtrace.update(progress=f"{100 * number // len(batches)}% complete")
        jobtrace.note(f"Processed batch {number} of {len(batches)}")
    return results


def main() -> None:
    sink = jobtrace.sinks.MemorySink()
    jobtrace.configure([sink, jobtrace.sinks.LogSink()])
    results = asyncio.run(score_posts(CLIENTS))
    jobtrace.flush()
    print(f"\nScored {sum(results.values())} posts for {len(results)} of {len(CLIENTS)} clients.\n")
    for record in sink.job_records():
        print("Job Tracking:", {k: v for k, v in record.items() if k != "System Notes"})
    for record in sink.client_records():
        print("Client Run Results:", record["Run ID"], record["Status"], record.get("Posts Processed", 0))


if __name__ == "__main__":
    main()
