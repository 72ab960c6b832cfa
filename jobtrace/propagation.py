"""Carrying a run across threads, processes and messages.

``contextvars`` already follow ``await``, ``asyncio`` tasks and
``asyncio.to_thread``. Everything else loses them: a ``threading.Thread`` and a
``concurrent.futures.ThreadPoolExecutor`` worker start with an empty context,
and another process starts with nothing at all. This module closes those gaps:

- threads: :func:`bind` (wrap a callable in the caller's run context) and
  :class:`ThreadPoolExecutor` (a drop-in executor that submits every task in the
  submitter's context); ``threading.Thread(target=jobtrace.bind(fn))``;
- processes: :func:`child_env` (environment variables for a subprocess, whose
  ``tracked_job`` and ``client_run`` then join the parent's run);
- messages: :func:`inject` / :func:`extract` (the same through a dict: task
  headers, a webhook payload);
- back in the parent: :func:`collect` (count a client run that a child process
  recorded into the parent's job roll-ups).

Ownership across processes: the process that started a run owns its job
record; a joined process never creates, updates or completes it (see
:class:`~jobtrace.records.JoinedJobRun`). A client run belongs to the process
that started it.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import logging
from collections.abc import Callable, Mapping, MutableMapping
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from . import tracker
from .changes import CLIENT
from .context import CLIENT_ID_ENV, RUN_ID_ENV, JobScope, ParentRun, client_scope, job_scope
from .errors import InvalidRunIdError, NoActiveRunError, RecordNotFoundError
from .instrument import exit_job, join_parent
from .process_state import state
from .records import JobRun
from .run_ids import validate_client_id, validate_job_run_id
from .statuses import FAILED_STATUSES, Status

__all__ = [
    "CARRIER_CLIENT_ID",
    "CARRIER_RUN_ID",
    "RunContext",
    "ThreadPoolExecutor",
    "bind",
    "child_env",
    "collect",
    "extract",
    "inject",
]

P = ParamSpec("P")
R = TypeVar("R")

#: The keys :func:`inject` writes into a carrier (header-friendly: no underscores).
CARRIER_RUN_ID = "jobtrace-run-id"
CARRIER_CLIENT_ID = "jobtrace-client-id"

logger = logging.getLogger("jobtrace")


# -- threads ---------------------------------------------------------------------


def bind(fn: Callable[P, R]) -> Callable[P, R]:
    """Return a callable that runs ``fn`` in the caller's run context, from any thread.

    The context is captured now (``contextvars.copy_context()``), at bind time,
    not when the callable runs. Each call runs in its own copy of it, so one
    bound callable may run in many threads at once, and whatever ``fn`` sets in
    contextvars stays inside that call. For sync callables; a coroutine
    function needs no binding (``asyncio`` tasks copy the context already)::

        threading.Thread(target=jobtrace.bind(work), args=(item,)).start()
    """
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        # A Context can be entered by one thread at a time; a fresh copy per call can't clash.
        return ctx.copy().run(fn, *args, **kwargs)

    return bound


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """``concurrent.futures.ThreadPoolExecutor`` whose tasks run in the submitter's run context.

    ``submit`` (and so ``map``) captures the context at the call, so a task
    submitted inside a ``tracked_job``/``client_run`` writes to that run, even
    though the worker thread was started earlier, by someone else.
    """

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[R]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)  # type: ignore[arg-type]


# -- processes and messages -----------------------------------------------------------


def _current_parent() -> ParentRun | None:
    client = client_scope.get()
    if client is not None:
        return ParentRun(client.run.run_id, client.run.client_id)
    job = job_scope.get()
    if job is not None:
        # A client run handed to this process travels on to its own children.
        return ParentRun(job.run.run_id, job.handed_client)
    return None


def child_env() -> dict[str, str]:
    """Environment variables that make a subprocess join the current run.

    ``{"JOBTRACE_RUN_ID": ...}``, plus ``"JOBTRACE_CLIENT_ID"`` inside a client
    run; empty outside any run. Merge them into the child's environment::

        subprocess.run(cmd, env={**os.environ, **jobtrace.child_env()})

    In the child, ``tracked_job`` and ``client_run`` use the parent's run ID
    instead of starting a run of their own; the parent keeps owning the job
    record. The child reads the variables once, at its first run.
    """
    parent = _current_parent()
    if parent is None:
        return {}
    env = {RUN_ID_ENV: parent.run_id}
    if parent.client_id is not None:
        env[CLIENT_ID_ENV] = parent.client_id
    return env


def inject(carrier: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Write the current run into ``carrier`` (task headers, a webhook payload) and return it.

    Sets ``jobtrace-run-id`` and, inside a client run, ``jobtrace-client-id``.
    Outside any run the carrier is returned unchanged.
    """
    parent = _current_parent()
    if parent is not None:
        carrier[CARRIER_RUN_ID] = parent.run_id
        if parent.client_id is not None:
            carrier[CARRIER_CLIENT_ID] = parent.client_id
    return carrier


def extract(carrier: Mapping[str, Any]) -> RunContext:
    """Read a run from a carrier written by :func:`inject` (or an environment from :func:`child_env`).

    Accepts the ``jobtrace-run-id``/``jobtrace-client-id`` keys and the
    ``JOBTRACE_RUN_ID``/``JOBTRACE_CLIENT_ID`` ones. A carrier without a run ID
    gives an empty :class:`RunContext` (``run_id`` None; entering it does
    nothing). A malformed run ID or client ID raises ``InvalidRunIdError`` /
    ``InvalidClientIdError``: the carrier is input from outside, and attaching
    its updates to the wrong run (or none) is worse than a clear error.
    """
    raw_run = carrier.get(CARRIER_RUN_ID, carrier.get(RUN_ID_ENV))
    raw_client = carrier.get(CARRIER_CLIENT_ID, carrier.get(CLIENT_ID_ENV))
    if raw_run is None or raw_run == "":
        return RunContext(None, None)
    if not isinstance(raw_run, str):
        raise InvalidRunIdError(f"the carrier's run ID must be a string, got {type(raw_run).__name__}")
    run_id = validate_job_run_id(raw_run.strip())
    client_id = validate_client_id(raw_client) if raw_client not in (None, "") else None
    return RunContext(run_id, client_id)


class RunContext:
    """A run handed over by another process or a message, from :func:`extract`.

    ``with jobtrace.extract(headers):`` makes the block part of that run, as a
    child process is: ``client_run(client_id)`` uses its run ID (and continues
    the handed-over client run when ``client_id`` matches, without completing
    it), ``tracked_job`` joins it, and the job record stays the owner's. When
    this process owns the run itself (a webhook served by the process running
    the job), the block joins the live run. Or pass ``.run_id`` on:
    ``client_run(client_id, run_id=ctx.run_id)``.
    """

    __slots__ = ("client_id", "run_id")

    def __init__(self, run_id: str | None, client_id: str | None = None) -> None:
        self.run_id = run_id
        self.client_id = client_id

    def __bool__(self) -> bool:
        return self.run_id is not None

    def __enter__(self) -> RunContext:
        # The scope lives in the contextvar; the token of each entry is reset at exit.
        if self.run_id is not None:
            scope = join_parent(tracker.get_config(), ParentRun(self.run_id, self.client_id))
            scope.token = job_scope.set(scope)
            current = client_scope.get()
            if current is not None and current.run.run_id != self.run_id:
                # A client run of another run does not belong to this one.
                scope.client_token = client_scope.set(None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.run_id is None:
            return
        scope = job_scope.get()
        if isinstance(scope, JobScope) and scope.run.run_id == self.run_id:
            exit_job(scope, exc)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunContext) and (self.run_id, self.client_id) == (other.run_id, other.client_id)

    def __hash__(self) -> int:
        return hash((self.run_id, self.client_id))

    def __repr__(self) -> str:
        return f"RunContext(run_id={self.run_id!r}, client_id={self.client_id!r})"


# -- back in the parent ------------------------------------------------------------


def collect(client_id: str, run_id: str | None = None, record: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Count a client run recorded by another process into this process's job, and return its record.

    Call it in the process that owns the job, after the child that ran
    ``client_run(client_id)`` has exited (its sinks flush at exit). The client
    record is read back through the sinks (``Sink.read``; the Airtable sink can,
    a MemorySink cannot see another process) and rolled up into the job:
    ``Clients Processed``/``Succeeded``/``Failed`` and the summed counters.
    Collecting a client twice counts it once. A record still ``Running`` (the
    child died before finishing) counts as failed. ``record=`` (the client
    run's fields, e.g. returned by a worker as ``client.fields()``) is used
    instead of reading back.

    Inside ``client_run(client_id)`` of the same run (the parent handed its own
    client run to the child), the live client run instead continues from the
    record, so the parent's next writes build on the child's.

    Raises ``NoActiveRunError`` without a job to count into, and
    ``RecordNotFoundError`` when no sink can read the record back.
    """
    validate_client_id(client_id)
    job = job_scope.get()
    if run_id is None:
        if job is None:
            raise NoActiveRunError("jobtrace.collect() needs a job: call it inside tracked_job, or pass run_id=")
        run_id = job.run.run_id
    else:
        run_id = validate_job_run_id(run_id)
    if record is None:
        record = tracker.read_record(CLIENT, run_id, client_id)
    if record is None:
        raise RecordNotFoundError(
            f"no sink could read back client run {run_id}-{client_id}: collect() needs a sink that can "
            f"read what another process wrote (the Airtable sink), and the child must have flushed "
            f"(it does at exit)"
        )
    fields = dict(record)
    live = client_scope.get()
    if live is not None and live.run.run_id == run_id and live.run.client_id == client_id:
        live.run.continue_from(fields)
        return fields
    job_run: JobRun | None = job.run if job is not None and job.run.run_id == run_id else state.live_job(run_id)
    if job_run is None:
        raise NoActiveRunError(f"jobtrace.collect(): this process does not run job {run_id}")
    schema = tracker.get_config().schema
    status = fields.get(schema.client.names.status)
    if status == Status.RUNNING or status is None:
        logger.warning("jobtrace: client run %s-%s is still %s; counted as failed", run_id, client_id, status)
    failed = status in FAILED_STATUSES or status in (Status.RUNNING, None)
    counters = {
        name: value
        for name in schema.rollup_counters
        if isinstance(value := fields.get(name), (int, float)) and not isinstance(value, bool)
    }
    job_run.rollup(client_id, failed, counters)
    return fields
