"""Lock debugging: a lockdep-style order checker and a deadlock watchdog.

Owns: the lock-class dependency graph, each thread's stack of held locks,
the table of threads waiting for a lock, and the watchdog thread. Both are
lock hooks (reactor/sync/locks.py `Hooks`).
Must not: change what locks do: they only watch, log and trace.

Order checker (`--lockdep`, on whenever tracing is): when a thread asks for
a lock of class L while holding one of class H, the edge H -> L is recorded
with the thread and command that first made it. If L already reaches H, the
two code paths take the classes in opposite orders: a *possible circular
locking dependency*, reported once per cycle with every edge's origin,
before any deadlock happens. Asking for a lock the thread already holds is
reported as *possible recursive locking*. Locks of one class taken together
(`group:a` then `group:b`) make no edge (Linux lockdep needs nesting
annotations for that; here the strategy orders them by name).

Watchdog (`--watchdog S`): a thread that looks every S/4 seconds for lock
waits older than S; it logs the wait-for graph (thread -> lock -> holder ->
lock it waits for ...), names the cycle if there is one, and traces a
`deadlock` event, once per stuck wait. It never touches the locks.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, TypeAlias

from reactor.sync import tasks
from reactor.sync.instrument import SILENT, LockInstrument, Reporter, Watched

#: One thread's lock wait: the lock, when the wait began (ns), the
#: thread's name and the command it runs.
_Wait: TypeAlias = tuple[Watched, int, str, str | None]

log = logging.getLogger("reactor.sync.lockdep")


@dataclass(frozen=True)
class Edge:
    """Lock class `after` was taken while holding `before`, first by `thread`
    running command `cmd`."""

    before: str
    after: str
    thread: str
    cmd: str | None


def _who() -> tuple[str, str | None]:
    task = tasks.current()
    return threading.current_thread().name, task.cmd if task else None


class _Held:
    """The locks one thread holds, and their classes as a tuple (a dict key)."""

    __slots__ = ("classes", "locks")

    def __init__(self) -> None:
        self.locks: list[Watched] = []
        self.classes: tuple[str, ...] = ()


class OrderChecker(LockInstrument):
    """Records lock-class order edges and reports cycles and recursion."""

    def __init__(self, tracer: Reporter = SILENT) -> None:
        self._tracer = tracer
        self._local = threading.local()
        # Guards _edges, _graph and _reported. A plain lock, not a NamedLock:
        # it must not be observed by the checker it belongs to. Taken only
        # when a thread makes an edge not seen before, so rarely.
        self._mutex = threading.Lock()
        self._edges: dict[tuple[str, str], Edge] = {}
        self._graph: dict[str, set[str]] = {}
        self._reported: set[frozenset[tuple[str, str]]] = set()
        # (classes held, class taken) pairs already checked: the fast path.
        # set.add and `in` are atomic; a race only repeats a check.
        self._known: set[tuple[tuple[str, ...], str]] = set()
        self.reports: list[dict[str, Any]] = []  # every report made, for /stats and tests

    def _state(self) -> _Held:
        try:
            held: _Held = self._local.held
        except AttributeError:
            held = self._local.held = _Held()
        return held

    def before_acquire(self, lock: Watched) -> None:
        """Before `lock` is taken: record new order edges, report cycles."""
        held = self._state()
        classes = held.classes
        if not classes:
            return
        if lock.cls in classes and any(h is lock for h in held.locks):
            self._report_recursion(lock)
        key = (classes, lock.cls)
        if key in self._known:  # this exact nesting was checked before
            return
        for before in set(classes):
            if before != lock.cls and (before, lock.cls) not in self._edges:
                self._add_edge(before, lock.cls)
        self._known.add(key)

    def acquired(self, lock: Watched, t0: int, t1: int) -> None:
        """`lock` was had: push it on the thread's stack of held locks."""
        held = self._state()
        held.locks.append(lock)
        held.classes = (*held.classes, lock.cls)

    def released(self, lock: Watched, t: int) -> None:
        """`lock` was released: take it off the thread's stack (wherever it is)."""
        held = self._state()
        locks = held.locks
        if locks and locks[-1] is lock:  # the usual, last-in-first-out case
            locks.pop()
            held.classes = held.classes[:-1]
            return
        for i in range(len(locks) - 1, -1, -1):
            if locks[i] is lock:
                del locks[i]
                held.classes = tuple(h.cls for h in locks)
                return

    def edges(self) -> list[Edge]:
        """Every order edge recorded so far, with who made it first."""
        with self._mutex:
            return list(self._edges.values())

    def _add_edge(self, before: str, after: str) -> None:
        thread, cmd = _who()
        with self._mutex:
            if (before, after) in self._edges:
                return
            back = self._path(after, before)
            self._edges[before, after] = Edge(before, after, thread, cmd)
            self._graph.setdefault(before, set()).add(after)
            if back is None:
                return
            cycle = [before, *back]  # before -> after -> ... -> before
            key = frozenset(pairwise(cycle))
            if key in self._reported:
                return
            self._reported.add(key)
            edges = [self._edges[a, b] for a, b in pairwise(cycle)]
        self._report_cycle(cycle, edges)

    def _path(self, start: str, goal: str) -> list[str] | None:
        """Classes from `start` to `goal` along recorded edges (BFS), or None."""
        previous: dict[str, str | None] = {start: None}
        frontier = [start]
        while frontier:
            nxt = []
            for node in frontier:
                if node == goal:
                    path = []
                    step: str | None = node
                    while step is not None:
                        path.append(step)
                        step = previous[step]
                    return path[::-1]
                for succ in self._graph.get(node, ()):
                    if succ not in previous:
                        previous[succ] = node
                        nxt.append(succ)
            frontier = nxt
        return None

    def _report_cycle(self, cycle: list[str], edges: list[Edge]) -> None:
        lines = [f"  {e.before} -> {e.after}: first by {e.thread} running /{e.cmd}" for e in edges]
        log.warning(
            "possible circular locking dependency: %s\n%s", " -> ".join(cycle), "\n".join(lines)
        )
        report = {
            "kind": "circular",
            "cycle": cycle,
            "edges": [
                {"from": e.before, "to": e.after, "thread": e.thread, "cmd": e.cmd} for e in edges
            ],
        }
        self.reports.append(report)
        self._tracer.event("order_violation", **report)

    def _report_recursion(self, lock: Watched) -> None:
        thread, cmd = _who()
        log.warning("possible recursive locking: %s takes %s again (/%s)", thread, lock.name, cmd)
        report = {"kind": "recursive", "lock": lock.name, "cmd": cmd}
        self.reports.append({**report, "thread": thread})
        # the event's own "thread" is the one
        self._tracer.event("order_violation", **report)


#: Long waits the watchdog reports in detail per check; more are counted.
MAX_REPORTS = 5


class Watchdog(LockInstrument):
    """Reports lock waits longer than `threshold` seconds, with the wait-for
    graph and its cycle, if any."""

    def __init__(self, threshold: float, tracer: Reporter = SILENT) -> None:
        self.threshold = threshold
        self._tracer = tracer
        # thread ident -> (lock, wait start ns, thread name, command). Each
        # thread writes only its own entry (dict item ops are atomic), the
        # watchdog thread only reads: no lock.
        self._waits: dict[int, _Wait] = {}
        self._reported: set[tuple[int, int]] = set()
        self.reports: list[dict[str, Any]] = []
        # Notified after each report, for whoever waits for one (tests, demos).
        self.reported = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def start(self) -> None:
        """Start the watchdog thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the watchdog thread and wait for it to end."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def waiting(self, lock: Watched, t0: int) -> None:
        """The calling thread blocks for `lock` since `t0`: list its wait."""
        thread, cmd = _who()
        self._waits[threading.get_ident()] = (lock, t0, thread, cmd)

    def done_waiting(self, lock: Watched) -> None:
        """The calling thread's wait ended: drop it from the list."""
        self._waits.pop(threading.get_ident(), None)

    def _watch(self) -> None:
        while not self._stop.wait(self.threshold / 4):
            self.check(time.monotonic_ns())

    def check(self, now: int) -> None:
        """Report waits older than the threshold not reported yet: at most
        MAX_REPORTS a check, the rest counted in one line. (With a thousand
        threads in a convoy, a report per waiter, each listing every thread,
        took the GIL for seconds and made the convoy worse: measured with
        `--model threaded`.)"""
        waits = dict(self._waits)
        limit = int(self.threshold * 1e9)
        # Forget waits that ended; a new wait of the same thread has a new t0.
        self._reported &= {(tid, w[1]) for tid, w in waits.items()}
        late = [
            tid
            for tid, (_lock, t0, _thread, _cmd) in waits.items()
            if now - t0 > limit and (tid, t0) not in self._reported
        ]
        if not late:
            return
        names = {t.ident: t.name for t in threading.enumerate()}
        for tid in late:
            self._reported.add((tid, waits[tid][1]))
        for tid in late[:MAX_REPORTS]:
            self._report(tid, waits, now, names)
        if len(late) > MAX_REPORTS:
            log.warning(
                "and %d more threads wait longer than %.1fs for a lock",
                len(late) - MAX_REPORTS, self.threshold,
            )  # fmt: skip

    def _report(
        self, tid: int | None, waits: dict[int, _Wait], now: int, names: dict[int | None, str]
    ) -> None:
        chain: list[dict[str, Any]] = []
        seen: list[int] = []
        cycle: list[str] | None = None
        while tid in waits and tid not in seen:
            seen.append(tid)
            lock, t0, thread, cmd = waits[tid]
            holder = lock.owner
            if holder == tid or self._waits.get(tid) != waits[tid]:
                # The snapshot is stale: this thread got the lock after it
                # was taken (a thread never waits for a lock it holds).
                break
            chain.append(
                {
                    "thread": thread,
                    "cmd": cmd,
                    "waits_for": lock.name,
                    "held_by": names.get(holder, str(holder)),
                    "seconds": (now - t0) / 1e9,
                }
            )
            if holder in seen:
                cycle = [names.get(t, str(t)) for t in seen[seen.index(holder) :]]
                break
            tid = holder
        if not chain:
            return  # the wait ended while we looked
        text = "; ".join(
            f"{c['thread']} (/{c['cmd']}) waits {c['seconds']:.1f}s for {c['waits_for']}"
            f" held by {c['held_by']}"
            for c in chain
        )
        if cycle:
            log.error("deadlock: %s; cycle: %s", text, " -> ".join([*cycle, cycle[0]]))
        else:
            log.warning("long lock wait: %s", text)
        report = {"chain": chain, "cycle": cycle}
        self._tracer.event("deadlock" if cycle else "long_wait", **report)
        with self.reported:
            self.reports.append(report)
            self.reported.notify_all()
