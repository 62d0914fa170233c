"""What the rest of the server may tell the trace, as a typed interface
whose every method is a no-op: `TraceHooks` (trio's `Instrument` is the
model). The recorder (reactor/tracing/recorder.py) overrides them; a server
run without `--trace` gets `NULL_TRACE`, so no caller tests `if tracer`.

Owns: the interface and the null trace. Must not: import anything above
reactor/sync, or record anything itself. (`event`, for any other event, is
`Reporter`'s, reactor/sync/instrument.py.)
"""

from __future__ import annotations

from reactor.sync import tasks
from reactor.sync.instrument import Reporter


class TraceHooks(Reporter):
    """The trace as callers see it. `enabled` is False only for the null one."""

    enabled = False

    def thread_start(self) -> None:
        """The calling thread starts (so it shows even if it never runs a task)."""

    def thread_end(self) -> None:
        """The calling thread ends now."""

    def new_task(self, cmd: str, conn: int) -> tasks.Task:
        """A new task (a command queued by an I/O model, or a commit): its
        trace id and whether it is sampled. Unsampled here: nothing is traced."""
        return tasks.Task(0, cmd, conn, False)

    def task_start(self, task: tasks.Task) -> None:
        """The calling thread starts running `task`."""

    def task_end(self, task: tasks.Task) -> None:
        """The calling thread finished `task`."""

    def io(self, kind: str, conn: int, nbytes: int) -> None:
        """`kind` is "io_read" or "io_write" (only with --trace-io)."""

    def loop_busy(self, start: int, end: int, busy: int) -> None:
        """The calling loop thread worked `busy` ns of [`start`, `end`]
        (monotonic ns) and waited for events the rest of it."""


#: The trace of a server run without --trace.
NULL_TRACE = TraceHooks()
