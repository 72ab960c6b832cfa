"""jobtrace's process-wide state, in one place (in memory; the files a host shares are :mod:`jobtrace.state`'s).

A process running jobtrace keeps a little state: the configuration, the count
of sink errors, the job runs live in this process (so that ``run_id=`` joins
them), the records the explicit API (:mod:`jobtrace.tracking`) remembers, and
the run inherited from a parent process. All of it lives on one object,
:data:`state`; the modules that use it read and write it there, and
:func:`reset` puts all of it back as a fresh process has it
(:func:`jobtrace.testing.reset` is the public entry point, used by the
``jobtrace_sink`` fixture).

Deliberately elsewhere, and not reset: the run IDs already issued
(``run_ids``, and ``run_claims``' handle on the host's claims file: two jobs
never share one, even across a reset),
the dispatcher's queue and thread (``dispatch``: a reset first waits for it to
deliver what is queued), the secrets to redact from messages (``redaction``:
a live sink's token must stay hidden), and what configuration or a sink
package registers once at import (flush hooks, environment factories, the
Airtable sink's per-base rate budgets).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import ParentRun
    from .records import ClientRun, JobRun
    from .tracker import Config

__all__ = ["State", "state"]


class State:
    """Everything jobtrace remembers between calls (one instance: :data:`state`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        """Guards ``config`` and the error counts."""
        self.config: Config | None = None
        """The current configuration (None: not configured yet; the first run configures the default)."""
        self.sink_errors = 0
        """Sink failures counted so far (``jobtrace.diagnostics()["sink_errors"]``)."""
        self.last_sink_error: str | None = None

        self.active_lock = threading.Lock()
        """Guards ``active_jobs``."""
        self.active_jobs: dict[str, JobRun] = {}
        """Job runs live in this process by run ID: ``tracked_job(run_id=X)`` and ``client_run(run_id=X)`` join them."""

        self.live_clients: dict[tuple[str, str], Any] = {}
        """Client runs live in this process by ``(run_id, client_id)`` (a placeholder while one starts):
        a second ``client_run()`` of the same client joins the live one, and the exit path ends what is here.
        No lock: ``dict.setdefault`` claims a place, each run's own lock counts its entries."""

        self.explicit_lock = threading.RLock()
        """Guards the explicit API's find-or-create (one record per run, even for concurrent webhook calls)."""
        self.explicit_jobs: OrderedDict[str, JobRun] = OrderedDict()
        """Job runs the explicit API remembers (live and recently completed), oldest first."""
        self.explicit_clients: OrderedDict[tuple[str, str], ClientRun] = OrderedDict()
        """Client runs the explicit API remembers, by ``(run_id, client_id)``, oldest first."""

        self.parent: ParentRun | None = None
        """The run inherited from a parent process (``JOBTRACE_RUN_ID``), once read."""
        self.parent_loaded = False
        """Whether ``parent`` has been read from the environment yet."""

    def live_job(self, run_id: str) -> JobRun | None:
        """The job run live in this process under ``run_id``, if any."""
        return self.active_jobs.get(run_id)

    def forget_runs(self) -> None:
        """Forget every run this process knows (live and remembered), as a new process would."""
        with self.active_lock:
            self.active_jobs.clear()
        self.live_clients.clear()
        self.forget_explicit()

    def forget_explicit(self) -> None:
        """Forget the records the explicit API remembers (they belong to the configuration they were made under)."""
        with self.explicit_lock:
            self.explicit_jobs.clear()
            self.explicit_clients.clear()


state = State()
"""The process's state."""
