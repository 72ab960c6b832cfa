"""One request budget per Airtable base, shared by every jobtrace process of a host and, with Redis, of every host.

Airtable allows 5 requests per second per base, counted when they arrive, and
answers one more with 429 and 30 seconds of refusals for the whole base, for
every client of it. So every request to a base, from any process, takes a
*slot* of that base's budget first: the slot is held from the moment the
request is sent until one second after its response came back. Airtable
counts the request somewhere in between, so however long the network takes,
no more than 5 arrive within any second.

Where the slots are kept:

- **this host** (no server): a SQLite file in the state directory
  (``budget.sqlite3`` beside the journal, see :func:`jobtrace.state.state_dir`),
  one short transaction per slot;
- **every host** sharing a Redis (``JOBTRACE_REDIS_URL`` /
  ``AirtableSink(redis_url=...)``): a sorted set per base, changed by small Lua
  scripts (through redis-py's ``register_script``) that use Redis's own clock;
  neither ``limits`` nor ``pyrate-limiter`` can hold a slot until a second
  after the *response* (both count a request when it is admitted);
- **this process** only, if the state directory cannot be used.

When Redis cannot be reached, the budget goes on with the host's file (logged
once) and returns to Redis when it answers again.

A 429 seen by anyone puts the base in the penalty box of the shared store, so
every process waits the penalty out, not just the one that saw it.

Headroom: a request of the application (:func:`budgeted_api` with
``application=True``, what :meth:`AirtableSink.api()
<jobtrace.sinks.AirtableSink.api>` returns) is admitted while fewer than
``capacity`` slots are held in all; one of jobtrace's own (the delivery engine, reads,
the CLI) only if, besides, jobtrace's requests hold fewer than ``capacity -
application_headroom``. So by default jobtrace uses at most 4 of the 5
requests a second and the application always finds one, or all 5 while
jobtrace is idle.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests
from pyairtable import Api
from requests.adapters import HTTPAdapter

from ...delivery.airtable import RATE_LIMIT_PENALTY, error_kind
from ...delivery.limiter import WINDOW_MARGIN, EvenSchedule, Slot, wait_for_slot
from ...errors import ConfigurationError
from ...state import state_dir
from .credentials import check_endpoint_url, clean_api_key
from .redis_link import RedisLink, RedisUnavailable, redis_link

__all__ = [
    "DEFAULT_APPLICATION_HEADROOM",
    "Budget",
    "BudgetSlot",
    "budget_for",
    "budgeted_api",
]

logger = logging.getLogger("jobtrace")

#: Requests per second per base that jobtrace leaves to the application by default.
DEFAULT_APPLICATION_HEADROOM = 1
#: Seconds after which a slot whose request never reported back (its process died) is free again.
DEFAULT_LEASE = 60.0
#: How often a waiter looks again while every slot is held by a request still in flight.
POLL = 0.02


class _Store(Protocol):
    """Where one kind of budget keeps its slots and penalties."""

    def take(self, key: str, token: str, ask: _Ask) -> float:
        """0.0 if a slot was taken under ``token``; else seconds to wait before asking again."""

    def release(self, key: str, token: str, hold: float) -> None:
        """The request of ``token`` is answered: its slot stays held ``hold`` seconds more."""

    def penalize(self, key: str, seconds: float) -> None:
        """Refuse every slot of ``key`` for ``seconds`` (unless already refused for longer)."""

    def penalty_left(self, key: str) -> float:
        """Seconds the penalty of ``key`` still lasts (0 when none)."""


class BudgetSlot(Slot):
    """One request's slot; hand it to :meth:`Budget.done` once the response is in."""

    __slots__ = ("key", "store", "token")

    def __init__(self, store: _Store, key: str, token: str) -> None:
        super().__init__()
        self.store = store
        self.key = key
        self.token = token


@dataclass(frozen=True)
class _Ask:
    """What one request asks of a store."""

    capacity: int
    """Slots in all (the base's requests per second)."""
    share: int
    """Slots jobtrace's own requests may hold at once."""
    application: bool
    """An application request: bound by the capacity only."""
    lease: float
    """Seconds the slot is held if its request never reports back."""
    hold: float
    """Seconds a slot stays held after its response."""


def _refusal(held: list[tuple[float, bool]], ask: _Ask, now: float) -> float:
    """0.0 if a slot may be taken beside the ``(until, application)`` slots held; else seconds to wait."""
    waits = []
    if len(held) >= ask.capacity:
        waits.append(_wait(sorted(until for until, _ in held), ask.capacity, now, ask.hold))
    if not ask.application:
        own = sorted(until for until, application in held if not application)
        if len(own) >= ask.share:
            waits.append(_wait(own, ask.share, now, ask.hold))
    return max(waits) if waits else 0.0


# -- the stores ------------------------------------------------------------------------------


class _MemoryStore:
    """This process only (the fallback when the state directory cannot be used)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, dict[str, tuple[float, bool]]] = {}
        self._penalties: dict[str, float] = {}

    def take(self, key: str, token: str, ask: _Ask) -> float:
        now = time.monotonic()
        with self._lock:
            left = self._penalties.get(key, 0.0) - now
            if left > 0:
                return left
            slots = self._slots.setdefault(key, {})
            for old in [t for t, (until, _) in slots.items() if until <= now]:
                del slots[old]
            wait = _refusal(list(slots.values()), ask, now)
            if wait == 0:
                slots[token] = (now + ask.lease, ask.application)
            return wait

    def release(self, key: str, token: str, hold: float) -> None:
        with self._lock:
            slots = self._slots.get(key)
            if slots is not None and token in slots:
                slots[token] = (time.monotonic() + hold, slots[token][1])

    def penalize(self, key: str, seconds: float) -> None:
        with self._lock:
            self._penalties[key] = max(self._penalties.get(key, 0.0), time.monotonic() + seconds)

    def penalty_left(self, key: str) -> float:
        with self._lock:
            return max(0.0, self._penalties.get(key, 0.0) - time.monotonic())


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_slots (
    budget TEXT NOT NULL,
    token TEXT NOT NULL,
    until REAL NOT NULL,
    pid INTEGER NOT NULL,
    in_flight INTEGER NOT NULL,
    application INTEGER NOT NULL,
    PRIMARY KEY (budget, token)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budget_penalties (
    budget TEXT PRIMARY KEY,
    until REAL NOT NULL
) WITHOUT ROWID;
"""


class _SqliteStore:
    """Every process of this host: one SQLite file, one short ``BEGIN IMMEDIATE`` transaction per call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = os.getpid()
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._conn = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # Losing the budget in a power cut costs at most one second of slots: no fsync per slot.
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.executescript(_SQLITE_SCHEMA)

    def take(self, key: str, token: str, ask: _Ask) -> float:
        conn = self._conn
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                row = conn.execute("SELECT until FROM budget_penalties WHERE budget = ?", (key,)).fetchone()
                if row is not None and row[0] > now:
                    return float(row[0]) - now
                conn.execute("DELETE FROM budget_slots WHERE budget = ? AND until <= ?", (key, now))
                held = conn.execute(
                    "SELECT until, application, pid, in_flight, token FROM budget_slots WHERE budget = ?", (key,)
                ).fetchall()
                wait = _refusal([(h[0], bool(h[1])) for h in held], ask, now)
                if wait:
                    # A process that died mid-request never releases its slot: release it for it now, not at its
                    # lease's end. Its request may have reached Airtable just before: it still counts a hold from now.
                    dead = {h[4] for h in held if h[3] and h[2] != self.pid and not _pid_alive(h[2])}
                    if dead:
                        released = now + ask.hold
                        conn.executemany(
                            "UPDATE budget_slots SET until = MIN(until, ?), in_flight = 0 "
                            "WHERE budget = ? AND token = ?",
                            [(released, key, t) for t in dead],
                        )
                        held = [(min(h[0], released) if h[4] in dead else h[0], *h[1:]) for h in held]
                        wait = _refusal([(h[0], bool(h[1])) for h in held], ask, now)
                if wait == 0:
                    conn.execute(
                        "INSERT INTO budget_slots (budget, token, until, pid, in_flight, application) "
                        "VALUES (?, ?, ?, ?, 1, ?)",
                        (key, token, now + ask.lease, os.getpid(), int(ask.application)),
                    )
                return wait
            finally:
                conn.execute("COMMIT")

    def release(self, key: str, token: str, hold: float) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE budget_slots SET until = ?, in_flight = 0 WHERE budget = ? AND token = ?",
                (time.time() + hold, key, token),
            )

    def penalize(self, key: str, seconds: float) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO budget_penalties (budget, until) VALUES (?, ?) "
                "ON CONFLICT (budget) DO UPDATE SET until = max(until, excluded.until)",
                (key, time.time() + seconds),
            )

    def penalty_left(self, key: str) -> float:
        with self._lock:
            row = self._conn.execute("SELECT until FROM budget_penalties WHERE budget = ?", (key,)).fetchone()
        return max(0.0, float(row[0]) - time.time()) if row is not None else 0.0


# Lua run by Redis itself, atomically, on its own clock (TIME), so hosts' clocks need not agree.
# KEYS[1]: the sorted set of slots (member: token, score: ms when the slot is free again);
# KEYS[2]: the penalty key (its time to live is the penalty left).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local penalty = redis.call('PTTL', KEYS[2])
if penalty > 0 then return penalty end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local capacity, share, application = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local hold, poll = tonumber(ARGV[6]), tonumber(ARGV[7])
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local scores, own = {}, {}
for i = 1, #all, 2 do
  local score = tonumber(all[i + 1])
  scores[#scores + 1] = score
  if string.sub(all[i], 1, 2) == 'j:' then own[#own + 1] = score end
end
local function wait_for(held, limit)
  local until_ms = held[#held - limit + 1]
  local wait = until_ms - now
  if wait > hold + 100 then return poll end
  if wait < 1 then return 1 end
  return wait
end
local wait = 0
if #scores >= capacity then wait = wait_for(scores, capacity) end
if not application and #own >= share then wait = math.max(wait, wait_for(own, share)) end
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[5])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + 60000)
return 0
"""
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 0
"""
_PENALIZE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) end
return 0
"""


class _RedisStore:
    """Every host sharing one Redis. Each call raises :class:`RedisUnavailable` when Redis cannot be used."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        client = link.client
        self._take = client.register_script(_TAKE)
        self._release = client.register_script(_RELEASE)
        self._penalize = client.register_script(_PENALIZE)

    @staticmethod
    def _keys(key: str) -> list[str]:
        return [f"jobtrace:budget:{key}:slots", f"jobtrace:budget:{key}:penalty"]

    def take(self, key: str, token: str, ask: _Ask) -> float:
        args = [
            ask.capacity,
            ask.share,
            int(ask.application),
            int(ask.lease * 1000),
            token,
            int(ask.hold * 1000),
            int(POLL * 1000),
        ]
        wait = self.link.call(lambda _client: self._take(keys=self._keys(key), args=args))
        return int(wait) / 1000.0

    def release(self, key: str, token: str, hold: float) -> None:
        self.link.call(lambda _client: self._release(keys=self._keys(key)[:1], args=[token, int(hold * 1000)]))

    def penalize(self, key: str, seconds: float) -> None:
        self.link.call(lambda _client: self._penalize(keys=self._keys(key)[1:], args=[int(seconds * 1000)]))

    def penalty_left(self, key: str) -> float:
        ttl = self.link.call(lambda client: client.pttl(self._keys(key)[1]))
        return max(0.0, int(ttl) / 1000.0)


def _wait(untils: list[float], limit: int, now: float, hold: float) -> float:
    """Seconds until fewer than ``limit`` of the (sorted) held slots remain; a short poll if in flight."""
    until = untils[len(untils) - limit]
    if until > now + hold + 0.1:
        return POLL  # held by a request still waiting for its response
    return max(0.001, until - now)


def _pid_alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # os.kill(pid, 0) would terminate it there: the slot waits for its lease
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, another user's
    return True


_stores_lock = threading.Lock()
_sqlite_stores: dict[Path, _SqliteStore] = {}
_redis_stores: dict[str, _RedisStore] = {}
_memory_store = _MemoryStore()
_unusable: set[Path] = set()


def _local_store() -> _SqliteStore | _MemoryStore:
    path = state_dir() / "budget.sqlite3"
    with _stores_lock:
        store = _sqlite_stores.get(path)
        if store is not None and store.pid == os.getpid():
            return store
        if path in _unusable:
            return _memory_store
        try:
            store = _sqlite_stores[path] = _open_retrying(path)
        except (OSError, sqlite3.Error) as exc:
            _unusable.add(path)
            logger.warning(
                "jobtrace: cannot use the request budget file %s (%s); the Airtable budget is this process's "
                "alone, so other jobtrace processes on this host may meet 429s (set JOBTRACE_STATE_DIR)",
                path,
                exc,
            )
            return _memory_store
        return store


def _open_retrying(path: Path) -> _SqliteStore:
    """Open the budget file; processes creating it at the same instant may briefly find it locked."""
    for attempt in range(20):
        try:
            return _SqliteStore(path)
        except sqlite3.OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def _redis_store(url: str) -> _RedisStore:
    with _stores_lock:
        store = _redis_stores.get(url)
        if store is None:
            store = _redis_stores[url] = _RedisStore(redis_link(url))
        return store


# -- the budget ------------------------------------------------------------------------------


class Budget:
    """One base's shared request budget, as one consumer (a sink, the CLI, the application) draws from it.

    Cheap to make: every :class:`Budget` of one base in a process works on the
    same shared stores. Thread-safe. The interface is :class:`~jobtrace.delivery.limiter.RequestLimiter`'s:
    :meth:`reserve` (non-blocking) or :meth:`acquire` (blocking), then :meth:`done`
    once the response is in; :meth:`penalize` after a 429.
    """

    def __init__(
        self,
        endpoint_url: str,
        base_id: str,
        *,
        requests_per_second: float = 5.0,
        application_headroom: int = DEFAULT_APPLICATION_HEADROOM,
        redis_url: str | None = None,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        if (
            isinstance(requests_per_second, bool)
            or not isinstance(requests_per_second, (int, float))
            or not math.isfinite(requests_per_second)
            or requests_per_second <= 0
        ):
            raise ConfigurationError(
                f"requests_per_second must be a positive number (Airtable allows 5), got {requests_per_second!r}"
            )
        if (
            isinstance(application_headroom, bool)
            or not isinstance(application_headroom, int)
            or application_headroom < 0
        ):
            raise ConfigurationError(
                f"application_headroom must be a whole number of requests per second >= 0, got {application_headroom!r}"
            )
        self.key = f"{base_id}@{endpoint_url.rstrip('/')}"
        self.base_id = base_id
        self._rate = requests_per_second
        self._headroom = application_headroom
        self._lease = lease
        self._redis = _redis_store(redis_url) if redis_url else None
        self._local_error_logged = False
        # The even-spacing schedule of jobtrace's requests through this object (see next_even()).
        self._schedule = EvenSchedule()

    # -- configuration ---------------------------------------------------------------------

    @property
    def requests_per_second(self) -> float:
        """The base's whole budget (Airtable: 5), shared by everyone."""
        return self._rate

    @requests_per_second.setter
    def requests_per_second(self, value: float) -> None:
        if value <= 0:
            raise ValueError("requests_per_second must be positive")
        self._rate = value

    @property
    def capacity(self) -> int:
        """Slots in the base's window (at least 1)."""
        return max(1, int(self._rate))

    @property
    def hold(self) -> float:
        """Seconds a slot stays held after its response (a little over 1 s; longer below 1 request/s)."""
        return (1.0 + WINDOW_MARGIN) * max(1.0, 1.0 / self._rate)

    @property
    def jobtrace_share(self) -> int:
        """Slots jobtrace's own requests may hold at once: the capacity less the headroom, at least 1."""
        return max(1, self.capacity - self._headroom)

    @property
    def shared_through(self) -> str:
        """``"redis"``, ``"host"`` (the state directory's file) or ``"process"``: who shares this budget now."""
        if self._redis is not None and self._redis.link.up:
            return "redis"
        return "host" if isinstance(_local_store(), _SqliteStore) else "process"

    @property
    def spacing(self) -> float:
        """Seconds between jobtrace's requests when they are evenly spaced: the hold over jobtrace's share."""
        return self.hold / self.jobtrace_share

    def next_even(self) -> float:
        """When (``time.monotonic()``) jobtrace's next request keeps its requests through this object evenly spaced.

        A virtual schedule: every slot jobtrace takes here (the delivery engine's, a
        sink's schema check, run-ID lookup or read) moves it on by
        :attr:`spacing` from then, or from where it was if that is later. A
        sender that waits for it (the delivery engine does) spreads its requests out
        after a burst (a job's start: the schema check and the run-ID lookup),
        instead of taking the rest of the share at once and leaving every slot
        to free up together a second later. In this process only: other
        processes' requests are paced by the slots alone.
        """
        return self._schedule.next()

    # -- slots -------------------------------------------------------------------------------

    def reserve(self, application: bool = False) -> Slot | float:
        """Take a slot (hand it to :meth:`done` after the response), or return seconds to wait first."""
        got = self._reserve(application)
        if not application and isinstance(got, Slot):
            self._schedule.taken(self.spacing)
        return got

    def _reserve(self, application: bool) -> Slot | float:
        ask = _Ask(self.capacity, self.jobtrace_share, application, self._lease, self.hold)
        # The prefix tells the application's slots from jobtrace's (in Redis, where they are sorted-set members).
        token = ("a:" if application else "j:") + uuid.uuid4().hex
        store: _Store
        if self._redis is not None:
            try:
                wait = self._redis.take(self.key, token, ask)
            except RedisUnavailable:
                pass
            else:
                return BudgetSlot(self._redis, self.key, token) if wait == 0 else wait
        store = _local_store()
        try:
            wait = store.take(self.key, token, ask)
        except sqlite3.Error as exc:
            self._local_failed(exc)
            store = _memory_store
            wait = store.take(self.key, token, ask)
        return BudgetSlot(store, self.key, token) if wait == 0 else wait

    def acquire(self, timeout: float | None = None, application: bool = False) -> Slot | None:
        """Block until a slot is taken (returned) or ``timeout`` seconds pass (None)."""
        return wait_for_slot(lambda: self.reserve(application), timeout)

    def done(self, slot: Slot) -> None:
        """The request of ``slot`` got its answer (or failed): the slot is free a second from now."""
        slot.ended = time.monotonic()
        if not isinstance(slot, BudgetSlot):
            return
        try:
            slot.store.release(slot.key, slot.token, self.hold)
        except RedisUnavailable:
            pass  # the slot expires with its lease
        except sqlite3.Error as exc:
            self._local_failed(exc)

    def penalize(self, seconds: float) -> None:
        """After a 429: refuse every request to the base, from every process sharing the budget, for ``seconds``."""
        if self._redis is not None:
            with contextlib.suppress(RedisUnavailable):
                self._redis.penalize(self.key, seconds)
        # Locally too: if Redis goes away during the penalty, this host still waits it out.
        _memory_store.penalize(self.key, seconds)
        store = _local_store()
        try:
            store.penalize(self.key, seconds)
        except sqlite3.Error as exc:
            self._local_failed(exc)

    @property
    def blocked_for(self) -> float:
        """Seconds left in the penalty box (0 when free)."""
        left = _memory_store.penalty_left(self.key)
        if self._redis is not None:
            with contextlib.suppress(RedisUnavailable):
                left = max(left, self._redis.penalty_left(self.key))
        with contextlib.suppress(sqlite3.Error):
            left = max(left, _local_store().penalty_left(self.key))
        return left

    def _local_failed(self, exc: Exception) -> None:
        if not self._local_error_logged:
            self._local_error_logged = True
            logger.warning(
                "jobtrace: the request budget file in %s failed (%s); going on with this process's own budget",
                state_dir(),
                exc,
            )

    def __repr__(self) -> str:
        return (
            f"<Budget {self.key} {self._rate:g}/s, jobtrace share {self.jobtrace_share}, "
            f"shared through {self.shared_through}>"
        )


def budget_for(
    endpoint_url: str,
    base_id: str,
    *,
    requests_per_second: float = 5.0,
    application_headroom: int = DEFAULT_APPLICATION_HEADROOM,
    redis_url: str | None = None,
) -> Budget:
    """The shared budget of one base (``redis_url`` default: ``$JOBTRACE_REDIS_URL``).

    What new commands and tools call before they make requests to a base, or
    use :func:`budgeted_api`, which does it for every request.
    """
    if redis_url is None:
        redis_url = os.environ.get("JOBTRACE_REDIS_URL") or None
    return Budget(
        endpoint_url,
        base_id,
        requests_per_second=requests_per_second,
        application_headroom=application_headroom,
        redis_url=redis_url,
    )


class BudgetAdapter(HTTPAdapter):
    """A requests transport adapter: every request takes a slot of the budget first; a 429 pauses everyone.

    On a 429 the budget is penalized (every process sharing it waits the
    penalty out) and the request is sent again once the penalty is over, up to
    ``max_rate_limited`` times; then the 429 is returned as it is.
    """

    def __init__(
        self, budget: Budget, *, application: bool, penalty: float = RATE_LIMIT_PENALTY, max_rate_limited: int = 3
    ) -> None:
        super().__init__()
        self.budget = budget
        self.application = application
        self.penalty = penalty
        self.max_rate_limited = max_rate_limited
        self.rate_limited = 0

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        attempt = 0
        while True:
            slot = self.budget.acquire(application=self.application)
            assert slot is not None  # no timeout: the budget frees up by itself
            try:
                response = super().send(request, *args, **kwargs)
            finally:
                self.budget.done(slot)
            if error_kind(response.status_code) != "rate_limited" or attempt >= self.max_rate_limited:
                return response
            attempt += 1
            self.rate_limited += 1
            self.budget.penalize(self.penalty)
            logger.warning(
                "jobtrace: Airtable's rate limit was hit on base %s; every process sharing its budget waits %.0f s",
                self.budget.base_id,
                self.penalty,
            )
            response.close()


def budgeted_api(
    api_key: str,
    budget: Budget,
    endpoint_url: str,
    *,
    application: bool = False,
    rate_limit_penalty: float = RATE_LIMIT_PENALTY,
    timeout: tuple[float, float] = (5.0, 30.0),
) -> Api:
    """A ``pyairtable.Api`` whose every request to ``endpoint_url`` draws from ``budget`` and waits out its penalty.

    ``application=True`` draws from the whole budget (the application's own
    calls, :meth:`AirtableSink.api`); else from jobtrace's share (the CLI, tools).
    pyairtable's own retries are off: a 429 is handled by the budget (above).
    """
    api_key = clean_api_key(api_key)
    endpoint_url = check_endpoint_url(endpoint_url)
    api = Api(api_key, timeout=timeout, retry_strategy=False, endpoint_url=endpoint_url)  # type: ignore[arg-type]
    adapter = BudgetAdapter(budget, application=application, penalty=rate_limit_penalty)
    api.session.mount(endpoint_url.rstrip("/") + "/", adapter)
    return api
