"""``tracked_job`` and ``client_run``: the decorator and context-manager forms.

``tracked_job`` is one object that is a decorator and a (sync and async)
context manager. Per-call state never lives on it: each entry pushes a scope
onto a ``contextvar`` and the matching exit pops it, so one decorated function
can run many times at once (unlike sentry's cron decorator, which keeps the
check-in on the decorator object).

The decorated function keeps its name, signature and kind (``wrapt``), and
the run covers what the caller would expect:

- a coroutine function: the awaited body, not the creation of the coroutine
  (unlike ``structlog.contextvars.bound_contextvars`` used as a decorator);
- a generator or async generator: from the first ``next()`` to exhaustion or
  close, and the run's context is active only while the body runs (each step
  runs inside a context of its own, so nothing leaks to the consumer).
"""

from __future__ import annotations

import contextvars
import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import wrapt

from . import lifecycle, tracker
from .changes import CLIENT
from .context import ClientScope, JobScope, ParentRun, client_scope, inherited_run, job_scope
from .errors import InvalidValueError, NoActiveRunError
from .process_state import state
from .records import ClientRun, JobRun, JoinedJobRun
from .run_ids import MAX_CLIENT_ID_LENGTH, generate_run_id, validate_client_id, validate_job_run_id
from .values import has_surrogates

__all__ = ["client_run", "exit_job", "incr", "join_parent", "note", "tracked_job", "update"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# Job runs owned by this process live in state.active_jobs, so that
# tracked_job(run_id=X) or client_run(run_id=X) from another thread, task or
# webhook handler joins the live run instead of creating a second record for it.


# -- entering and leaving runs -------------------------------------------------


def _bind(config: tracker.Config, **values: object) -> Mapping[str, Any]:
    tokens: Mapping[str, Any] = config.structlog_contextvars.bind_contextvars(**values)
    return tokens


# structlog.contextvars backs each key with one ContextVar for the life of the process
# (bind_contextvars creates it on first use and returns the Token of setting it, whose
# .var it is). So the client ID's is found once, through structlog's own bind, and then
# set directly, as bind_contextvars would: (the structlog.contextvars module, that var).
_client_id_var: tuple[Any, contextvars.ContextVar[Any]] | None = None


def _bind_client_id(config: tracker.Config, client_id: str) -> Mapping[str, Any]:
    global _client_id_var
    cached = _client_id_var
    if cached is not None and cached[0] is config.structlog_contextvars:
        return {"client_id": cached[1].set(client_id)}
    tokens = _bind(config, client_id=client_id)
    _client_id_var = (config.structlog_contextvars, tokens["client_id"].var)
    return tokens


def _unbind(tokens: Mapping[str, Any]) -> None:
    # What structlog's reset_contextvars(**tokens) does: reset each key's var with its
    # token. Needs no configuration (it may have changed during the run, binding turned
    # off, but what was bound at entry must still be reset).
    for token in tokens.values():
        token.var.reset(token)


def _enter_job(job_type: str, run_id: str | None) -> JobScope:
    config = tracker.get_config()
    current = job_scope.get()
    if current is not None and (run_id is None or run_id == current.run.run_id):
        scope = JobScope(current.run, owner=False, handed_client=current.handed_client)
    elif run_id is None:
        parent = inherited_run()
        if parent is None:
            run = JobRun(config.schema, generate_run_id(), job_type)
            with state.active_lock:
                state.active_jobs[run.run_id] = run
            scope = JobScope(run, owner=True)
        else:
            scope = join_parent(config, parent, job_type)
    else:
        with state.active_lock:
            live = state.active_jobs.get(run_id)
            if live is None:
                live = state.active_jobs[run_id] = JobRun(config.schema, run_id, job_type, resumed=True)
                scope = JobScope(live, owner=True)
            else:
                scope = JobScope(live, owner=False)
    if scope.owner and not isinstance(scope.run, JoinedJobRun):
        lifecycle.opened(scope.run)
        lifecycle.install_signal_handler()
    scope.token = job_scope.set(scope)
    if current is not None and current.run is not scope.run and client_scope.get() is not None:
        # A different run nested in a client run: the client belongs to the outer run.
        scope.client_token = client_scope.set(None)
    if config.bind_structlog:
        if scope.client_token is None:
            scope.structlog_tokens = _bind(config, run_id=scope.run.run_id)
        else:
            # Hide the outer client's ID too. Ellipsis is structlog.contextvars' "unbound"
            # (what unbind_contextvars sets); binding it gives a token to reset on exit.
            scope.structlog_tokens = _bind(config, run_id=scope.run.run_id, client_id=...)
    return scope


def join_parent(config: tracker.Config, parent: ParentRun, job_type: str = "") -> JobScope:
    """A scope in a run another process owns: its run ID, never its record (see JoinedJobRun)."""
    with state.active_lock:
        live = state.active_jobs.get(parent.run_id)
        if live is not None:
            return JobScope(live, owner=False, handed_client=parent.client_id)
        run = state.active_jobs[parent.run_id] = JoinedJobRun(config.schema, parent.run_id, job_type, parent.client_id)
    return JobScope(run, owner=True, handed_client=parent.client_id)


def exit_job(scope: JobScope, exc: BaseException | None) -> None:
    """Leave a job scope: finish the run if the scope owns it (with ``exc``'s status), then pop the scope."""
    try:
        if scope.owner:
            try:
                scope.run.finish(exc)
            finally:
                lifecycle.closed(scope.run)
                with state.active_lock:
                    if state.active_jobs.get(scope.run.run_id) is scope.run:
                        del state.active_jobs[scope.run.run_id]
    finally:
        if scope.structlog_tokens is not None:
            _unbind(scope.structlog_tokens)
        if scope.client_token is not None:
            client_scope.reset(scope.client_token)
        if scope.token is not None:
            job_scope.reset(scope.token)


def _enter_client(client_id: str, name: str | None, run_id: str | None) -> ClientScope:
    if type(client_id) is not str or not client_id.isprintable() or not 0 < len(client_id) <= MAX_CLIENT_ID_LENGTH:
        validate_client_id(client_id)  # the fast check above is validate_client_id's own; this says what is wrong
    elif client_id.isspace():
        validate_client_id(client_id)
    config = state.config or tracker.get_config()
    job = job_scope.get()
    job_run: JobRun | None
    if run_id is not None:
        run_id = validate_job_run_id(run_id)
        if job is not None and job.run.run_id == run_id:
            job_run = job.run
        else:
            job_run = state.active_jobs.get(run_id)
    elif job is not None:
        job_run = job.run
        run_id = job_run.run_id
    else:
        parent = inherited_run()
        if parent is None:
            raise NoActiveRunError(
                f"client_run({client_id!r}) needs a run: call it inside a @tracked_job function or "
                f"'with tracked_job(...)' block, or pass run_id='YYMMDD-HHMMSS' to attach to an "
                f"existing run (a webhook or resume script).{_lost_context_hint()}"
            )
        run_id = parent.run_id
        job_run = state.active_jobs.get(run_id)
    current = client_scope.get()
    if current is not None and current.run.client_id == client_id and current.run.run_id == run_id:
        scope = ClientScope(current.run, owner=False)
    elif (
        job.handed_client if job is not None and job.run.run_id == run_id else _handed_client(job, run_id)
    ) == client_id:
        # The client run the parent process was in: continue its record, never complete it.
        record = tracker.read_record(CLIENT, run_id, client_id)
        run = ClientRun(config.schema, run_id, client_id, name, None, attach=record or {})
        scope = ClientScope(run, owner=False)
    else:
        # Open until its last entry leaves: state.live_clients holds it (the exit path ends what is there).
        scope = ClientScope(_shared_client_run(config, run_id, client_id, name, job_run), owner=True)
    scope.token = client_scope.set(scope)
    if config.bind_structlog:
        if job is not None and job.structlog_tokens is not None and job.run.run_id == run_id:
            # The job's entry bound this run_id already: only the client ID is new.
            scope.structlog_tokens = _bind_client_id(config, client_id)
        else:
            scope.structlog_tokens = _bind(config, run_id=run_id, client_id=client_id)
    return scope


def _handed_client(job: JobScope | None, run_id: str) -> str | None:
    """The client run another process handed over with ``run_id`` (child_env, inject), if any."""
    if job is not None:
        return job.handed_client if job.run.run_id == run_id else None
    parent = inherited_run()
    return parent.client_id if parent is not None and parent.run_id == run_id else None


# state.live_clients: (run ID, client ID) -> the client run live in this process, so
# that a second client_run() of the same client joins it (one record, exact counters).
# No process-wide lock: dict.setdefault() decides which entry starts the run, the run's
# own lock counts the entries (ClientRun.join/leave), and the last to leave drops it.


def _shared_client_run(
    config: tracker.Config, run_id: str, client_id: str, name: str | None, job_run: JobRun | None
) -> ClientRun:
    """The client run for ``client_id`` in ``run_id``: the live one if some other task or thread is in it."""
    key = (run_id, client_id)
    live = state.live_clients
    while True:
        found = live.get(key)
        if found is None:
            claim = object()  # "being started": holds the place while the run starts
            found = live.setdefault(key, claim)
            if found is claim:
                try:
                    # Outside any lock: starting may read the record back (a resumed job).
                    run = ClientRun(config.schema, run_id, client_id, name, job_run)
                except BaseException:
                    if live.get(key) is claim:
                        del live[key]
                    raise
                live[key] = run
                return run
        if type(found) is ClientRun and found.join():
            return found
        # Another thread is starting it, or ending it, right now (asyncio tasks never get
        # here: neither starting nor ending awaits). Look again in a moment.
        time.sleep(0.001)


def _exit_client(scope: ClientScope, exc: BaseException | None) -> None:
    try:
        if scope.owner:
            scope.run.leave(exc, state.live_clients)
    finally:
        if scope.structlog_tokens is not None:
            _unbind(scope.structlog_tokens)
        if scope.token is not None:
            client_scope.reset(scope.token)


# -- the public objects ----------------------------------------------------------


class tracked_job:
    """Track a job run: ``@tracked_job("post-scoring")`` or ``with tracked_job(...) as job``.

    Starts a run with a new run ID (``YYMMDD-HHMMSS``) and one ``Job Tracking``
    record, and completes the record when the function returns or the block
    ends: ``Completed`` (``Completed with Errors`` if a client run failed),
    ``Failed`` on an exception, ``Cancelled`` on ``asyncio.CancelledError`` or an
    early-closed generator, ``Interrupted`` on ``KeyboardInterrupt``/``SystemExit``.
    The exception always propagates unchanged.

    Inside an active run it joins that run (same run ID, no second record).
    ``run_id=`` resumes an existing run: its record is reused, not duplicated.
    """

    __slots__ = ("job_type", "run_id")

    def __init__(self, job_type: str, run_id: str | None = None) -> None:
        if not isinstance(job_type, str) or not job_type.strip() or has_surrogates(job_type):
            raise InvalidValueError(f"job_type must be a non-empty string without lone surrogates, got {job_type!r}")
        self.job_type = job_type
        self.run_id = validate_job_run_id(run_id) if run_id is not None else None

    def __call__(self, fn: F) -> F:
        return _decorate(fn, self.job_type, self.run_id)

    def __enter__(self) -> JobRun:
        return _enter_job(self.job_type, self.run_id).run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope = job_scope.get()
        if scope is not None:
            exit_job(scope, exc)

    async def __aenter__(self) -> JobRun:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"tracked_job({self.job_type!r}, run_id={self.run_id!r})"


class client_run:
    """Track one client's part of the current run: ``with client_run(client_id) as client``.

    Uses the run ID of the enclosing job and creates one ``Client Run Results``
    record (``Run ID`` ``YYMMDD-HHMMSS-ClientID``), completed when the block
    ends, and counted into the job's roll-ups. Outside a job, pass
    ``run_id=`` to attach to an existing run; otherwise ``NoActiveRunError``.
    """

    __slots__ = ("client_id", "name", "run_id")

    def __init__(self, client_id: str, name: str | None = None, run_id: str | None = None) -> None:
        self.client_id = client_id
        self.name = name
        self.run_id = run_id

    def __enter__(self) -> ClientRun:
        return _enter_client(self.client_id, self.name, self.run_id).run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope = client_scope.get()
        if scope is not None:
            _exit_client(scope, exc)

    # The async forms repeat the sync bodies: one call less on the hot path.
    async def __aenter__(self) -> ClientRun:
        return _enter_client(self.client_id, self.name, self.run_id).run

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope = client_scope.get()
        if scope is not None:
            _exit_client(scope, exc)

    def __repr__(self) -> str:
        return f"client_run({self.client_id!r})"


def _current_run(verb: str) -> JobRun | ClientRun:
    client = client_scope.get()
    if client is not None:
        return client.run
    job = job_scope.get()
    if job is not None:
        return job.run
    raise NoActiveRunError(
        f"jobtrace.{verb}() needs a run: call it inside a tracked_job or client_run.{_lost_context_hint()}"
    )


def _lost_context_hint() -> str:
    """Why there may be no run here although a job runs in this process: a thread that did not get its context."""
    with state.active_lock:
        live = [run.run_id for run in state.active_jobs.values() if not isinstance(run, JoinedJobRun)]
    if not live:
        return ""
    which = f"run {live[0]}" + (f" and {len(live) - 1} more" if len(live) > 1 else "")
    return (
        f" A job is running in this process ({which}), but this code does not see it: a plain "
        f"threading.Thread, concurrent.futures.ThreadPoolExecutor or loop.run_in_executor does not carry "
        f"the run's context. Wrap the callable with jobtrace.bind(fn) where the thread or task is created, "
        f"inside the run, or use jobtrace.ThreadPoolExecutor."
    )


def note(text: str) -> None:
    """Append a line to the current client run's notes, else the current job's."""
    _current_run("note").note(text)


def incr(**amounts: float) -> None:
    """Add to counters of the current client run, else of the current job."""
    _current_run("incr").incr(**amounts)


def update(**fields: Any) -> None:
    """Set fields of the current client run, else of the current job."""
    _current_run("update").update(**fields)


# -- decorating ----------------------------------------------------------------


def _decorate(fn: F, job_type: str, run_id: str | None) -> F:
    target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    wrapper: Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]
    if inspect.isasyncgenfunction(target):

        def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return _job_async_generator(wrapped, args, kwargs, job_type, run_id)

    elif inspect.iscoroutinefunction(target):

        def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return _job_coroutine(wrapped, args, kwargs, job_type, run_id)

    elif inspect.isgeneratorfunction(target):

        def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return _job_generator(wrapped, args, kwargs, job_type, run_id)

    else:

        def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            scope = _enter_job(job_type, run_id)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                exit_job(scope, exc)
                raise
            exit_job(scope, None)
            return result

    return wrapt.FunctionWrapper(fn, wrapper)  # type: ignore[return-value]


async def _job_coroutine(
    wrapped: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    job_type: str,
    run_id: str | None,
) -> T:
    scope = _enter_job(job_type, run_id)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        exit_job(scope, exc)
        raise
    exit_job(scope, None)
    return result


def _job_generator(
    wrapped: Callable[..., Generator[Any, Any, Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    job_type: str,
    run_id: str | None,
) -> Generator[Any, Any, Any]:
    # Runs from the first next(). Every step of the body runs inside `ctx`, so
    # the run (and anything the body binds) is visible only to the body.
    ctx = contextvars.copy_context()
    gen = wrapped(*args, **kwargs)
    scope = ctx.run(_enter_job, job_type, run_id)
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            if to_throw is None:
                value = ctx.run(gen.send, to_send)
            else:
                value = ctx.run(gen.throw, to_throw)
        except StopIteration as stop:
            ctx.run(exit_job, scope, None)
            return stop.value
        except BaseException as exc:
            ctx.run(exit_job, scope, exc)
            raise
        to_send, to_throw = None, None
        try:
            to_send = yield value
        except GeneratorExit as exit_:
            try:
                ctx.run(gen.close)
            finally:
                ctx.run(exit_job, scope, exit_)
            raise
        except BaseException as exc:
            to_throw = exc


class _Suspend:
    """Pass one value yielded by an inner coroutine up to the event loop, and the answer back."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.value)


async def _in_context(ctx: contextvars.Context, step: Coroutine[Any, Any, T]) -> T:
    """Await ``step`` with every slice of it running inside ``ctx``."""
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            if to_throw is None:
                yielded = ctx.run(step.send, to_send)
            else:
                yielded = ctx.run(step.throw, to_throw)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        to_send, to_throw = None, None
        try:
            to_send = await _Suspend(yielded)
        except BaseException as exc:
            to_throw = exc


async def _job_async_generator(
    wrapped: Callable[..., AsyncGenerator[Any, Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    job_type: str,
    run_id: str | None,
) -> AsyncGenerator[Any, Any]:
    ctx = contextvars.copy_context()
    agen = wrapped(*args, **kwargs)
    scope = ctx.run(_enter_job, job_type, run_id)
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            if to_throw is None:
                value = await _in_context(ctx, agen.asend(to_send))
            else:
                value = await _in_context(ctx, agen.athrow(to_throw))
        except StopAsyncIteration:
            ctx.run(exit_job, scope, None)
            return
        except BaseException as exc:
            ctx.run(exit_job, scope, exc)
            raise
        to_send, to_throw = None, None
        try:
            to_send = yield value
        except GeneratorExit as exit_:
            try:
                await _in_context(ctx, agen.aclose())
            finally:
                ctx.run(exit_job, scope, exit_)
            raise
        except BaseException as exc:
            to_throw = exc
