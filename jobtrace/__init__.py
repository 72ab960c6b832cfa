"""jobtrace: track batch jobs and their per-client runs, one record per run.

::

    import jobtrace

    @jobtrace.tracked_job("post-scoring")
    async def score_posts(clients):
        for client_id in clients:
            with jobtrace.client_run(client_id) as client:
                client.incr(posts_processed=1, token_usage=1500)

The public API is what this module exports (``__all__``); everything else is
private machinery.
"""

from __future__ import annotations

from . import sinks, tracking
from .changes import Change
from .context import current_client_id, current_run_id
from .errors import (
    ComputedFieldError,
    ConfigurationError,
    InvalidClientIdError,
    InvalidRunIdError,
    InvalidValueError,
    JobtraceError,
    NoActiveRunError,
    RecordNotFoundError,
    RecordUnavailableError,
    SinkError,
    UnknownFieldError,
)
from .instrument import client_run, incr, note, tracked_job, update
from .propagation import RunContext, ThreadPoolExecutor, bind, child_env, collect, extract, inject
from .records import ClientRun, JobRun
from .run_ids import RunId, client_run_id, generate_run_id, parse_run_id
from .schema import Schema
from .statuses import Status
from .tracker import configure, configure_from_env, diagnostics, flush, restore, shutdown

__version__ = "0.2.0"

__all__ = [
    "Change",
    "ClientRun",
    "ComputedFieldError",
    "ConfigurationError",
    "InvalidClientIdError",
    "InvalidRunIdError",
    "InvalidValueError",
    "JobRun",
    "JobtraceError",
    "NoActiveRunError",
    "RecordNotFoundError",
    "RecordUnavailableError",
    "RunContext",
    "RunId",
    "Schema",
    "SinkError",
    "Status",
    "ThreadPoolExecutor",
    "UnknownFieldError",
    "bind",
    "child_env",
    "client_run",
    "client_run_id",
    "collect",
    "configure",
    "configure_from_env",
    "current_client_id",
    "current_run_id",
    "diagnostics",
    "extract",
    "flush",
    "generate_run_id",
    "incr",
    "inject",
    "note",
    "parse_run_id",
    "restore",
    "shutdown",
    "sinks",
    "tracked_job",
    "tracking",
    "update",
]
