"""Lock instruments, trio-style: typed hooks that watch every named lock.

Owns: `LockInstrument`, the interface whose methods are all no-ops (an
instrument overrides the events it watches: the trace, the lock-order
checker, the deadlock watchdog), and `LockHooks`, the set of instruments
one server's locks report to. Must not: change what a lock does, or import
anything above reactor/sync.

`LockHooks` keeps, per event, only the instruments that override it, so a
lock with nobody watching calls nothing (trio's `Instruments` does the
same); no caller tests `if hook is not None`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Watched(Protocol):
    """What an instrument may read of a lock (reactor/sync/locks.py
    `NamedLock` is one): its name, its class, and its holder."""

    @property
    def name(self) -> str:
        """The lock's name, e.g. ``group:os2``."""
        ...

    @property
    def cls(self) -> str:
        """The lock's class: its name up to the first ``:``."""
        ...

    @property
    def owner(self) -> int | None:
        """Thread ident of the holder, or None."""
        ...


class LockInstrument:
    """Told of lock events; override the ones you watch. Times are
    `time.monotonic_ns()`. Called by the thread that takes or releases the
    lock, so an instrument keeps per-thread state without a lock of its own."""

    def before_acquire(self, lock: Watched) -> None:
        """`lock` is about to be asked for (it may be held by someone)."""

    def waiting(self, lock: Watched, t0: int) -> None:
        """`lock` was busy at `t0`: the thread now blocks for it."""

    def done_waiting(self, lock: Watched) -> None:
        """The blocked thread got `lock`, or gave up."""

    def acquired(self, lock: Watched, t0: int, t1: int) -> None:
        """`lock` was asked for at `t0` and had at `t1`."""

    def gave_up(self, lock: Watched, t0: int, t1: int) -> None:
        """A timed wait for `lock` from `t0` ended at `t1` without it."""

    def released(self, lock: Watched, t: int) -> None:
        """`lock` was released at `t`."""


_EVENTS = ("before_acquire", "waiting", "done_waiting", "acquired", "gave_up", "released")


def _overriding(
    instruments: tuple[LockInstrument, ...], event: str
) -> tuple[Callable[..., None], ...]:
    base = getattr(LockInstrument, event)
    return tuple(
        getattr(i, event) for i in instruments if getattr(type(i), event, base) is not base
    )


class LockHooks:
    """The instruments of one server's locks, by event, in the order given."""

    __slots__ = ("acquired", "before_acquire", "done_waiting", "gave_up", "instruments",
                 "released", "waiting")  # fmt: skip

    def __init__(self, *instruments: LockInstrument) -> None:
        self.instruments = instruments
        self.before_acquire = _overriding(instruments, "before_acquire")
        self.waiting = _overriding(instruments, "waiting")
        self.done_waiting = _overriding(instruments, "done_waiting")
        self.acquired = _overriding(instruments, "acquired")
        self.gave_up = _overriding(instruments, "gave_up")
        self.released = _overriding(instruments, "released")


#: Nobody watching.
NO_HOOKS = LockHooks()


class Reporter:
    """Where the checker and the watchdog send what they found, besides the
    log: the trace's `event` (reactor/tracing/hooks.py). This one drops it."""

    def event(self, ev: str, **fields: Any) -> None:
        """Record event `ev` with `fields` (here: nowhere)."""


#: Reports go to the log only.
SILENT = Reporter()
