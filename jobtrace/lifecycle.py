"""How runs end when their process does: SIGTERM, interpreter exit, Ctrl-C under ``asyncio.run``.

- **SIGTERM.** Where nobody else owns the signal (its handler is ``SIG_DFL``
  when jobtrace is configured or a job starts in the main thread), jobtrace
  installs a handler. It raises :class:`ProcessStopping` (a ``SystemExit``) in
  the main thread, so the job's ``with`` blocks unwind and its runs end as
  ``Interrupted`` with a ``System Notes`` line naming the signal; the exit path
  below then delivers within one bound, and the process ends as a SIGTERM'd
  process does (killed by SIGTERM, status 143). A handler the application or a
  framework installed is never replaced; the exit path covers those processes.
- **The exit path** (``atexit``): runs this process started with
  ``tracked_job``/``client_run`` that are still open are ended as
  ``Interrupted`` ("the process exited while the run was open"), then every
  sink is closed within one total bound (``configure(exit_timeout=...)``).
- **A watchdog** started by the SIGTERM handler makes sure the process is gone
  within the bound even when the main thread does not unwind (a job in a
  non-daemon thread, code that swallows ``SystemExit``).
- **Cancellation while stopping.** A run ended by ``asyncio.CancelledError``
  (or ``GeneratorExit``) while the process is stopping is ``Interrupted``, not
  ``Cancelled``: ``asyncio.run`` cancels its tasks on Ctrl-C and at shutdown.

``configure(handle_signals=False)`` installs no handler (the exit path stays).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Final, Protocol

from .process_state import state

__all__ = [
    "ProcessStopping",
    "closed",
    "describe_interruption",
    "end_open_runs",
    "install_signal_handler",
    "opened",
    "stopping",
]

logger = logging.getLogger("jobtrace")

#: The exit status of a process ended by SIGTERM, as shells and orchestrators report it.
SIGTERM_EXIT_STATUS: Final = 128 + int(signal.SIGTERM)


class _Finishable(Protocol):
    def finish(self, exc: BaseException | None) -> None: ...


class ProcessStopping(SystemExit):
    """Raised by jobtrace's SIGTERM handler in the main thread: the process was asked to stop.

    A ``SystemExit`` (exit status 143), so ``except Exception`` in the job does
    not swallow it, and runs it unwinds end as ``Interrupted``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signame = signal.Signals(signum).name
        self.note = f"Interrupted: the process received {self.signame} (asked to stop)"

    def __str__(self) -> str:
        return f"received {self.signame}"


# Job runs this process started (tracked_job blocks) and has not ended; id -> run. Its open
# client runs are the ones in state.live_clients (client_run blocks not left yet): keeping
# that registry already, a client run pays nothing more to be ended at exit.
_open: dict[int, _Finishable] = {}
_state = threading.Lock()
_signal_received: int | None = None
_signal_at = 0.0
_exiting = False
_exit_started = threading.Event()
_exit_done = threading.Event()
_exit_once = threading.Lock()
_handler_installed = False
_enabled = True


def opened(run: _Finishable) -> None:
    """A job run started here (a ``tracked_job`` this process owns; client runs are in ``state.live_clients``)."""
    _open[id(run)] = run


def closed(run: _Finishable) -> None:
    """That run ended (or its block was left)."""
    _open.pop(id(run), None)


def open_runs() -> list[Any]:
    """The runs this process has open (a snapshot): its client runs first, then its job runs."""
    clients = [
        run
        for run in list(state.live_clients.values())  # also holds placeholders of client runs being started
        if getattr(run, "kind", None) == "client" and not run.ended
    ]
    return clients + list(_open.values())


def stopping() -> str | None:
    """Why the process is stopping (a signal, Ctrl-C under asyncio, interpreter exit), or None."""
    if _signal_received is not None:
        return f"the process received {signal.Signals(_signal_received).name} (asked to stop)"
    if _asyncio_runner_interrupted():
        return "Ctrl-C (SIGINT) stopped asyncio.run"
    if _exiting:
        return "the process exited while the run was open"
    return None


def describe_interruption(exc: BaseException) -> str:
    """The ``System Notes`` line for a run ended as ``Interrupted`` by ``exc``."""
    note = getattr(exc, "note", None)
    if isinstance(exc, (ProcessStopping, _ExitInterruption)) and isinstance(note, str):
        return note
    reason = stopping()
    if reason is not None and not isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return f"Interrupted: {reason}"
    text = str(exc)
    return f"Interrupted ({type(exc).__name__}: {text})" if text else f"Interrupted ({type(exc).__name__})"


def _asyncio_runner_interrupted() -> bool:
    """True after Ctrl-C under ``asyncio.run``: its Runner turned SIGINT into cancelling the main task.

    The Runner (Python 3.11+) installs ``functools.partial(runner._on_sigint, ...)``
    as the SIGINT handler and counts interrupts in ``_interrupt_count``; there
    is no public way to ask, so this looks, defensively.
    """
    if "asyncio" not in sys.modules:
        return False
    try:
        handler = signal.getsignal(signal.SIGINT)
    except (ValueError, OSError):  # pragma: no cover - not on this platform
        return False
    method = getattr(handler, "func", None)
    runner = getattr(method, "__self__", None)
    runners = getattr(sys.modules["asyncio"], "Runner", None)
    if runners is None or not isinstance(runner, runners):
        return False
    return bool(getattr(runner, "_interrupt_count", 0))


# -- SIGTERM -----------------------------------------------------------------------------------


def configure(handle_signals: bool) -> None:
    """Called by ``jobtrace.configure``: install the SIGTERM handler where it is free, or remove ours."""
    global _enabled
    _enabled = handle_signals
    if handle_signals:
        install_signal_handler()
    else:
        _uninstall()


def install_signal_handler() -> bool:
    """Install jobtrace's SIGTERM handler if the signal is unowned (SIG_DFL) and this is the main thread."""
    global _handler_installed
    if _handler_installed or not _enabled or sys.platform == "win32":
        return _handler_installed
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False  # someone else's (the application's, uvicorn's, gunicorn's, celery's): never replaced
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # pragma: no cover - embedded interpreters
        return False
    _handler_installed = True
    return True


def _uninstall() -> None:
    global _handler_installed
    if not _handler_installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _handler_installed = False


def _on_sigterm(signum: int, frame: object) -> None:
    global _signal_received, _signal_at
    if _signal_received is not None:
        return  # already stopping: the first one's bound holds
    _signal_received = signum
    _signal_at = time.monotonic()
    threading.Thread(target=_watchdog, name="jobtrace-sigterm", daemon=True).start()
    if _exit_started.is_set():
        # The process is exiting already and delivering within its bound: let it finish, then die as SIGTERM'd.
        return
    logger.warning("jobtrace: %s received; ending open runs as Interrupted", signal.Signals(signum).name)
    raise ProcessStopping(signum)


def _exit_timeout() -> float:
    from . import tracker

    config = tracker.configured()
    return config.exit_timeout if config is not None else tracker.EXIT_FLUSH_TIMEOUT


def _watchdog() -> None:
    """Make sure a SIGTERM'd process is gone within its bound, whatever the main thread does."""
    bound = _exit_timeout()
    deadline = _signal_at + bound
    # Half the bound for the main thread to unwind and reach the exit path, the rest to deliver.
    ran_here = False
    if not _exit_started.wait(max(0.0, _signal_at + bound / 2 - time.monotonic())):
        logger.warning("jobtrace: the main thread did not exit after SIGTERM; ending open runs from a watchdog")
        ran_here = _exit_path(deadline)
    if not ran_here and _exit_done.wait(max(0.0, deadline - time.monotonic()) + 0.5):
        # The main thread ends the process itself (killed by SIGTERM); this is only the backstop.
        time.sleep(0.5)
    _die(from_main_thread=False)


def _die(from_main_thread: bool) -> None:
    """End the process as SIGTERM would have (status 143)."""
    logging.shutdown()
    if from_main_thread:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            # Still here: PID 1 in a container ignores its own default-action signals.
            time.sleep(0.05)
        except (ValueError, OSError):  # pragma: no cover
            pass
    os._exit(SIGTERM_EXIT_STATUS)


# -- the exit path --------------------------------------------------------------------------------


def end_open_runs(exc: BaseException | None = None) -> int:
    """End every run this process still has open as ``Interrupted``; clients first. Returns how many."""
    runs = open_runs()  # client runs first, so their job sees them end before it ends itself
    stop = exc if exc is not None else _exit_exception()
    for run in runs:
        try:
            run.finish(stop)
        except Exception as error:  # a strict sink; the exit path goes on
            logger.error("jobtrace: ending run %r at exit failed: %s", run, error)
        finally:
            closed(run)
    return len(runs)


class _ExitInterruption(SystemExit):
    """The reason given to runs ended by the exit path."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


def _exit_exception() -> BaseException:
    if _signal_received is not None:
        return ProcessStopping(_signal_received)
    return _ExitInterruption(f"Interrupted: {stopping() or 'the process exited while the run was open'}")


def _exit_path(deadline: float | None = None) -> bool:
    """End open runs, then close every sink within one total bound. Runs once per process (True: ran now)."""
    global _exiting
    if not _exit_once.acquire(blocking=False):
        return False
    _exit_started.set()
    try:
        from . import tracker

        _exiting = True
        if tracker.configured() is None:
            return True
        if deadline is None:
            deadline = time.monotonic() + _exit_timeout()
        ended = end_open_runs()
        if ended:
            logger.warning("jobtrace: %d run(s) still open at exit ended as Interrupted", ended)
        tracker.close_sinks(max(0.0, deadline - time.monotonic()))
    except Exception as exc:  # pragma: no cover - never let the exit path raise
        logger.error("jobtrace: the exit path failed: %s", exc)
    finally:
        _exit_done.set()
    return True


def _at_exit() -> None:
    deadline = _signal_at + _exit_timeout() if _signal_received is not None else None
    _exit_path(deadline)
    if _signal_received is not None and threading.current_thread() is threading.main_thread():
        _die(from_main_thread=True)


atexit.register(_at_exit)
