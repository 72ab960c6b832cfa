"""``reset()``: put jobtrace back as a fresh process has it, between tests."""

from __future__ import annotations

from .. import tracker
from ..context import client_scope, job_scope
from ..process_state import state

__all__ = ["reset"]


def reset(*, keep_configuration: bool = False) -> None:
    """Forget jobtrace's process-wide state (:mod:`jobtrace.process_state`), as a new process has none.

    First waits for the dispatcher to hand over what was recorded (to the
    sinks it was recorded for), then: no configuration (the next run
    configures the default, a LogSink), sink error counts at zero, no live or
    remembered runs (the explicit API reads records back from the sinks
    again), and the run inherited from a parent process read again from the
    environment at the next run. The calling context also leaves any job or
    client run it was still in (a test that failed half-way through a
    ``tracked_job`` entered by hand). ``keep_configuration=True`` keeps the
    configured sinks: a test that plays "another process" against the same
    sinks. Run IDs already issued stay taken, so IDs remain unique in the process.
    """
    if keep_configuration:
        tracker.flush(timeout=10.0)
    else:
        tracker.restore(None)
    state.forget_runs()
    with state.lock:
        state.sink_errors = 0
        state.last_sink_error = None
    state.parent = None
    state.parent_loaded = False
    job_scope.set(None)
    client_scope.set(None)
