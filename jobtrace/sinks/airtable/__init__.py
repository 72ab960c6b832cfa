"""AirtableSink: one Airtable record per run, written in the background, never lost.

::

    import jobtrace
    from jobtrace.sinks import AirtableSink

    jobtrace.configure(sinks=[AirtableSink.from_env()])   # AIRTABLE_API_KEY, AIRTABLE_BASE_ID

Every record is created and updated with an upsert on its key fields (``Run
ID``; ``Run ID`` + ``Client ID`` for client runs), by the delivery engine
(:mod:`jobtrace.delivery.engine`: coalesces, journals, batches, stays within
the base's shared budget, retries, sets aside what Airtable refuses) over an
:class:`~jobtrace.delivery.airtable.AirtableTransport`. The sink adds
Airtable's lifecycle work: the schema check, which runs this process has open
(for closing a dead process's runs), heartbeats riding on writes, run-ID
claims and reads.
Needs the ``airtable`` extra: ``pip install 'jobtrace[airtable]'``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

try:
    from pyairtable import Api, formulas
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("AirtableSink needs pyairtable: pip install 'jobtrace[airtable]'") from exc

from ...changes import CLIENT, END, JOB, START, Change
from ...delivery.airtable import AirtableError, AirtableTransport
from ...delivery.engine import DeliveryEngine, EngineClosed
from ...delivery.journal import Journal, RunEvent, default_journal_path, record_key
from ...errors import ConfigurationError, JobtraceError, SinkError
from ...redaction import redact
from ...schema import Schema, TableSchema
from ...statuses import Status
from ..base import Sink
from . import checked
from .budget import DEFAULT_APPLICATION_HEADROOM, Budget, budget_for, budgeted_api
from .check import TRACKER_STATUSES, Problem, base_metadata, check_base, check_metadata
from .credentials import check_endpoint_url, clean_api_key
from .reads import DEFAULT_TIMEOUT, BaseReader
from .redis_link import RedisLink, RedisUnavailable, redis_link
from .replay import ReplayResult, replay

__all__ = [
    "TRACKER_STATUSES",
    "AirtableSink",
    "BaseReader",
    "Budget",
    "Problem",
    "ReplayResult",
    "base_metadata",
    "budget_for",
    "budgeted_api",
    "check_base",
    "default_journal_path",
    "make_api",
    "replay",
    "run_roles",
]

logger = logging.getLogger("jobtrace")

DEFAULT_ENDPOINT = "https://api.airtable.com"
#: How often read() tries before giving up (with the sink's backoff between tries).
READ_ATTEMPTS = 5
#: How often a live job refreshes its ``Last Heartbeat`` (when the base has the field), in seconds.
HEARTBEAT_INTERVAL = 60.0
#: How long closing dead runs found at start may wait for their leftovers to be delivered.
DEAD_RUNS_WAIT = 120.0
#: How long a new job waits, at most, for a slot to look its run ID up in the base (no Redis).
RUN_ID_CHECK_WAIT = 3.0
#: How long a run ID claimed in Redis stays claimed, in seconds.
RUN_ID_CLAIM_TTL = 86_400


def make_api(api_key: str, endpoint_url: str | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> Api:
    """A ``pyairtable.Api`` without pyairtable's own retries: jobtrace retries itself.

    (pyairtable's default retry gives up on a 429 after about 3 seconds, while
    Airtable refuses the base for 30.) The key is stripped of surrounding
    whitespace; one that can never be a header value is a ``ConfigurationError``
    that does not show it.
    """
    api_key = clean_api_key(api_key)
    # pyairtable annotates timeout as tuple[int, int]; requests takes floats.
    return Api(
        api_key,
        timeout=timeout,  # type: ignore[arg-type]
        retry_strategy=False,
        endpoint_url=check_endpoint_url(endpoint_url or DEFAULT_ENDPOINT),
    )


class AirtableSink(Sink):
    """Writes job and client run records to an Airtable base.

    Args:
        api_key: an Airtable personal access token (scopes ``data.records:read``,
            ``data.records:write``, and ``schema.bases:read`` for the schema check).
            Used for requests only: never logged, shown or stored.
        base_id: the base (``app...``).
        schema: the field mapping; by default the one jobtrace is configured with.
        endpoint_url: another API endpoint (e.g. the local emulator).
        journal_path: the SQLite journal of undelivered changes; default
            ``$JOBTRACE_JOURNAL`` or ``$XDG_STATE_HOME/jobtrace/journal.sqlite3``.
        check_schema: check the base's schema at ``start()`` (metadata API; a check of this base with this
            token that passed on this host within the hour is not repeated, see :mod:`.checked`).
        requests_per_second: the base's whole request budget (Airtable allows 5), shared by every
            jobtrace process of this host, and of every host sharing ``redis_url``.
        application_headroom: requests per second of that budget jobtrace leaves to the
            application (its calls through :meth:`api`); jobtrace itself uses the rest.
        redis_url: a Redis shared by every host writing the base (default ``$JOBTRACE_REDIS_URL``):
            one budget and unique run IDs across hosts. Needs ``pip install 'jobtrace[redis]'``.
        rate_limit_penalty: how long to leave the base alone after a 429 (Airtable: 30 s).
        backoff_initial, backoff_max: retry delays after 5xx and network errors (doubling, capped).
        timeout: ``(connect, read)`` seconds per request.
        deliver_leftovers: on ``start()``, also deliver what earlier processes left in the journal,
            then end the runs a dead process on this host left open as ``Interrupted``.
        heartbeat_interval: how often a live job refreshes its ``Last Heartbeat`` field (when the base
            has one; client runs' heartbeats ride on their own writes).

    ``write()`` only queues; see :mod:`jobtrace.delivery.engine` for what the
    delivery engine does and guarantees.
    """

    coalesces = True  # the engine merges a record's pending changes into one write anyway

    def __init__(
        self,
        api_key: str,
        base_id: str,
        schema: Schema | None = None,
        endpoint_url: str | None = None,
        journal_path: str | os.PathLike[str] | None = None,
        *,
        check_schema: bool = True,
        requests_per_second: float = 5.0,
        application_headroom: int = DEFAULT_APPLICATION_HEADROOM,
        redis_url: str | None = None,
        rate_limit_penalty: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        deliver_leftovers: bool = True,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
    ) -> None:
        if not base_id or not isinstance(base_id, str) or not base_id.startswith("app"):
            raise ConfigurationError(f"not an Airtable base ID: {base_id!r} (expected 'app' + 14 characters)")
        self._base_id = base_id
        self._endpoint = check_endpoint_url(endpoint_url or DEFAULT_ENDPOINT)
        # Separate clients: requests.Session is not meant to be shared between the
        # engine's sender thread and callers of read()/start().
        self._api = make_api(api_key, self._endpoint, timeout)
        self._read_api = make_api(api_key, self._endpoint, timeout)
        self._claim_lock = threading.Lock()
        self._timeout = timeout
        self._schema_override = schema
        self._schema: Schema | None = None
        self._journal_path = journal_path
        self._check = check_schema
        if redis_url is None:
            redis_url = os.environ.get("JOBTRACE_REDIS_URL") or None
        self._redis: RedisLink | None = redis_link(redis_url) if redis_url else None
        self._redis_url = redis_url
        self._throttle: Budget = budget_for(
            self._endpoint,
            base_id,
            requests_per_second=requests_per_second,
            application_headroom=application_headroom,
            redis_url=redis_url or "",
        )
        # The sink's reads (read, read_client_runs) and its run ID lookups: within the budget, one retry policy.
        self._reader = BaseReader(
            api_key,
            base_id,
            self._endpoint,
            self._throttle,
            rate_limit_penalty=rate_limit_penalty,
            attempts=READ_ATTEMPTS,
            backoff=(backoff_initial, backoff_max),
            slot_wait=rate_limit_penalty + 5.0,
            timeout=timeout,
        )
        # A lookup of its own (no retries, a short wait for a slot): a new job does not wait on it.
        self._claim_reader = BaseReader(
            api_key,
            base_id,
            self._endpoint,
            self._throttle,
            rate_limit_penalty=rate_limit_penalty,
            max_rate_limited=0,
            attempts=1,
            slot_wait=RUN_ID_CHECK_WAIT,
            timeout=timeout,
        )
        self._run_id_checks = {"claimed_in_redis": 0, "checked_in_base": 0, "taken": 0, "unchecked": 0}
        self._penalty = rate_limit_penalty
        self._backoff = (backoff_initial, backoff_max)
        self._deliver_leftovers = deliver_leftovers
        self._key_fields: dict[str, tuple[str, ...]] = {}
        self._tables: dict[str, TableSchema] = {}
        self._journal: Journal | None = None
        self._engine: DeliveryEngine | None = None
        self._problems: list[Problem] = []
        # Runs open in this process (started, not ended): change key -> (table, record key).
        self._live: dict[Any, tuple[str, str]] = {}
        self._live_lock = threading.Lock()
        self._beats: dict[Any, float] = {}
        self._heartbeat_field: dict[str, str | None] = {}
        self._roles: dict[str, dict[str, Any]] = {}
        self._heartbeat_interval = heartbeat_interval
        self._stopped = threading.Event()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> AirtableSink:
        """Build from ``AIRTABLE_API_KEY``, ``AIRTABLE_BASE_ID``, optional ``AIRTABLE_ENDPOINT_URL`` and
        ``JOBTRACE_JOURNAL`` and ``JOBTRACE_REDIS_URL``; keyword arguments override (e.g. ``check_schema=False``)."""
        env = os.environ if env is None else env
        api_key = env.get("AIRTABLE_API_KEY", "").strip()
        base_id = env.get("AIRTABLE_BASE_ID", "").strip()
        missing = [name for name, value in (("AIRTABLE_API_KEY", api_key), ("AIRTABLE_BASE_ID", base_id)) if not value]
        if missing:
            raise ConfigurationError(f"set {' and '.join(missing)} to use the Airtable sink")
        kwargs.setdefault("endpoint_url", env.get("AIRTABLE_ENDPOINT_URL") or None)
        kwargs.setdefault("journal_path", env.get("JOBTRACE_JOURNAL") or None)
        kwargs.setdefault("redis_url", env.get("JOBTRACE_REDIS_URL") or "")
        return cls(api_key, base_id, **kwargs)

    # -- the sink verbs ----------------------------------------------------------------

    def start(self, schema: Schema) -> None:
        """Check the base against the mapping (``ConfigurationError`` if it cannot work), start the engine."""
        schema = self._schema_override or schema
        seen: dict[str, Any] = {}
        if self._check:
            # A check of this base that passed lately on this host is not repeated (no request at the job's
            # start, when the budget is needed most; see .checked); one that would fail is, against the base.
            problems = []
            remembered = checked.remembered(self._endpoint, self._base_id, self._read_api.api_key)
            if remembered is not None:
                problems = check_metadata(remembered, self._base_id, schema)
                seen.update(remembered)
            if remembered is None or any(p.severity == "error" for p in problems):
                seen.clear()
                slot = self._throttle.acquire(timeout=self._penalty + 5.0)
                try:
                    problems = check_base(self._read_api, self._base_id, schema, seen=seen)
                finally:
                    if slot is not None:
                        self._throttle.done(slot)
                if seen and not any(p.severity == "error" for p in problems):
                    checked.remember(self._endpoint, self._base_id, self._read_api.api_key, seen)
            self._problems = problems
            for problem in problems:
                if problem.severity == "warning":
                    logger.warning("jobtrace: Airtable base %s: %s", self._base_id, problem)
            errors = [p for p in problems if p.severity == "error"]
            if errors:
                raise ConfigurationError(
                    f"Airtable base {self._base_id} does not fit jobtrace's field mapping:\n"
                    + "\n".join(f"  - {p}" for p in errors)
                )
        self._schema = schema
        self._tables = {JOB: schema.job, CLIENT: schema.client}
        client_key = (schema.client.names.run_id, schema.client.names.client_id or schema.client.names.run_id)
        self._key_fields = {
            JOB: (schema.job.names.run_id,),
            CLIENT: tuple(dict.fromkeys(client_key)),
        }
        if self._engine is None:
            self._journal = Journal(self._journal_path)
            self._engine = delivery_engine(
                self._api,
                self._base_id,
                self._journal,
                self._throttle,
                rate_limit_penalty=self._penalty,
                backoff=self._backoff,
                claim_leftovers=self._deliver_leftovers,
            )
            for kind, table in self._tables.items():
                self._heartbeat_field[kind] = table.names.heartbeat or _heartbeat_in(seen, table.name)
                self._roles[kind] = run_roles(schema, kind)
                self._roles[kind]["heartbeat"] = self._heartbeat_field[kind]
            if self._deliver_leftovers:
                threading.Thread(target=self._close_dead_runs, name="jobtrace-dead-runs", daemon=True).start()
            if self._heartbeat_field.get(JOB):
                threading.Thread(target=self._heartbeat, name="jobtrace-heartbeat", daemon=True).start()

    def write(self, change: Change) -> None:
        """Queue the change for the delivery engine: O(1), thread-safe, no I/O."""
        engine = self._engine
        if engine is None:
            raise SinkError("AirtableSink.write() before start(): configure it with jobtrace.configure(sinks=[...])")
        kind, event, table = change.kind, change.event, change.table
        key_fields = self._key_fields[kind]
        fields = change.fields
        beat = self._heartbeat_field.get(kind)
        if event in (START, END):
            key = record_key(key_fields, dict(fields))
            with self._live_lock:  # in step with closing dead runs (a resumed run stays open)
                if event == START:
                    self._live[change.key] = (table, key)
                    if beat is not None:
                        fields = {**fields, beat: _now_iso()}
                        self._beats[change.key] = time.monotonic()
                    run_event = RunEvent(table, key, key_fields, True, self._roles[kind])
                else:
                    self._live.pop(change.key, None)
                    self._beats.pop(change.key, None)
                    run_event = RunEvent(table, key, key_fields, False)
                _submit(engine, table, key_fields, fields, change.key, run_event)
            return
        if beat is not None and change.key in self._live:
            # The heartbeat rides on the record's own writes (no request of its own).
            now = time.monotonic()
            if now - self._beats.get(change.key, 0.0) >= self._heartbeat_interval / 2:
                self._beats[change.key] = now
                fields = {**fields, beat: _now_iso()}
        _submit(engine, table, key_fields, fields, change.key)

    def open_here(self, table: str, key: str) -> bool:
        """Whether this process has that record's run open."""
        return (table, key) in set(self._live.values())

    def _close_dead_runs(self) -> None:
        from .dead_runs import close_dead_runs

        engine, journal = self._engine, self._journal
        if engine is None or journal is None or not engine.wait_ready(30.0):
            return
        try:
            close_dead_runs(
                self._read_api,
                self._base_id,
                engine,
                journal,
                self._throttle,
                time.monotonic() + DEAD_RUNS_WAIT,
                open_here=self.open_here,
                guard=self._live_lock,
            )
        except Exception as exc:
            logger.error("jobtrace: closing runs left open by dead processes failed: %s", exc)

    def _heartbeat(self) -> None:
        """Refresh ``Last Heartbeat`` of this process's live jobs whose writes did not carry it lately."""
        beat = self._heartbeat_field[JOB]
        assert beat is not None
        table = self._tables[JOB]
        while not self._stopped.wait(self._heartbeat_interval / 2):
            engine = self._engine
            if engine is None:
                return
            now = time.monotonic()
            with self._live_lock:
                due = [
                    k for k in self._live if k[0] == JOB and now - self._beats.get(k, 0.0) >= self._heartbeat_interval
                ]
                for key in due:
                    self._beats[key] = now
            for key in due:
                try:
                    fields = {table.names.run_id: key[1], beat: _now_iso()}
                    engine.submit(table.name, self._key_fields[JOB], fields, key=key)
                except EngineClosed:
                    return

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every change written so far is in Airtable (True), or ``timeout`` seconds."""
        engine = self._engine
        return True if engine is None else engine.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Flush within ``timeout``; what is still undelivered stays in the journal for the next start or replay."""
        engine = self._engine
        if engine is None:
            return
        self._stopped.set()
        engine.close(timeout)
        if engine.stats.set_aside:
            # Airtable refused something: the base may have changed since its check; the next start checks it.
            checked.forget(self._endpoint, self._base_id, self._read_api.api_key)

    def read(self, kind: str, run_id: str, client_id: str | None) -> Mapping[str, Any] | None:
        """The record as Airtable has it, with every change not yet delivered merged on top.

        One request, filtered with a formula built by ``pyairtable.formulas``;
        also merges what earlier processes left undelivered in the journal.
        Raises ``SinkError`` when Airtable cannot be read.
        """
        table = self._tables.get(kind)
        if table is None:
            raise SinkError("AirtableSink.read() before start()")
        names = table.names
        if kind == CLIENT:
            if client_id is None:
                raise ValueError("a client record needs its client_id")
            match: dict[str, Any] = {names.run_id: f"{run_id}-{client_id}"}
            if names.client_id is not None:
                match[names.client_id] = client_id
        else:
            match = {names.run_id: run_id}
        key = record_key(self._key_fields[kind], match)
        try:
            found: dict[str, Any] | None = self._fetch(table.name, formulas.match(match), run_id)
        except SinkError:
            raise
        except Exception as exc:  # e.g. text the HTTP client cannot encode: still the sink's failure
            raise SinkError(
                redact(f"could not read run {run_id} from Airtable base {self._base_id}: {type(exc).__name__}: {exc}")
            ) from None
        merged: dict[str, Any] = dict(found or {})
        if self._journal is not None:
            for row in self._journal.rows(self._base_id, table.name, key):
                merged.update(row.fields)
        if self._engine is not None:
            merged.update(self._engine.pending_fields(table.name, key))
        if found is None and not merged:
            return None
        return {k: v for k, v in merged.items() if v is not None}

    def read_client_runs(self, run_id: str) -> list[Mapping[str, Any]] | None:
        """Every client record of job run ``run_id`` as Airtable has it (one request per 100 records),
        with this process's undelivered changes on top. Raises ``SinkError`` when Airtable cannot be read."""
        table = self._tables.get(CLIENT)
        if table is None:
            raise SinkError("AirtableSink.read_client_runs() before start()")
        try:
            found = self._reader.client_runs(table.name, table.names.run_id, run_id)
        except AirtableError as exc:
            raise SinkError(f"could not read the client runs of {run_id} from Airtable: {exc}") from None
        if self._engine is not None:
            for fields in found:
                key = record_key(self._key_fields[CLIENT], fields)
                fields.update(self._engine.pending_fields(table.name, key))
        return list(found)

    def _fetch(self, table_name: str, formula: formulas.Formula, run_id: str) -> dict[str, Any] | None:
        try:
            record = self._reader.first(table_name, formula)
        except AirtableError as exc:
            raise SinkError(redact(f"could not read run {run_id} from Airtable base {self._base_id}: {exc}")) from None
        return dict(record["fields"]) if record is not None else None

    def claim_run_id(self, run_id: str) -> bool:
        """Claim a new job run ID across hosts: False if another job already has it.

        With Redis: ``SET jobtrace:run-id:<run ID> NX`` (expiring after a day).
        Without Redis (or while it cannot be reached): one look at the base for a
        job record with this run ID, within jobtrace's share of the budget; if no
        slot frees up within a few seconds or the look fails, the run ID is
        taken as free (logged). Two hosts starting a job in the same second can
        then both find it free: the window lasts from this look until the first
        write of the job record reaches Airtable (see the README).
        """
        link = self._redis
        if link is not None:
            value = f"{socket.gethostname()} {os.getpid()}"
            try:
                claimed = link.call(
                    lambda client: client.set(f"jobtrace:run-id:{run_id}", value, nx=True, ex=RUN_ID_CLAIM_TTL)
                )
            except RedisUnavailable:
                pass  # look at the base instead
            else:
                self._run_id_checks["claimed_in_redis"] += 1
                if not claimed:
                    self._run_id_checks["taken"] += 1
                return bool(claimed)
        table = self._tables.get(JOB)
        if table is None:
            return True  # not started: nothing written by this sink yet
        taken = self._base_has_job(table, run_id)
        if taken is None:
            self._run_id_checks["unchecked"] += 1
            return True
        self._run_id_checks["checked_in_base"] += 1
        if taken:
            self._run_id_checks["taken"] += 1
        return not taken

    def _base_has_job(self, table: TableSchema, run_id: str) -> bool | None:
        """Whether the base has a job record with ``run_id`` (None: could not tell in time)."""
        try:
            with self._claim_lock:
                found = self._claim_reader.first(
                    table.name, formulas.match({table.names.run_id: run_id}), fields=[table.names.run_id]
                )
        except AirtableError as exc:
            logger.warning(
                "jobtrace: run %s: could not check that the run ID is free in base %s (%s); going on with it",
                run_id,
                self._base_id,
                exc.reason if exc.kind != "busy" else f"no request slot within {RUN_ID_CHECK_WAIT:.0f} s",
            )
            return None
        return found is not None

    def api(self) -> Api:
        """A ``pyairtable.Api`` for the application's own calls to this base, within the shared budget.

        Its requests (to this sink's endpoint) draw from the same budget as the
        sink's, the whole of it (jobtrace leaves ``application_headroom`` of it
        free for them), across processes and, with Redis, hosts; after a 429,
        from anyone, they wait the penalty out like the sink does. So the
        application's calls and the tracking do not 429 each other. Same token,
        same timeouts; each call returns a new ``Api`` (a ``requests.Session`` is
        not meant to be shared between threads).
        """
        return budgeted_api(
            self._read_api.api_key,
            self._throttle,
            self._endpoint,
            application=True,
            rate_limit_penalty=self._penalty,
            timeout=self._timeout,
        )

    @property
    def budget(self) -> Budget:
        """This sink's view of the base's shared request budget."""
        return self._throttle

    # -- introspection -------------------------------------------------------------------

    @property
    def base_id(self) -> str:
        return self._base_id

    @property
    def endpoint_url(self) -> str:
        return self._endpoint

    @property
    def journal_path(self) -> str | None:
        """Where undelivered changes are kept (None before ``start()``)."""
        return self._journal.path if self._journal is not None else None

    @property
    def problems(self) -> list[Problem]:
        """What the schema check found at ``start()`` (warnings included)."""
        return list(self._problems)

    def diagnostics(self) -> dict[str, Any]:
        """Counts worth watching: requests, deliveries, 429s, retries, undeliverable records, backlog."""
        engine = self._engine
        if engine is None:
            return {"started": False}
        stats = engine.stats
        return {
            "started": True,
            "writer_alive": engine.alive,
            "requests": stats.requests,
            "records_delivered": stats.records_delivered,
            "changes_submitted": stats.changes_submitted,
            "rate_limited": stats.rate_limited,
            "retries": stats.retries,
            "batches_split": stats.batches_split,
            "undeliverable": stats.set_aside,
            "leftovers_claimed": stats.leftovers_claimed,
            "journal_failures": stats.journal_failures,
            "not_kept": engine.not_kept(),
            "backlog": engine.backlog,
            "journal": engine.journal.path,
            "last_error": stats.last_error,
            "budget_shared_through": self._throttle.shared_through,
            "jobtrace_share": self._throttle.jobtrace_share,
            "redis": None if self._redis is None else {"url": self._redis.where, "up": self._redis.up},
            "run_id_checks": dict(self._run_id_checks),
        }

    def __repr__(self) -> str:
        return f"<AirtableSink base={self._base_id} endpoint={self._endpoint}>"


def delivery_engine(
    api: Api,
    base_id: str,
    journal: Journal,
    budget: Budget,
    *,
    rate_limit_penalty: float = 30.0,
    backoff: tuple[float, float] = (0.5, 30.0),
    claim_leftovers: bool = True,
) -> DeliveryEngine:
    """A started delivery engine for one base: its journal, its shared budget, an :class:`AirtableTransport`."""
    return DeliveryEngine(
        AirtableTransport(api, base_id, rate_limit_penalty),
        limiter=budget,
        backoff_initial=backoff[0],
        backoff_max=backoff[1],
        journal=journal,
        destination=base_id,
        name=f"Airtable base {base_id}",
        claim_leftovers=claim_leftovers,
    )


def _submit(
    engine: DeliveryEngine,
    table: str,
    key_fields: tuple[str, ...],
    fields: Mapping[str, Any],
    key: Any,
    event: RunEvent | None = None,
) -> None:
    try:
        engine.submit(table, key_fields, fields, key=key, event=event)
    except EngineClosed:
        raise SinkError("this AirtableSink is closed; configure a new one") from None


def run_roles(schema: Schema, kind: str) -> dict[str, Any]:
    """The field names that end a record of ``kind`` (for a job: also those of its roll-ups)."""
    table = schema.job if kind == JOB else schema.client
    names = table.names
    roles: dict[str, Any] = {
        "run_id": names.run_id,
        "status": names.status,
        "end_time": names.end_time,
        "notes": names.notes,
        "heartbeat": names.heartbeat,
    }
    for status in (Status.RUNNING, Status.INTERRUPTED):  # as the base calls them (status aliases)
        try:
            roles[status.lower()] = table.normalize_status(status)
        except JobtraceError:
            roles[status.lower()] = status
    if kind == JOB:
        roles.update(
            client_table=schema.client.name,
            client_run_id=schema.client.names.run_id,
            client_status=schema.client.names.status,
            clients_processed=names.clients_processed,
            clients_succeeded=names.clients_succeeded,
            clients_failed=names.clients_failed,
            counters=list(schema.rollup_counters),
        )
    return roles


def _heartbeat_in(metadata: Mapping[str, Any], table_name: str) -> str | None:
    """The base's ``Last Heartbeat`` dateTime field in ``table_name``, when the mapping does not name one."""
    from ...schema import CLIENT_ROLES, DATETIME_TYPES

    for table in metadata.get("tables", []):
        if table.get("name") == table_name:
            for field in table.get("fields", []):
                if field.get("name") == CLIENT_ROLES["heartbeat"] and field.get("type") in DATETIME_TYPES:
                    return CLIENT_ROLES["heartbeat"]
    return None


def _now_iso() -> str:
    from ...changes import utc_iso

    return utc_iso()
