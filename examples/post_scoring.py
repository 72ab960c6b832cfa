"""Score posts for a dozen clients, tracked by jobtrace.

Run it with ``python examples/post_scoring.py``. Each client's work is
simulated (posts, tokens, a little sleep); one client fails on purpose, so the
job ends ``Completed with Errors`` and that client's record is ``Failed``.

With ``AIRTABLE_API_KEY`` and ``AIRTABLE_BASE_ID`` set, the records go to that
base (for one that outlives the example, run ``jobtrace emulator --data
emulator.json`` in another terminal and paste the ``export`` lines it prints).
Otherwise the example starts a temporary local Airtable emulator, seeded with
the default base, and prints both tables as they ended up, plus the number of
API requests it took (needs ``pip install 'jobtrace[airtable]'``). Either way it
prints the run ID, where the records went, how to look at them, and why the job
record's counts differ from the posts scored.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile

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
#: Posts each client's run counted (Posts Processed), failed or not: to explain the job's total.
COUNTED: dict[str, int] = {}


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
            COUNTED[client_id] = COUNTED.get(client_id, 0) + batch
        client.note(f"Scored {scored} of {posts} posts")
        return scored


RUN: dict[str, str] = {}


@jobtrace.tracked_job("post-scoring")
async def score_posts(clients: list[str], seed: int = 7) -> dict[str, int]:
    """Score every client's posts; a failing client does not stop the others."""
    RUN["id"] = jobtrace.current_run_id() or ""
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
    if os.environ.get("AIRTABLE_API_KEY") and os.environ.get("AIRTABLE_BASE_ID"):
        # Your base: AIRTABLE_API_KEY, AIRTABLE_BASE_ID (and optionally AIRTABLE_ENDPOINT_URL).
        jobtrace.configure_from_env()
        results = asyncio.run(score_posts(CLIENTS))
        delivered = jobtrace.flush(60)
        print_outcome(results)
        where = os.environ.get("AIRTABLE_ENDPOINT_URL") or "Airtable"
        state = "delivered" if delivered else "journaled, not delivered yet (run 'jobtrace replay')"
        print(f"The records went to base {os.environ['AIRTABLE_BASE_ID']} at {where}: {state}.")
        print("Look at them with:")
        print(f"  jobtrace show {RUN['id']}")
        print(f"  jobtrace report {RUN['id']} -o report.html")
        return
    run_against_emulator()


def print_outcome(results: dict[str, int]) -> None:
    """The run ID, the posts scored, and why the job record's Posts Processed is more."""
    scored = sum(results.values())
    counted = sum(COUNTED.values())
    print(f"Run {RUN['id']}: scored {scored} posts for {len(results)} of {len(CLIENTS)} clients.")
    failed = {c: n for c, n in COUNTED.items() if c not in results}
    if counted != scored:
        lost = ", ".join(f"{c}'s {n}" for c, n in failed.items())
        print(
            f"The job record's Posts Processed says {counted}: it sums every client run's Posts Processed, "
            f"including what failed clients counted before they failed ({lost}); "
            f"Clients Failed and the client records say which."
        )


def run_against_emulator() -> None:
    """Run the job against a local Airtable (the emulator, seeded with jobtrace's default base)."""
    from jobtrace.schema import default_base_metadata
    from jobtrace.sinks import AirtableSink
    from jobtrace.testing import AirtableEmulator

    base_id = "appPostScoring001"
    with AirtableEmulator(bases={base_id: default_base_metadata()}) as emulator, tempfile.TemporaryDirectory() as tmp:
        # A throwaway journal: the emulator's base is gone when the example ends.
        sink = AirtableSink(
            emulator.api_key, base_id, endpoint_url=emulator.url, journal_path=os.path.join(tmp, "journal.sqlite3")
        )
        jobtrace.configure([sink])
        results = asyncio.run(score_posts(CLIENTS))
        jobtrace.flush(60)
        jobtrace.shutdown()
        print_outcome(results)
        print(
            f"The records went to a temporary local Airtable emulator (base {base_id} at {emulator.url}), "
            "gone when this example ends. They were:\n"
        )
        for record in emulator.records(base_id, "Job Tracking"):
            print("Job Tracking")
            for name, value in record["fields"].items():
                if isinstance(value, dict):  # a formula's NaN or error (e.g. while End Time is empty)
                    value = ""
                elif isinstance(value, float) and name.endswith("Rate"):  # a percent formula
                    value = f"{value:.1%}"
                text = str(value).replace("\n", "\n" + " " * 26)
                print(f"  {name:<22}  {text}")
        print("\nClient Run Results")
        print(f"  {'Run ID':<34} {'Status':<10} {'Posts':>5} {'Tokens':>7}  Errors")
        for record in emulator.records(base_id, "Client Run Results"):
            fields = record["fields"]
            print(
                f"  {fields['Run ID']:<34} {fields['Status']:<10} {fields.get('Posts Processed', 0):>5} "
                f"{fields.get('Token Usage', 0):>7}  {fields.get('Errors', '')}"
            )
        print(f"\n{len(emulator.requests)} Airtable API requests (the schema check included).")
        print(
            "\nTo keep the records and look at them afterwards: run 'jobtrace emulator --data emulator.json' in "
            "another terminal, paste the export lines it prints, run this example again, then:"
        )
        print("  jobtrace show RUN_ID")
        print("  jobtrace report RUN_ID -o report.html")
        print("  jobtrace watch            (while a job runs)")


if __name__ == "__main__":
    main()
