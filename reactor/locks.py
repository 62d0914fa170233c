"""Named locks and the locking strategies (`--locking global|fine`).

Owns: the project's lock type `NamedLock`, the lock keys that command code
declares, and the two strategies that map keys to locks.
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
"""

from __future__ import annotations

import threading

from reactor.errors import LockMisuse

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
    """A `threading.Lock` with a name and a class (the part of the name
    before `:`, as lockdep groups lock classes), and an owner check."""

    __slots__ = ("name", "cls", "_lock", "_owner")

    def __init__(self, name: str) -> None:
        self.name = name
        self.cls = name.partition(":")[0]
        self._lock = threading.Lock()
        self._owner: int | None = None

    def acquire(self) -> None:
        self._lock.acquire()
        self._owner = threading.get_ident()

    def release(self) -> None:
        if self._owner != threading.get_ident():
            raise LockMisuse(f"can't release lock {self.name!r}: this thread does not hold it")
        self._owner = None
        self._lock.release()

    def held_by_me(self) -> bool:
        """True if the calling thread holds this lock."""
        return self._owner == threading.get_ident()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> NamedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<NamedLock {self.name} {'locked' if self.locked() else 'free'}>"


class _Hold:
    """Context manager for one `hold()`: acquires in order, releases in reverse."""

    __slots__ = ("_locks", "_stack", "_marks")

    def __init__(self, locks: list[NamedLock], stack: list, marks: list) -> None:
        self._locks = locks
        self._stack = stack
        self._marks = marks

    def __enter__(self) -> None:
        for lock in self._locks:
            lock.acquire()
        self._stack.extend(self._marks)

    def __exit__(self, *exc: object) -> None:
        del self._stack[len(self._stack) - len(self._marks) :]
        for lock in reversed(self._locks):
            lock.release()


class GlobalLocking:
    """Every key is the one lock ``global`` (the classic course design)."""

    name = "global"

    def __init__(self) -> None:
        self.lock = NamedLock("global")
        self._tls = threading.local()

    def hold(self, *keys: str) -> _Hold:
        """Hold the global lock, unless this thread already does."""
        stack = self._stack()
        return _Hold([] if stack else [self.lock], stack, [self.lock.name])

    def locks(self) -> list[NamedLock]:
        return [self.lock]

    def _stack(self) -> list:
        try:
            return self._tls.stack
        except AttributeError:
            self._tls.stack = []
            return self._tls.stack


class FineLocking:
    """One lock per key, always taken in the documented order."""

    name = "fine"

    def __init__(self) -> None:
        self._table = {k: NamedLock(k) for k in (DELIVERY, GROUPS, SESSIONS, STORAGE)}
        self._tls = threading.local()

    def lock(self, key: str) -> NamedLock:
        """The lock of `key`, created on first use for group keys."""
        lock = self._table.get(key)
        if lock is None:
            # dict.setdefault is atomic: two threads asking for a new group's
            # lock at once both get the same one. Group locks are kept for the
            # server's life (one small object per group name ever used).
            lock = self._table.setdefault(key, NamedLock(key))
        return lock

    def hold(self, *keys: str) -> _Hold:
        """Hold the locks of `keys` (any order given; taken in lock order)."""
        order = sorted(set(keys), key=_order)
        stack = self._stack()
        if stack and order and _order(order[0]) <= stack[-1]:
            raise LockMisuse(
                f"lock order: can't take {order[0]!r} while holding {stack[-1][1]!r}"
                " (see the table in reactor/locks.py)"
            )
        return _Hold([self.lock(k) for k in order], stack, [_order(k) for k in order])

    def locks(self) -> list[NamedLock]:
        return list(self._table.values())

    def _stack(self) -> list:
        try:
            return self._tls.stack
        except AttributeError:
            self._tls.stack = []
            return self._tls.stack


Locking = GlobalLocking | FineLocking

STRATEGIES = {"global": GlobalLocking, "fine": FineLocking}


def make_locking(name: str) -> Locking:
    """A fresh strategy by its `--locking` name."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise ValueError(f"unknown locking strategy {name!r}") from None
