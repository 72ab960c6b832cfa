"""The migration guide's explicit functions, for code outside any run context.

One function per function of the old ``simpleJobTracking`` service, on the same
machinery as ``tracked_job``/``client_run`` (the same :class:`~jobtrace.JobRun`
and :class:`~jobtrace.ClientRun` state, the same sinks, the same field
mapping)::

    from jobtrace import tracking

    run_id = tracking.generate_run_id()
    tracking.create_job_tracking_record(run_id, "post-scoring", {"System Notes": "Started batch scoring job"})
    tracking.create_client_run_record(run_id, "Guy-Wilson", {"Posts Processed": 0})
    tracking.update_client_run_record(run_id, "Guy-Wilson", {"postsProcessed": 42, "tokenUsage": 15000})
    tracking.complete_client_run_record(run_id, "Guy-Wilson", "completed", {"notes": "All posts processed"})
    tracking.complete_job_tracking_record(run_id, "completed")

Every function is idempotent and returns the record as this process knows it:
a dict of its fields by Airtable name (what was read back from a sink, plus
everything written since). Keys of ``initial_data``/``updates`` may be logical
names (``posts_processed``, ``notes``, ``progress``), the guide's camelCase
(``postsProcessed``, ``tokenUsage``) or Airtable names (``'System Notes'``,
``'Posts Processed'``); an unknown or computed name raises before any record
is touched (``'Notes'`` and ``'Source'`` point to ``'System Notes'``).
``notes`` appends a timestamped line; ``status`` is normalised
(``'completed'`` -> ``Completed``).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from . import tracker
from .changes import CLIENT, JOB
from .errors import InvalidValueError
from .process_state import state
from .records import ClientRun, JobRun, JoinedJobRun
from .run_ids import generate_run_id, validate_client_id, validate_job_run_id
from .schema import TableSchema
from .statuses import Status
from .values import has_surrogates

__all__ = [
    "complete_client_run_record",
    "complete_job_tracking_record",
    "create_client_run_record",
    "create_job_tracking_record",
    "generate_run_id",
    "update_client_run_record",
    "update_job_tracking_record",
]

#: How many records the explicit API remembers (live and recently completed) per kind.
REMEMBERED: Final = 10_000

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# What this API remembers lives in jobtrace.process_state (explicit_jobs, explicit_clients),
# forgotten whenever the configuration changes. One lock for find-or-create:
# "updating a run no sink knows creates it once, never twice" must hold when two
# webhook calls for one run arrive together.


# -- the guide's functions --------------------------------------------------------------


def create_job_tracking_record(
    run_id: str, job_type: str, initial_data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Create the job record of ``run_id`` (``Running``, ``Start Time``, ``Job Type``) and return it.

    If the record exists already (in this process or in a sink), return it as
    it is: ``initial_data`` is then not applied, and nothing is written.
    """
    if not isinstance(job_type, str) or not job_type.strip() or has_surrogates(job_type):
        raise InvalidValueError(f"job_type must be a non-empty string without lone surrogates, got {job_type!r}")
    run_id = validate_job_run_id(run_id)
    schema = tracker.get_config().schema
    updates = _prepare(schema.job, initial_data)
    run, created = _job(run_id, job_type)
    if created and updates:
        run.update(**updates)
    return run.fields()


def create_client_run_record(
    run_id: str, client_id: str, initial_data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Create the client run record ``<run_id>-<client_id>`` (``Running``, ``Start Time``) and return it.

    If it exists already, return it as it is (``initial_data`` not applied).
    The job record is not created here; if this process runs the job, the
    client run is counted into its roll-ups when it completes.
    """
    run_id, client_id = validate_job_run_id(run_id), validate_client_id(client_id)
    updates = _prepare(tracker.get_config().schema.client, initial_data)
    run, created = _client(run_id, client_id)
    if created and updates:
        run.update(**updates)
    return run.fields()


def update_job_tracking_record(run_id: str, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Set fields of the job record of ``run_id`` and return it; creates the record if no sink knows it.

    ``status`` here records the status the run will end with (applied by
    :func:`complete_job_tracking_record`); ``'Running'`` is accepted and changes
    nothing. A run created by an update has no ``Job Type``.
    """
    run_id = validate_job_run_id(run_id)
    prepared = _prepare(tracker.get_config().schema.job, updates)
    run, _ = _job(run_id, None)
    if prepared:
        run.update(**prepared)
    return run.fields()


def update_client_run_record(run_id: str, client_id: str, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Set fields of a client run record and return it; creates the record if no sink knows it.

    The run is not completed (a webhook reporting progress); call
    :func:`complete_client_run_record` for that.
    """
    run_id, client_id = validate_job_run_id(run_id), validate_client_id(client_id)
    prepared = _prepare(tracker.get_config().schema.client, updates)
    run, _ = _client(run_id, client_id)
    if prepared:
        run.update(**prepared)
    return run.fields()


def complete_job_tracking_record(
    run_id: str, status: str = "completed", updates: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Apply ``updates``, then end the job run with ``status`` and ``End Time``; return the record.

    Completing a run that has ended already changes nothing (the first
    ``End Time`` and status stay) and returns the record.
    """
    run_id = validate_job_run_id(run_id)
    table = tracker.get_config().schema.job
    final = _terminal(table, status)
    prepared = _prepare(table, updates)
    run, _ = _job(run_id, None)
    return _complete(run, final, prepared)


def complete_client_run_record(
    run_id: str, client_id: str, status: str = "completed", updates: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Apply ``updates``, then end the client run with ``status`` and ``End Time``; return the record.

    Completing it again changes nothing. When this process runs the job, the
    client run is counted into the job's roll-ups (once).
    """
    run_id, client_id = validate_job_run_id(run_id), validate_client_id(client_id)
    table = tracker.get_config().schema.client
    final = _terminal(table, status)
    prepared = _prepare(table, updates)
    run, _ = _client(run_id, client_id)
    return _complete(run, final, prepared)


# -- machinery -----------------------------------------------------------------------------


def _prepare(table: TableSchema, data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Normalise keys (camelCase -> snake_case) and check every key and value before any write."""
    if not data:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidValueError(f"updates must be a mapping of field names to values, got {type(data).__name__}")
    prepared: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise InvalidValueError(f"field names must be strings, got {key!r}")
        if " " not in key and _CAMEL.search(key):
            key = _CAMEL.sub("_", key).lower()
        if key in ("status", table.names.status):
            table.normalize_status(value)
            key = "status"
        else:
            spec = table.resolve(key)
            if spec.name != table.names.notes:
                table.check_value(spec, value)
        prepared[key] = value
    return prepared


def _terminal(table: TableSchema, status: str) -> str:
    final = table.normalize_status(status)
    if final == Status.RUNNING:
        raise InvalidValueError(f"cannot complete a run with status {final!r}; use a terminal status")
    return final


def _complete(run: JobRun | ClientRun, status: str, updates: dict[str, Any]) -> dict[str, Any]:
    if run.ended:
        return run.fields()
    updates = {k: v for k, v in updates.items() if k != "status"}
    if updates:
        run.update(**updates)
    run.update(status=status)
    run.finish(None)
    return run.fields()


def _remember(registry: OrderedDict[Any, Any], key: Any, run: Any) -> None:
    registry[key] = run
    registry.move_to_end(key)
    while len(registry) > REMEMBERED:
        registry.popitem(last=False)


def _live_job(run_id: str) -> JobRun | None:
    """The job run this process holds for ``run_id`` (tracked_job or this API), if any."""
    live = state.live_job(run_id)
    if live is not None and not isinstance(live, JoinedJobRun):
        return live
    return state.explicit_jobs.get(run_id)


def _job(run_id: str, job_type: str | None) -> tuple[JobRun, bool]:
    """Find or create the job run; True when this call created its record."""
    with state.explicit_lock:
        live = _live_job(run_id)
        if live is not None:
            return live, False
        config = tracker.get_config()
        record = tracker.read_record(JOB, run_id, None)
        if record is not None:
            known = record.get(config.schema.job.names.job_type or "")
            run = JobRun(config.schema, run_id, known if isinstance(known, str) else "", attach=record)
            created = False
        else:
            run = JobRun(config.schema, run_id, job_type or "")
            created = True
        _remember(state.explicit_jobs, run_id, run)
        return run, created


def _client(run_id: str, client_id: str) -> tuple[ClientRun, bool]:
    """Find or create the client run; True when this call created its record."""
    key = (run_id, client_id)
    with state.explicit_lock:
        run = state.explicit_clients.get(key)
        if run is not None:
            return run, False
        config = tracker.get_config()
        job = _live_job(run_id)
        record = tracker.read_record(CLIENT, run_id, client_id)
        if record is not None:
            run = ClientRun(config.schema, run_id, client_id, None, job, attach=record)
            created = False
        else:
            run = ClientRun(config.schema, run_id, client_id, None, job, attach=None)
            created = True
        _remember(state.explicit_clients, key, run)
        return run, created
