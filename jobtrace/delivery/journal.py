"""The write-ahead journal of the delivery engine: changes not yet delivered, in SQLite.

The engine (:mod:`.engine`) saves every pending record (its fields merged,
one row per record) here before sending it, and deletes the row once the
backend has it. A process that dies, or that cannot reach the backend before
it exits, leaves its rows behind; the next engine started for the same
destination (for Airtable: the next :class:`~jobtrace.sinks.AirtableSink` of
the same base, or :func:`~jobtrace.sinks.airtable.replay`) claims and
delivers them. Delivery is an upsert on the record's key fields, so
delivering a row twice leaves one record. (The ``base_id`` column names the
destination: an Airtable base ID, or any string another transport's sink
chooses.)

Rows belong to an *owner* (one running sink), named by a random UUID. A row
is claimable only when its owner is gone: it released its rows on close, or
nobody holds its OS lock any more (:mod:`.owners`: the kernel drops it when the
process dies, so PID reuse cannot fool it), or, where the lock cannot be asked
(another host, Windows), its process is gone or it stopped sending
heartbeats. A live process's rows are never taken from it, so two jobs sharing
a journal cannot replay each other's stale values over newer ones.

The journal also knows which runs each owner has open (``open_runs``): a
dead owner's open runs are claimed with its rows, and the claimer closes them
as ``Interrupted`` once its leftovers are delivered (:mod:`jobtrace.sinks.airtable.dead_runs`).

Every operation is bounded: SQLite waits at most a tenth of a second for
another process's lock, and the operation retries until its deadline (10 s,
or the deadline a closing engine set with :meth:`Journal.set_deadline`), so
``flush()`` and the exit path keep their bounds while another process holds
the journal's lock.

A row holds the base ID, the table, the key field names and the fields (key
values included); never the API key. Records the backend refused (a value it
rejects) move to the ``undeliverable`` table instead of being dropped.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import SinkError
from ..values import has_surrogates
from . import owners as owner_locks

__all__ = ["DeadRun", "Journal", "JournalError", "JournalRow", "RunEvent", "default_journal_path"]

T = TypeVar("T")

#: How long one journal operation may wait for another process's lock, unless a deadline is nearer.
BUSY_TIMEOUT = 10.0

logger = logging.getLogger("jobtrace")

#: Seconds without a heartbeat after which another process may take a sink's rows.
STALE_AFTER = 120.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    base_id TEXT NOT NULL,
    table_name TEXT NOT NULL,
    record_key TEXT NOT NULL,
    owner TEXT NOT NULL,
    key_fields TEXT NOT NULL,
    fields TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (base_id, table_name, record_key, owner)
);
CREATE TABLE IF NOT EXISTS undeliverable (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    base_id TEXT NOT NULL,
    table_name TEXT NOT NULL,
    record_key TEXT NOT NULL,
    key_fields TEXT NOT NULL,
    fields TEXT NOT NULL,
    error TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS owners (
    owner TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS open_runs (
    base_id TEXT NOT NULL,
    table_name TEXT NOT NULL,
    record_key TEXT NOT NULL,
    owner TEXT NOT NULL,
    key_fields TEXT NOT NULL,
    roles TEXT NOT NULL,
    opened_at REAL NOT NULL,
    stopped TEXT,
    last_seen REAL,
    PRIMARY KEY (base_id, table_name, record_key, owner)
);
"""


class JournalError(SinkError):
    """The journal file cannot be used (not a file, not a database, unreadable)."""


@dataclass(frozen=True)
class RunEvent:
    """A run opened or closed by an owner, journaled with its changes."""

    table: str
    record_key: str
    key_fields: tuple[str, ...]
    opened: bool
    roles: dict[str, Any] | None = None
    """Field names to close the record with: status, end_time, notes, heartbeat (a job: its roll-ups too)."""


@dataclass(frozen=True)
class DeadRun:
    """A run a dead owner left open, now the claimer's to close."""

    table: str
    record_key: str
    key_fields: tuple[str, ...]
    key_values: dict[str, Any]
    roles: dict[str, Any]
    stopped: str
    """What the process was: ``pid 12 on host h``."""
    last_seen: float
    """When its process was last seen alive (Unix time)."""


def default_journal_path() -> Path:
    """``$JOBTRACE_JOURNAL``, else ``$XDG_STATE_HOME/jobtrace/journal.sqlite3`` (``~/.local/state`` by default)."""
    explicit = os.environ.get("JOBTRACE_JOURNAL")
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "jobtrace" / "journal.sqlite3"


def record_key(key_fields: Sequence[str], fields: dict[str, Any]) -> str:
    """The identity of a record within its table: the JSON list of its key values."""
    return _dumps([fields.get(name) for name in key_fields])


def _dumps(value: Any) -> str:
    """JSON for a journal column: readable UTF-8, or ASCII escapes where the text has lone surrogates.

    SQLite stores text as UTF-8, which cannot carry a lone surrogate; the
    escaped form reads back as the same string, so no row is ever refused.
    """
    text = json.dumps(value, ensure_ascii=False)
    return json.dumps(value) if has_surrogates(text) else text


@dataclass
class JournalRow:
    """One record's undelivered fields."""

    table: str
    record_key: str
    key_fields: tuple[str, ...]
    fields: dict[str, Any]


class Journal:
    """A SQLite file shared by every sink (and process) of a user; thread-safe.

    Every method runs one short transaction under a lock, so the engine's threads
    and a closing caller thread can both use it. SQLite's own locking (WAL,
    busy timeout) arbitrates between processes.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, strict: bool = False) -> None:
        target = Path(path) if path is not None else default_journal_path()
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self.path: str = str(target)
        try:
            if target.is_dir():
                raise IsADirectoryError(f"{target} is a directory, not a journal file")
            self._conn = self._open(target)
        except (OSError, sqlite3.Error) as exc:
            if strict:
                raise JournalError(f"cannot use the journal {target}: {exc}") from None
            # The sink must keep working when the state directory is read-only:
            # keep the journal in memory (lost at exit) and say so.
            logger.warning(
                "jobtrace: cannot open the journal at %s (%s); undelivered changes will not survive this process",
                target,
                exc,
            )
            self.path = ":memory:"
            self._conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            self._conn.executescript(_SCHEMA)

    @staticmethod
    def _open(target: Path) -> sqlite3.Connection:
        if str(target) != ":memory:":
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not target.exists():
                # The rows are the user's business data: private to the user.
                fd = os.open(target, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
        # A short busy wait per attempt; _retrying() retries until the operation's deadline.
        conn = sqlite3.connect(str(target), timeout=0.1, check_same_thread=False, isolation_level=None)
        if str(target) != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process (not a power cut) without an fsync per commit.
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        return conn

    @property
    def persistent(self) -> bool:
        """False when the journal fell back to memory: what it holds dies with the process."""
        return self.path != ":memory:"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def set_deadline(self, deadline: float | None) -> None:
        """Make every operation give up at ``deadline`` (``time.monotonic()``), e.g. while closing."""
        self._deadline = deadline

    def _retrying(self, op: Callable[[], T]) -> T:
        """Run ``op`` under the lock, retrying while another process holds SQLite's lock, until the deadline."""
        limit = time.monotonic() + BUSY_TIMEOUT
        while True:
            if self._deadline is not None:
                limit = min(limit, self._deadline)
            with self._lock:
                try:
                    return op()
                except sqlite3.OperationalError as exc:
                    if not _busy(exc) or time.monotonic() >= limit:
                        raise
            time.sleep(0.01)

    # -- owners ------------------------------------------------------------------

    def register(self, owner: str) -> owner_locks.OwnerLock:
        """Announce a live owner (one running sink): take its OS lock, record host, PID and heartbeat."""
        lock = owner_locks.OwnerLock(self.path, owner)
        self._retrying(
            lambda: self._conn.execute(
                "INSERT OR REPLACE INTO owners (owner, host, pid, heartbeat) VALUES (?, ?, ?, ?)",
                (owner, socket.gethostname(), os.getpid(), time.time()),
            )
        )
        return lock

    def heartbeat(self, owner: str) -> None:
        """The owner is alive now (its ``last seen`` time)."""
        self._retrying(
            lambda: self._conn.execute("UPDATE owners SET heartbeat = ? WHERE owner = ?", (time.time(), owner))
        )

    def release(self, owner: str) -> None:
        """The owner is done: whatever rows it left are claimable from now on; the runs it left open stay open."""

        def op() -> None:
            with self._transaction():
                self._conn.execute("DELETE FROM owners WHERE owner = ?", (owner,))
                # Runs it left open stay open (the explicit API's); those it took over from a dead
                # owner and did not close yet stay for the next claimer (the owner is gone now).
                self._conn.execute("DELETE FROM open_runs WHERE owner = ? AND stopped IS NULL", (owner,))

        self._retrying(op)

    # -- pending rows --------------------------------------------------------------

    def save(
        self,
        base_id: str,
        owner: str,
        rows: Iterable[tuple[JournalRow, int]],
        delivered: Iterable[tuple[str, str, int]] = (),
        events: Iterable[RunEvent] = (),
    ) -> None:
        """In one transaction: store (replace) the owner's rows with their versions, forget delivered
        rows ``(table, record_key, version)`` (a row saved again since stays), note the runs it opened and
        closed, and mark the owner as seen now."""
        now = time.time()
        params = [
            (
                base_id,
                row.table,
                row.record_key,
                owner,
                _dumps(list(row.key_fields)),
                _dumps(row.fields),
                version,
                now,
            )
            for row, version in rows
        ]
        deletes = [(base_id, table, key, owner, version) for table, key, version in delivered]
        events = list(events)
        if not params and not deletes and not events:
            return

        def op() -> None:
            with self._transaction():
                if params:
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO pending "
                        "(base_id, table_name, record_key, owner, key_fields, fields, version, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        params,
                    )
                if deletes:
                    self._conn.executemany(
                        "DELETE FROM pending WHERE base_id = ? AND table_name = ? AND record_key = ? AND owner = ? "
                        "AND version <= ?",
                        deletes,
                    )
                for event in events:
                    if event.opened:
                        self._conn.execute(
                            "INSERT OR REPLACE INTO open_runs (base_id, table_name, record_key, owner, key_fields, "
                            "roles, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (
                                base_id,
                                event.table,
                                event.record_key,
                                owner,
                                _dumps(list(event.key_fields)),
                                _dumps(event.roles or {}),
                                now,
                            ),
                        )
                    else:
                        self._conn.execute(
                            "DELETE FROM open_runs WHERE base_id = ? AND table_name = ? AND record_key = ? "
                            "AND owner = ?",
                            (base_id, event.table, event.record_key, owner),
                        )
                self._conn.execute("UPDATE owners SET heartbeat = ? WHERE owner = ?", (now, owner))

        self._retrying(op)

    def delete(self, base_id: str, owner: str, delivered: Iterable[tuple[str, str, int]]) -> None:
        """Remove delivered rows ``(table, record_key, version)``; a row saved again since stays."""
        self.save(base_id, owner, (), delivered)

    def claim(self, base_id: str, owner: str, stale_after: float = STALE_AFTER) -> list[JournalRow]:
        """Take over the rows of ``base_id`` left by owners that are gone, merged into ``owner``'s rows.

        Returns the owner's rows that changed (merged), ready to be delivered.
        Leftovers are merged under the owner's own newer fields. The runs the
        gone owners left open become ``owner``'s to close (:meth:`dead_runs`),
        unless ``owner`` has the same record open itself.
        """
        return self._retrying(lambda: self._claim(base_id, owner, stale_after))

    def _claim(self, base_id: str, owner: str, stale_after: float) -> list[JournalRow]:
        with self._transaction():
            owners = {
                row[0]: (row[1], row[2], row[3])
                for row in self._conn.execute("SELECT owner, host, pid, heartbeat FROM owners")
            }
            candidates = [
                r[0]
                for r in self._conn.execute(
                    "SELECT DISTINCT owner FROM pending WHERE base_id = ? AND owner != ? "
                    "UNION SELECT DISTINCT owner FROM open_runs WHERE base_id = ? AND owner != ?",
                    (base_id, owner, base_id, owner),
                )
            ]
            gone = [o for o in candidates if not self._alive(o, owners.get(o), stale_after)]
            merged: dict[tuple[str, str], JournalRow] = {}
            versions: dict[tuple[str, str], int] = {}
            for other in gone:
                last_seen = owners[other][2] if other in owners else 0.0
                for table, key, key_fields, fields, _version, updated in self._conn.execute(
                    "SELECT table_name, record_key, key_fields, fields, version, updated_at FROM pending "
                    "WHERE base_id = ? AND owner = ? ORDER BY updated_at",
                    (base_id, other),
                ).fetchall():
                    last_seen = max(last_seen, updated)
                    parsed = _parse_row(key_fields, fields)
                    if parsed is None:
                        # Unreadable (written by hand, truncated): keep it aside, never wedge the others on it.
                        self._conn.execute(
                            "INSERT INTO undeliverable "
                            "(base_id, table_name, record_key, key_fields, fields, error, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (base_id, table, key, str(key_fields), str(fields), "unreadable journal row", time.time()),
                        )
                        logger.error(
                            "jobtrace: journal row %s of table %r (base %s) is unreadable; kept as undeliverable",
                            key,
                            table,
                            base_id,
                        )
                        continue
                    found = merged.get((table, key))
                    if found is None:
                        merged[(table, key)] = JournalRow(table, key, parsed[0], parsed[1])
                    else:
                        found.fields.update(parsed[1])
                self._conn.execute("DELETE FROM pending WHERE base_id = ? AND owner = ?", (base_id, other))
                self._take_open_runs(base_id, owner, other, owners.get(other), last_seen)
                self._forget_if_done(other)
            for (table, key), row in merged.items():
                mine = self._conn.execute(
                    "SELECT fields, version FROM pending WHERE base_id = ? AND table_name = ? AND record_key = ? "
                    "AND owner = ?",
                    (base_id, table, key, owner),
                ).fetchone()
                if mine is not None:
                    row.fields.update(json.loads(mine[0]))
                    versions[(table, key)] = mine[1]
                self._conn.execute(
                    "INSERT OR REPLACE INTO pending "
                    "(base_id, table_name, record_key, owner, key_fields, fields, version, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        base_id,
                        table,
                        key,
                        owner,
                        _dumps(list(row.key_fields)),
                        _dumps(row.fields),
                        versions.get((table, key), 0),
                        time.time(),
                    ),
                )
            return list(merged.values())

    def _take_open_runs(
        self, base_id: str, owner: str, other: str, info: tuple[str, int, float] | None, last_seen: float
    ) -> None:
        found = self._conn.execute(
            "SELECT table_name, record_key, key_fields, roles, opened_at, stopped, last_seen FROM open_runs "
            "WHERE base_id = ? AND owner = ?",
            (base_id, other),
        ).fetchall()
        who = f"pid {info[1]} on host {info[0]}" if info is not None else "a process"
        for table, key, key_fields, roles, opened_at, stopped, seen in found:
            # A run already taken over from a dead owner keeps what was known of that one.
            self._conn.execute(
                "INSERT OR IGNORE INTO open_runs (base_id, table_name, record_key, owner, key_fields, roles, "
                "opened_at, stopped, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    base_id,
                    table,
                    key,
                    owner,
                    key_fields,
                    roles,
                    opened_at,
                    stopped or who,
                    seen if seen is not None else max(last_seen, opened_at),
                ),
            )
        self._conn.execute("DELETE FROM open_runs WHERE base_id = ? AND owner = ?", (base_id, other))

    def _forget_if_done(self, other: str) -> None:
        left = self._conn.execute(
            "SELECT (SELECT COUNT(*) FROM pending WHERE owner = ?) + (SELECT COUNT(*) FROM open_runs WHERE owner = ?)",
            (other, other),
        ).fetchone()[0]
        if not left:
            self._conn.execute("DELETE FROM owners WHERE owner = ?", (other,))
            owner_locks.remove(self.path, other)

    def dead_runs(self, base_id: str, owner: str) -> list[DeadRun]:
        """The runs ``owner`` took over from dead owners and has to close, oldest first."""

        def op() -> list[DeadRun]:
            return [
                DeadRun(t, k, tuple(json.loads(kf)), dict(zip(json.loads(kf), json.loads(k))), json.loads(r), st, ls)
                for t, k, kf, r, st, ls in self._conn.execute(
                    "SELECT table_name, record_key, key_fields, roles, stopped, last_seen FROM open_runs "
                    "WHERE base_id = ? AND owner = ? AND stopped IS NOT NULL ORDER BY opened_at",
                    (base_id, owner),
                ).fetchall()
            ]

        return self._retrying(op)

    def drop_dead_run(self, base_id: str, owner: str, table: str, key: str) -> None:
        """A taken-over run that needs no closing (it ended meanwhile, or someone else runs it)."""
        self._retrying(
            lambda: self._conn.execute(
                "DELETE FROM open_runs WHERE base_id = ? AND owner = ? AND table_name = ? AND record_key = ?",
                (base_id, owner, table, key),
            )
        )

    def live_open(self, base_id: str, table: str, key: str, owner: str) -> bool:
        """Whether another live owner has this record open (resumed elsewhere on this host)."""

        def op() -> bool:
            others = self._conn.execute(
                "SELECT o.owner, w.host, w.pid, w.heartbeat FROM open_runs o LEFT JOIN owners w ON o.owner = w.owner "
                "WHERE o.base_id = ? AND o.table_name = ? AND o.record_key = ? AND o.owner != ? "
                "AND o.stopped IS NULL",
                (base_id, table, key, owner),
            ).fetchall()
            return any(self._alive(o, (h, p, hb) if h is not None else None, STALE_AFTER) for o, h, p, hb in others)

        return self._retrying(op)

    def skipped(self, base_id: str, owner: str) -> tuple[int, int]:
        """What a claim did not take: ``(rows of this base still owned by live owners, rows of other bases)``."""

        def op() -> tuple[int, int]:
            live = self._conn.execute(
                "SELECT COUNT(*) FROM pending WHERE base_id = ? AND owner != ?", (base_id, owner)
            ).fetchone()
            other = self._conn.execute("SELECT COUNT(*) FROM pending WHERE base_id != ?", (base_id,)).fetchone()
            return int(live[0]), int(other[0])

        return self._retrying(op)

    def rows(self, base_id: str, table: str | None = None, key: str | None = None) -> list[JournalRow]:
        """Every pending row of a base (optionally one table/record), oldest first, whoever owns it."""
        sql = "SELECT table_name, record_key, key_fields, fields FROM pending WHERE base_id = ?"
        params: list[Any] = [base_id]
        if table is not None:
            sql += " AND table_name = ?"
            params.append(table)
        if key is not None:
            sql += " AND record_key = ?"
            params.append(key)
        found = self._retrying(lambda: self._conn.execute(sql + " ORDER BY updated_at", params).fetchall())
        return [JournalRow(t, k, tuple(json.loads(kf)), json.loads(f)) for t, k, kf, f in found]

    def _alive(self, owner: str, info: tuple[str, int, float] | None, stale_after: float) -> bool:
        """Whether a journal owner may still be sending (so its rows are not ours to take)."""
        held = owner_locks.probe(self.path, owner)
        if held is not None:
            return held  # the kernel's word: PID reuse or a silent owner cannot fool it
        return _alive(info, stale_after)

    # -- undeliverable -------------------------------------------------------------

    def set_aside(
        self, base_id: str, owner: str, row: JournalRow, error: str, version: int | None, whole_record: bool
    ) -> None:
        """Keep fields the backend refused in ``undeliverable``; with ``whole_record`` drop the pending row."""
        self._retrying(lambda: self._set_aside(base_id, owner, row, error, version, whole_record))

    def _set_aside(
        self, base_id: str, owner: str, row: JournalRow, error: str, version: int | None, whole_record: bool
    ) -> None:
        with self._transaction():
            self._conn.execute(
                "INSERT INTO undeliverable (base_id, table_name, record_key, key_fields, fields, error, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    base_id,
                    row.table,
                    row.record_key,
                    _dumps(list(row.key_fields)),
                    _dumps(row.fields),
                    error,
                    time.time(),
                ),
            )
            if whole_record and version is not None:
                self._conn.execute(
                    "DELETE FROM pending WHERE base_id = ? AND table_name = ? AND record_key = ? AND owner = ? "
                    "AND version = ?",
                    (base_id, row.table, row.record_key, owner, version),
                )

    def undeliverable(self, base_id: str) -> list[tuple[JournalRow, str]]:
        """The records (or fields) the backend refused, with the reason, oldest first."""
        found = self._retrying(
            lambda: self._conn.execute(
                "SELECT table_name, record_key, key_fields, fields, error FROM undeliverable WHERE base_id = ? "
                "ORDER BY id",
                (base_id,),
            ).fetchall()
        )
        return [(JournalRow(t, k, tuple(json.loads(kf)), json.loads(f)), e) for t, k, kf, f, e in found]

    def requeue_undeliverable(self, base_id: str) -> int:
        """Move every undeliverable row of ``base_id`` back to pending (after the base was fixed).

        The rows get an owner that is not running, so the next sink start or
        replay for the base claims them. Returns how many records were put back.
        """
        owner = f"requeued-{uuid.uuid4().hex}"
        return self._retrying(lambda: self._requeue(base_id, owner))

    def _requeue(self, base_id: str, owner: str) -> int:
        with self._transaction():
            found = self._conn.execute(
                "SELECT table_name, record_key, key_fields, fields FROM undeliverable WHERE base_id = ? ORDER BY id",
                (base_id,),
            ).fetchall()
            merged: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
            for table, key, key_fields, fields in found:
                previous = merged.get((table, key))
                values = previous[1] if previous else {}
                values.update(json.loads(fields))
                merged[(table, key)] = (key_fields, values)
            self._conn.executemany(
                "INSERT OR REPLACE INTO pending "
                "(base_id, table_name, record_key, owner, key_fields, fields, version, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                [
                    (base_id, table, key, owner, key_fields, _dumps(values), 0.0)
                    for (table, key), (key_fields, values) in merged.items()
                ],
            )
            self._conn.execute("DELETE FROM undeliverable WHERE base_id = ?", (base_id,))
            return len(merged)

    def counts(self, base_id: str) -> tuple[int, int]:
        """``(pending rows, undeliverable rows)`` for a base."""

        def op() -> tuple[int, int]:
            pending = self._conn.execute("SELECT COUNT(*) FROM pending WHERE base_id = ?", (base_id,)).fetchone()
            refused = self._conn.execute("SELECT COUNT(*) FROM undeliverable WHERE base_id = ?", (base_id,)).fetchone()
            return int(pending[0]), int(refused[0])

        return self._retrying(op)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)

    def __repr__(self) -> str:
        return f"<Journal {self.path}>"


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    return "locked" in str(exc) or "busy" in str(exc)


def _parse_row(key_fields: object, fields: object) -> tuple[tuple[str, ...], dict[str, Any]] | None:
    """A pending row's key field names and fields, or None when the row cannot be read as one."""
    try:
        keys = json.loads(key_fields)  # type: ignore[arg-type]
        values = json.loads(fields)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not (isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys) and isinstance(values, dict)):
        return None
    return tuple(keys), values


def _alive(owner: tuple[str, int, float] | None, stale_after: float) -> bool:
    """Whether an owner whose lock cannot be asked may still be sending: PID (same host) and heartbeat."""
    if owner is None:
        return False  # released
    host, pid, heartbeat = owner
    if time.time() - heartbeat > stale_after:
        return False
    if host != socket.gethostname() or sys.platform == "win32":
        # Cannot check another machine's (or, safely, Windows') processes: trust the heartbeat.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by another user
    return True
