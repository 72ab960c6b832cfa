"""Resuming an interrupted run: which of its clients still need work.

::

    with jobtrace.tracked_job("post-scoring", run_id="251005-210247") as job:   # reopens it to Running
        for client_id in job.remaining(all_clients):      # not yet completed in this run
            with jobtrace.client_run(client_id) as client:
                ...

A client counts as done when its client run in this run ended with a status
that is not a failure (``Completed``, or a status of your own such as ``No
Leads To Score``); ``Failed``, ``Cancelled``, ``Interrupted`` and ``Running``
(its process died) are to be redone. What this process ran in the run
decides; for the earlier part of a resumed run, the sinks are asked for the
run's client records (one request for the Airtable sink). Redoing a client
continues its record (one record per client and run) and replaces its share
of the job's roll-ups, so the totals stay exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import tracker
from .dispatch import dispatcher
from .run_ids import validate_client_id
from .statuses import FAILED_STATUSES, Status

if TYPE_CHECKING:
    from .records import JobRun

__all__ = ["client_records", "remaining"]


def client_records(run_id: str) -> list[Mapping[str, Any]] | None:
    """The client records of a run, from the first sink that can list them (None when none can)."""
    config = tracker.get_config()
    dispatcher.barrier()  # what this process recorded before reaches the sinks first
    for sink in config.sinks:
        try:
            found = sink.read_client_runs(run_id)
        except Exception as exc:
            tracker.sink_failed(config, sink, "read_client_runs", exc, run_id)
            continue
        if found is not None:
            return list(found)
    return None


def remaining(job: JobRun, client_ids: Iterable[str]) -> list[str]:
    """Those of ``client_ids`` (in their order, each once) without a completed client run in ``job``'s run."""
    wanted = list(dict.fromkeys(validate_client_id(c) for c in client_ids))
    done: dict[str, bool] = {}
    if job.resumed:
        schema = tracker.get_config().schema.client
        names = schema.names
        for record in client_records(job.run_id) or []:
            client = record.get(names.client_id) if names.client_id is not None else None
            status = record.get(names.status)
            if isinstance(client, str):
                done[client] = isinstance(status, str) and status != Status.RUNNING and status not in FAILED_STATUSES
    for client, failed in job.client_outcomes().items():
        done[client] = not failed
    return [c for c in wanted if not done.get(c, False)]
