"""How busy the loop thread is: its time outside `select`, for the trace.

Owns: the clock of one loop thread's passes and the `loop_busy` events it
reports (docs/trace.md). Must not: touch sockets or the selector; the loop
calls `asleep()` just before it blocks in `select` and `awake()` just after.

A thread that runs no task (the reactor, with a pool) would otherwise look
idle in every picture while it reads, parses, encodes and writes for
everyone. Each event covers the time since the previous one, so the events
of a thread tile its life; one every REPORT_NS keeps the cost to a few
events a second, whatever the pass rate.
"""

from __future__ import annotations

from time import monotonic_ns

from reactor.tracing.hooks import TraceHooks

#: One `loop_busy` event per this many ns of the thread's life.
REPORT_NS = 50_000_000


class LoopClock:
    """Counts the ns a loop thread works between selects; tells `tracer`."""

    __slots__ = ("_busy", "_since", "_tracer", "_woke")

    def __init__(self, tracer: TraceHooks) -> None:
        self._tracer = tracer
        self._since = self._woke = monotonic_ns()
        self._busy = 0

    def asleep(self) -> None:
        """The thread is about to wait in `select`."""
        self._busy += monotonic_ns() - self._woke

    def awake(self) -> None:
        """`select` returned: the thread works again (reported every REPORT_NS)."""
        now = self._woke = monotonic_ns()
        if now - self._since >= REPORT_NS:
            self.report(now)

    def report(self, now: int) -> None:
        """Report [last report, `now`]."""
        self._tracer.loop_busy(self._since, now, min(self._busy, now - self._since))
        self._since, self._busy = now, 0

    def finish(self) -> None:
        """The loop ends: report its last part."""
        self.asleep()
        self.report(monotonic_ns())


class NoClock(LoopClock):
    """The clock of an untraced server: counts nothing."""

    __slots__ = ()

    def asleep(self) -> None:
        """Nothing to count."""

    def awake(self) -> None:
        """Nothing to count."""

    def report(self, now: int) -> None:
        """Nothing to report."""

    def finish(self) -> None:
        """Nothing to report."""


def loop_clock(tracer: TraceHooks) -> LoopClock:
    """The clock for a loop reporting to `tracer` (one that counts nothing
    when the server is not traced)."""
    return LoopClock(tracer) if tracer.enabled else NoClock(tracer)
