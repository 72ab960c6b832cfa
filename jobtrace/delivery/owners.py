"""Which journal owners are alive: an OS lock each owner holds for as long as its process lives.

Every running delivery engine (one sink, or one replay) is a journal *owner*, named by
a random UUID, never by its PID. It creates ``<journal>.owners/<owner>.lock``
and holds an exclusive ``flock`` on it until it releases its rows or its
process dies; the kernel drops the lock when the process ends, however it
ends (SIGKILL, OOM). Another process tells a dead owner from a live one by
trying to take the lock without waiting. A restarted container whose job is
PID 1 again cannot look like the dead owner: the lock, not the PID, is asked.

Where ``fcntl`` is missing (Windows) or the lock directory cannot be written,
:func:`probe` answers None and the journal falls back to the owner's host,
PID and heartbeat age.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["OwnerLock", "lock_directory", "probe", "remove"]

logger = logging.getLogger("jobtrace")

_held: set[int] = set()
_held_lock = threading.Lock()


def lock_directory(journal_path: str) -> Path | None:
    """Where the owners' lock files of a journal live (None for an in-memory journal)."""
    if journal_path == ":memory:":
        return None
    return Path(journal_path + ".owners")


def _lock_file(journal_path: str, owner: str) -> Path | None:
    directory = lock_directory(journal_path)
    if directory is None or not all(c in "0123456789abcdefABCDEF-" for c in owner):
        return None
    return directory / f"{owner}.lock"


class OwnerLock:
    """The lock one live owner holds; :meth:`release` when done (the kernel drops it on death)."""

    def __init__(self, journal_path: str, owner: str) -> None:
        self.path = _lock_file(journal_path, owner)
        self._fd: int | None = None
        if self.path is None or fcntl is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            logger.warning(
                "jobtrace: cannot create the owner lock %s (%s); liveness falls back to PIDs", self.path, exc
            )
            self.path = None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            self.path = None
            return
        self._fd = fd
        with _held_lock:
            _held.add(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock and its file: the owner is done."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with _held_lock:
            if fd not in _held:
                return  # a forked child: the parent's lock is not ours to drop
            _held.discard(fd)
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(fd)


def probe(journal_path: str, owner: str) -> bool | None:
    """True: the owner's process holds its lock (alive). False: nobody does (dead). None: cannot tell."""
    path = _lock_file(journal_path, owner)
    if path is None or fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        return None
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return False


def remove(journal_path: str, owner: str) -> None:
    """Delete a dead owner's lock file (after its rows were taken over)."""
    path = _lock_file(journal_path, owner)
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def _close_in_child() -> None:
    # A forked child must not keep its parent's owner locks alive after the parent dies.
    with _held_lock:
        fds = list(_held)
        _held.clear()
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)
