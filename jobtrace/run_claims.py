"""Claiming new run IDs, so that two jobs never share one: across threads, processes and hosts.

A new run ID is the current UTC second (``YYMMDD-HHMMSS``), or the next free
second after it. "Free" means, in order:

1. not issued by this process yet (:func:`jobtrace.run_ids.next_run_id_candidate`);
2. not claimed by another jobtrace process on this host: an ``INSERT`` into a
   small SQLite file in the state directory (:func:`jobtrace.state.state_dir`,
   ``run-ids.sqlite3``), whose primary key makes the claim atomic; claims are
   forgotten after a day;
3. accepted by every configured sink (:meth:`jobtrace.sinks.Sink.claim_run_id`):
   the Airtable sink claims it in Redis when one is configured (``SET NX``),
   else checks that the base holds no job record with that run ID yet.

A run resumed with an explicit ``run_id=`` is not claimed: it is the run it names.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

from . import tracker
from .run_ids import next_run_id_candidate
from .state import state_dir

__all__ = ["CLAIM_TTL", "LocalClaims", "claim_new_run_id"]

logger = logging.getLogger("jobtrace")

#: Seconds after which a local claim is forgotten (run IDs only ever move forward in time).
CLAIM_TTL = 86_400.0
#: Candidates tried before giving up on finding a free second (each refusal moves one second on).
MAX_ATTEMPTS = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    run_id TEXT PRIMARY KEY,
    claimed_at REAL NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_by_age ON claims (claimed_at);
"""


class LocalClaims:
    """Run IDs claimed by the jobtrace processes of one host, in one SQLite file. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._conn = sqlite3.connect(str(self.path), timeout=10.0, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.execute("DELETE FROM claims WHERE claimed_at < ?", (time.time() - CLAIM_TTL,))
        self._claims = 0
        self.pid = os.getpid()

    def claim(self, run_id: str) -> bool:
        """Claim ``run_id`` for this process: True if no other process of this host has it."""
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO claims (run_id, claimed_at, host, pid) VALUES (?, ?, ?, ?)",
                    (run_id, time.time(), socket.gethostname(), os.getpid()),
                )
            except sqlite3.IntegrityError:
                return False
            self._claims += 1
            if self._claims % 1000 == 0:
                self._conn.execute("DELETE FROM claims WHERE claimed_at < ?", (time.time() - CLAIM_TTL,))
            return True

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_lock = threading.Lock()
_local: LocalClaims | None = None
_unusable: set[Path] = set()


def _local_claims() -> LocalClaims | None:
    """This process's handle on the host's claims file (reopened after a fork or a new state dir)."""
    global _local
    path = state_dir() / "run-ids.sqlite3"
    local = _local
    if local is not None and local.path == path and local.pid == os.getpid():
        return local
    with _lock:
        if _local is not None and _local.path == path and _local.pid == os.getpid():
            return _local
        if path in _unusable:
            return None
        try:
            _local = _open_retrying(path)
        except (OSError, sqlite3.Error) as exc:
            _unusable.add(path)
            logger.warning(
                "jobtrace: cannot use the run-ID claims file %s (%s); run IDs are unique within this "
                "process only (set JOBTRACE_STATE_DIR to a writable directory)",
                path,
                exc,
            )
            return None
        return _local


def _open_retrying(path: Path) -> LocalClaims:
    """Open the claims file; processes creating it at the same instant may briefly find it locked."""
    for attempt in range(20):
        try:
            return LocalClaims(path)
        except sqlite3.OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def _claim_locally(run_id: str) -> bool:
    local = _local_claims()
    if local is None:
        return True
    try:
        return local.claim(run_id)
    except sqlite3.Error as exc:
        logger.warning("jobtrace: claiming run ID %s in %s failed (%s); going on without", run_id, local.path, exc)
        return True


def _sinks_agree(run_id: str) -> bool:
    for sink in tracker.get_config().sinks:
        try:
            if not sink.claim_run_id(run_id):
                return False
        except Exception as exc:  # tracking never breaks the job: a failed check is not a refusal
            logger.error(
                "jobtrace: %s.claim_run_id failed for run %s: %s: %s",
                type(sink).__name__,
                run_id,
                type(exc).__name__,
                exc,
            )
    return True


def claim_new_run_id() -> str:
    """A new job run ID that no other job has: see the module docstring."""
    candidate = next_run_id_candidate()
    for _ in range(MAX_ATTEMPTS):
        if _claim_locally(candidate) and _sinks_agree(candidate):
            return candidate
        candidate = next_run_id_candidate()
    logger.error("jobtrace: no free run ID found in %d tries; using %s", MAX_ATTEMPTS, candidate)
    return candidate
