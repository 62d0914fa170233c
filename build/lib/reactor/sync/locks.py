"""Named locks and the locking strategies (`--locking global|fine`).

Owns: the project's lock type `NamedLock`, the lock keys that command code
declares, the strategies that map keys to locks, and `Locking`, the
interface they share.
Must not: know what the locks guard beyond the table below, or do I/O.

Command code never names a `threading.Lock`; it says which shared structures
it touches, `with locks.hold(GROUPS, group_key(g), STORAGE):`, and the
strategy decides what that means:

=============  =======================================================  =====
key            guards                                                   order
=============  =======================================================  =====
``delivery``   the commit point: which writes are committed, and the      0
               hand-off of committed messages to the reactor in id
               order (so every member sees a group in one order), and a
               login's replay snapshot (so no message is lost or doubled
               between replay and live delivery)
``groups``     the shared name space of users and groups: creating or     1
               deleting either
``group:<g>``  one group's membership and its message order (lower-case   2
               name; several are taken in name order)
``sessions``   who is logged in on which connection                       3
``storage``    the SQLite connection and its open transaction             4
=============  =======================================================  =====

`global` maps every key to one lock named ``global``: the course project's
single lock around all shared state. A nested `hold` by a thread that already
has it is free, so the same command code runs under both strategies.
`fine` gives every key its own lock and takes them in the order above; taking
a key that does not come after every key the thread holds raises `LockMisuse`
at once, so an order bug fails every time, not once in a blue moon.
`inverted` is a teaching strategy with a deliberate order bug (see
`InvertedLocking`) for the lock-order checker and the deadlock watchdog.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from time import monotonic_ns
from typing import Any, Generic, Protocol, TypeVar

from reactor.errors import LockMisuse, LockTimeout
from reactor.kinds import Strategy
from reactor.stats import LockStats
from reactor.sync import tasks
from reactor.sync.instrument import NO_HOOKS, LockHooks

DELIVERY = "delivery"
GROUPS = "groups"
SESSIONS = "sessions"
STORAGE = "storage"

_RANK = {DELIVERY: 0, GROUPS: 1, "group": 2, SESSIONS: 3, STORAGE: 4}


def group_key(name: str) -> str:
    """The lock key of group `name` (names are case-insensitive)."""
    return "group:" + name.lower()


def _order(key: str) -> tuple[int, str]:
    return (_RANK[key.partition(":")[0]], key)


class NamedLock:
    """A `threading.Lock` with a name, a class (the part of the name before
    `:`, as lockdep groups lock classes), an owner check, and lockstat
    counters. Counters are updated by the holder while it holds the lock, so
    the lock itself guards them. `hooks` are told of every acquisition."""

    __slots__ = (
        "_hooks",
        "_lock",
        "_owner",
        "_since",
        "acquisitions",
        "cls",
        "contended",
        "hold_max",
        "hold_total",
        "name",
        "wait_max",
        "wait_total",
    )  # fmt: skip

    def __init__(self, name: str, hooks: LockHooks = NO_HOOKS) -> None:
        self.name = name
        self.cls = name.partition(":")[0]
        self._hooks = hooks
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._since = 0
        self.acquisitions = self.contended = 0
        self.wait_total = self.wait_max = self.hold_total = self.hold_max = 0

    def acquire(self, timeout: float = -1) -> bool:
        """Take the lock, waiting at most `timeout` seconds (-1: forever)."""
        hooks = self._hooks
        for before in hooks.before_acquire:  # before blocking: warn before any deadlock
            before(self)
        t0 = t1 = monotonic_ns()  # a free lock: acquired the moment it is asked for
        contended = not self._lock.acquire(False)
        if contended:
            for waiting in hooks.waiting:
                waiting(self, t0)
            got = self._lock.acquire(True, timeout)
            for done in hooks.done_waiting:
                done(self)
            t1 = monotonic_ns()
            if not got:
                for gave_up in hooks.gave_up:
                    gave_up(self, t0, t1)
                return False
        self._owner = threading.get_ident()
        self._since = t1
        self.acquisitions += 1
        if contended:
            self.contended += 1
            self.wait_total += t1 - t0
            self.wait_max = max(self.wait_max, t1 - t0)
        for acquired in hooks.acquired:
            acquired(self, t0, t1)
        return True

    def release(self) -> None:
        """Release the lock; only its holder may."""
        if self._owner != threading.get_ident():
            raise LockMisuse(f"can't release lock {self.name!r}: this thread does not hold it")
        t = monotonic_ns()
        held = t - self._since
        self.hold_total += held
        self.hold_max = max(self.hold_max, held)
        self._owner = None
        self._lock.release()
        for released in self._hooks.released:
            released(self, t)

    @property
    def owner(self) -> int | None:
        """Thread ident of the holder, or None."""
        return self._owner

    def held_by_me(self) -> bool:
        """True if the calling thread holds this lock."""
        return self._owner == threading.get_ident()

    def locked(self) -> bool:
        """True if some thread holds this lock (a snapshot: it may change at once)."""
        return self._lock.locked()

    def statistics(self) -> LockStats:
        """A snapshot of the counters (read without the lock: may be a pass behind)."""
        return LockStats(
            self.name, self.cls, self.acquisitions, self.contended,
            self.wait_total, self.wait_max, self.hold_total, self.hold_max,
        )  # fmt: skip

    def __enter__(self) -> NamedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<NamedLock {self.name} {'locked' if self.locked() else 'free'}>"


#: What a thread's stack records per lock it holds through `hold()`: the
#: lock's name (`global`) or its place in the lock order (`fine`).
_Mark = TypeVar("_Mark")


class _Hold(Generic[_Mark]):
    """Context manager for one `hold()`: acquires in order, releases in reverse.
    With a timeout, a lock not had in time releases the others and raises."""

    __slots__ = ("_locks", "_marks", "_stack", "_timeout")

    def __init__(
        self,
        locks: list[NamedLock],
        stack: list[_Mark],
        marks: list[_Mark],
        timeout: float = -1,
    ) -> None:
        self._locks = locks
        self._stack = stack
        self._marks = marks
        self._timeout = timeout

    def __enter__(self) -> None:
        for i, lock in enumerate(self._locks):
            if not lock.acquire(self._timeout):
                for taken in reversed(self._locks[:i]):
                    taken.release()
                raise LockTimeout(f"gave up waiting for lock {lock.name!r}")
        self._stack.extend(self._marks)

    def __exit__(self, *exc: object) -> None:
        del self._stack[len(self._stack) - len(self._marks) :]
        for lock in reversed(self._locks):
            lock.release()


def _thread_stack(tls: threading.local) -> list[Any]:
    """The calling thread's stack of held lock marks (made on first use);
    its strategy's `_stack` says what the marks are."""
    try:
        stack: list[Any] = tls.stack
    except AttributeError:
        stack = tls.stack = []
    return stack


class GlobalLocking:
    """Every key is the one lock ``global`` (the classic course design)."""

    name = Strategy.GLOBAL

    def __init__(self, hooks: LockHooks = NO_HOOKS) -> None:
        self.lock = NamedLock("global", hooks)
        self._tls = threading.local()

    def hold(self, *keys: str) -> _Hold[str]:
        """Hold the global lock, unless this thread already does."""
        stack = self._stack()
        return _Hold([] if stack else [self.lock], stack, [self.lock.name])

    def locks(self) -> list[NamedLock]:
        """Every lock of this strategy: the one ``global``."""
        return [self.lock]

    def _stack(self) -> list[str]:
        return _thread_stack(self._tls)


class FineLocking:
    """One lock per key, always taken in the documented order."""

    name: Strategy = Strategy.FINE

    def __init__(self, hooks: LockHooks = NO_HOOKS) -> None:
        self._hooks = hooks
        self._table = {k: NamedLock(k, hooks) for k in (DELIVERY, GROUPS, SESSIONS, STORAGE)}
        self._tls = threading.local()

    def lock(self, key: str) -> NamedLock:
        """The lock of `key`, created on first use for group keys."""
        lock = self._table.get(key)
        if lock is None:
            # dict.setdefault is atomic: two threads asking for a new group's
            # lock at once both get the same one. Group locks are kept for the
            # server's life (one small object per group name ever used).
            lock = self._table.setdefault(key, NamedLock(key, self._hooks))
        return lock

    def hold(self, *keys: str) -> _Hold[tuple[int, str]]:
        """Hold the locks of `keys` (any order given; taken in lock order)."""
        order = sorted(set(keys), key=_order)
        stack = self._stack()
        if stack and order and _order(order[0]) <= stack[-1]:
            raise LockMisuse(
                f"lock order: can't take {order[0]!r} while holding {stack[-1][1]!r}"
                " (see the table in reactor/sync/locks.py)"
            )
        return _Hold([self.lock(k) for k in order], stack, [_order(k) for k in order])

    def locks(self) -> list[NamedLock]:
        """Every lock made so far: one per fixed key and per group key used."""
        return list(self._table.values())

    def _stack(self) -> list[tuple[int, str]]:
        return _thread_stack(self._tls)


class InvertedLocking(FineLocking):
    """A teaching strategy: `fine`, except that `/users` takes ``storage``
    before ``sessions`` while `/login` takes them in the documented order,
    sessions first. The lock-order checker reports the inversion the first
    time both have run; under load the two can truly deadlock. So that the
    server recovers, every wait gives up after `timeout` seconds and the
    command fails with `internal`."""

    name = Strategy.INVERTED
    INVERTED = frozenset({"users"})

    def __init__(self, hooks: LockHooks = NO_HOOKS, timeout: float = 4.0) -> None:
        super().__init__(hooks)
        self.timeout = timeout

    def hold(self, *keys: str) -> _Hold[tuple[int, str]]:
        """Hold the locks of `keys` in lock order, or in reverse for the
        commands in `INVERTED`; raises `LockTimeout` if a wait gives up."""
        task = tasks.current()
        order = sorted(set(keys), key=_order)
        if task is not None and task.cmd in self.INVERTED:
            order.reverse()  # the bug on purpose: no order check here
        return _Hold([self.lock(k) for k in order], self._stack(), [], self.timeout)


class Locking(Protocol):
    """A locking strategy as command code sees it: `GlobalLocking`,
    `FineLocking` and `InvertedLocking` are the ones there are."""

    @property
    def name(self) -> Strategy:
        """The strategy's `--locking` name."""

    def hold(self, *keys: str) -> AbstractContextManager[None, None]:
        """A context manager that holds what `keys` (the lock keys above)
        map to; raises `LockMisuse` for a key taken against the lock order."""

    def locks(self) -> list[NamedLock]:
        """Every lock of the strategy so far, for statistics."""


STRATEGIES: dict[Strategy, Callable[[LockHooks], Locking]] = {
    Strategy.GLOBAL: GlobalLocking, Strategy.FINE: FineLocking, Strategy.INVERTED: InvertedLocking,
}  # fmt: skip


def make_locking(name: str, hooks: LockHooks = NO_HOOKS, timeout: float | None = None) -> Locking:
    """A fresh strategy by its `--locking` name, its locks watched by
    `hooks`; `timeout` is the `inverted` strategy's give-up time."""
    try:
        cls = STRATEGIES[Strategy(name)]
    except ValueError:
        raise ValueError(f"unknown locking strategy {name!r}") from None
    if cls is InvertedLocking and timeout is not None:
        return InvertedLocking(hooks, timeout)
    return cls(hooks)
