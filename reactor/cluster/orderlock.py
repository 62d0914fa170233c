"""The cluster's order lock: a PostgreSQL advisory lock that every node
takes to number and commit its messages, watched like a local lock.

Owns: `OrderLock`, named ``cluster:order`` (class ``cluster``): its lockstat
counters and its reports to the server's lock instruments (trace, lock-order
checker, watchdog), so distributed contention shows in the same pictures as
``storage`` or ``group:os2``. Must not: run SQL itself (the store hands it
the two statements), or be taken outside the store's commit.

What it guards: message ids follow commit order across nodes. A node
takes it inside its commit's transaction (`pg_advisory_xact_lock`), asks
the sequence for its ids, inserts its messages and commits; PostgreSQL lets
the lock go only once the commit is visible. So when id N is visible, every
smaller id is committed or rolled back for good, which is what a node's
delivery watermark needs (reactor/cluster/feed.py). It is the one lock
held across nodes; its holder waits for nothing else, so it closes no cycle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from time import monotonic_ns

from reactor.stats import LockStats
from reactor.sync.instrument import LockHooks

NAME = "cluster:order"


class OrderLock:
    """A lock held in the database, for the commit of one transaction."""

    def __init__(self, hooks: LockHooks) -> None:
        self.name = NAME
        self.cls = NAME.partition(":")[0]
        self._hooks = hooks
        self._owner: int | None = None
        self._since = 0
        # Counters: written by the committing thread only, which holds the
        # ``storage`` lock key while it holds this one.
        self.acquisitions = self.contended = 0
        self.wait_total = self.wait_max = self.hold_total = self.hold_max = 0

    @property
    def owner(self) -> int | None:
        """The thread of this node that holds it, or None (another node may)."""
        return self._owner

    def acquire(self, try_take: Callable[[], bool], take: Callable[[], None]) -> None:
        """Take it: `try_take()` asks without waiting (True: had), `take()`
        waits for it. Raises what they raise (the database failed)."""
        hooks = self._hooks
        for before in hooks.before_acquire:
            before(self)
        t0 = t1 = monotonic_ns()
        contended = not try_take()
        if contended:
            for waiting in hooks.waiting:
                waiting(self, t0)
            try:
                take()
            finally:
                for done in hooks.done_waiting:
                    done(self)
            t1 = monotonic_ns()
            self.contended += 1
            self.wait_total += t1 - t0
            self.wait_max = max(self.wait_max, t1 - t0)
        self._owner = threading.get_ident()
        self._since = t1
        self.acquisitions += 1
        for acquired in hooks.acquired:
            acquired(self, t0, t1)

    def released(self) -> None:
        """The transaction ended (committed or rolled back): the database let go."""
        t = monotonic_ns()
        held = t - self._since
        self.hold_total += held
        self.hold_max = max(self.hold_max, held)
        self._owner = None
        for released in self._hooks.released:
            released(self, t)

    def statistics(self) -> LockStats:
        """A snapshot of the counters (read without a lock: may be a pass behind)."""
        return LockStats(
            self.name, self.cls, self.acquisitions, self.contended,
            self.wait_total, self.wait_max, self.hold_total, self.hold_max,
        )  # fmt: skip
