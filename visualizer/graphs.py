"""Lock graphs as networkx graphs: what the drawings of
visualizer/graphdraw.py show, open to questions without drawing.

Owns: the lock-order graph (lock classes; edge A -> B when a thread took
B while holding A), the wait-for graph at one instant (threads and locks,
and why a lock waited for has no holder), the instant worth showing, and
the cycles of both. Must not: read files (visualizer/load.py does),
compute lockstat numbers (visualizer/stats.py does), or import matplotlib
(visualizer/graphdraw.py draws these graphs).

Design: a graph carries what its drawing needs as node and edge
attributes, so tests and notebooks can question it without drawing.
Cycles come in a fixed order (each rotated to start at its first node,
shortest cycles first), so one trace always gives the same answer and the
same picture.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, TypeVar

import networkx as nx

from visualizer.load import LockSpan, Trace
from visualizer.stats import order_edges

_N = TypeVar("_N", bound=Hashable)  # a node of a graph

# -- the lock-order graph ---------------------------------------------------


def lock_order_graph(trace: Trace) -> nx.DiGraph:
    """The lock-order graph of `trace`: one node per lock class, an edge
    A -> B when a thread acquired B while holding A (stats.order_edges).

    Edge attributes: `count` (= `weight`, times seen in the trace), `cmds`
    (commands that made it, most frequent first), `reported` ((thread, cmd)
    pairs from the server's own order_violation reports) and `cycle` (True
    on an edge of a cycle). The server's "circular" reports in
    `trace.others` are merged in, so a cycle it found shows even when the
    trace was sampled (an edge seen only there has count 0). Graph
    attributes: `cycles` (order_cycles) and `violations` (reported cycles,
    first = last, as the server wrote them).
    """
    g = nx.DiGraph(violations=[])
    g.add_nodes_from(sorted({s.cls for s in trace.locks}))
    for e in order_edges(trace):
        g.add_edge(e.before, e.after, count=e.count, weight=e.count, cmds=e.cmds, reported=())
    for report in trace.others:
        if report.get("ev") == "order_violation" and report.get("kind") == "circular":
            _merge_report(g, report)
    _mark_cycles(g, order_cycles(g))
    return g


def _merge_report(g: nx.DiGraph, report: dict[str, Any]) -> None:
    cycle = [str(c) for c in report.get("cycle") or ()]
    if len(cycle) < 2:
        return
    if cycle[0] != cycle[-1]:
        cycle.append(cycle[0])
    first = {
        (e.get("from"), e.get("to")): e for e in report.get("edges") or () if isinstance(e, dict)
    }
    for a, b in pairwise(cycle):
        if a == b:  # two locks of one class: never an edge
            continue
        if not g.has_edge(a, b):
            g.add_edge(a, b, count=0, weight=0, cmds=(), reported=())
        attrs = g[a][b]
        who = first.get((a, b), {})
        cmd = who.get("cmd")
        if cmd is not None and str(cmd) not in attrs["cmds"]:
            attrs["cmds"] = (*attrs["cmds"], str(cmd))
        attrs["reported"] = (*attrs["reported"], (who.get("thread"), cmd))
    g.graph["violations"].append(cycle)


def order_cycles(graph: nx.DiGraph) -> list[list[str]]:
    """The simple cycles of a lock-order graph, each listed once (without
    repeating its first node), rotated to start at its smallest class name,
    shortest first, then alphabetically."""
    cycles = [_rotate(c, str) for c in nx.simple_cycles(graph)]
    return sorted(cycles, key=lambda c: (len(c), c))


def _rotate(cycle: list[_N], key: Callable[[_N], Any]) -> list[_N]:
    i = min(range(len(cycle)), key=lambda k: key(cycle[k]))
    return cycle[i:] + cycle[:i]


def _mark_cycles(g: nx.DiGraph, cycles: Sequence[Sequence[Hashable]]) -> None:
    on_cycle = {edge for c in cycles for edge in pairwise([*c, c[0]])}
    for a, b, attrs in g.edges(data=True):
        attrs["cycle"] = (a, b) in on_cycle
    g.graph["cycles"] = cycles


# -- the wait-for graph -----------------------------------------------------


def wait_for_graph(trace: Trace, at: int) -> nx.DiGraph:
    """Who holds and who waits for which lock at instant `at` (ns).

    Nodes: the threads and locks involved at `at` (attribute `kind`:
    "thread" or "lock"; threads in thread order, then locks by name, so
    thread and lock names must differ, as the server's do). Edges
    (attribute `kind`, plus `since` ns, `task`, `cmd`, `cycle`):
    - lock -> thread, "holds": acquired <= at < released (released None:
      still held at the end of the trace);
    - thread -> lock, "waits": wait <= at < acquired, or, for a wait
      without acquisition, from `wait` on. A thread blocked in a wait
      records nothing else, so such a wait ends, at the latest, at the
      thread's next lock_wait or the end of its task (a timed-out wait,
      whose lock_timeout the loaded trace does not keep); with neither, it
      never ends (a real deadlock, or a trace cut mid-wait).
    Graph attributes: `at`, `cycles` (deadlock_cycles), `unheld` (a
    `NoHolder` per lock waited for that no thread holds, by lock name:
    free at `at`, or its holder missing from a sampled or lossy trace).
    """
    later_waits = _waits_by_thread(trace)
    holds: list[LockSpan] = []
    waits: list[LockSpan] = []
    released: dict[str, LockSpan] = {}  # per lock, the last release at or before `at`
    for s in trace.locks:  # sorted by wait
        if s.wait > at:
            break
        if s.acquired is not None and s.acquired <= at:
            if s.released is None or at < s.released:
                holds.append(s)
            elif s.lock not in released or s.released > (released[s.lock].released or 0):
                released[s.lock] = s
        elif s.acquired is not None or at < _wait_bound(trace, s, later_waits[s.thread]):
            waits.append(s)
    g = nx.DiGraph(at=at)
    held = {s.lock for s in holds}
    g.graph["unheld"] = [
        _no_holder(trace, at, lock, released.get(lock))
        for lock in sorted({s.lock for s in waits} - held)
    ]
    threads = {s.thread for s in holds + waits}
    g.add_nodes_from((t for t in trace.thread_order() if t in threads), kind="thread")
    g.add_nodes_from(sorted({s.lock for s in holds + waits}), kind="lock")
    for kind, spans in (("holds", holds), ("waits", waits)):
        for s in spans:
            run = trace.tasks.get(s.task)
            edge = (s.lock, s.thread) if kind == "holds" else (s.thread, s.lock)
            since = s.acquired if kind == "holds" else s.wait
            g.add_edge(*edge, kind=kind, since=since, task=s.task, cmd=run.cmd if run else None)
    _mark_cycles(g, deadlock_cycles(g))
    return g


class Unheld(enum.Enum):
    """Why a lock that threads wait for has no holder at an instant."""

    FREE = "free"  # a whole trace: released, not yet taken again (a hand-over)
    NOT_SAMPLED = "not sampled"  # --trace-sample: the holder's task may not be in the trace
    DROPPED = "events dropped"  # the holder's events may be among those dropped


@dataclass(frozen=True)
class NoHolder:
    """A lock waited for, and held by no thread the trace shows, at an instant."""

    lock: str
    why: Unheld
    released: tuple[str, int] | None = None  # (thread, ts): the last release before (FREE)
    taken: tuple[str, int] | None = None  # (thread, ts): the next acquisition after (FREE)


def _no_holder(trace: Trace, at: int, lock: str, last: LockSpan | None) -> NoHolder:
    if trace.header.sample < 1.0:
        return NoHolder(lock, Unheld.NOT_SAMPLED)
    if any(e.get("ev") == "dropped" for e in trace.others):
        return NoHolder(lock, Unheld.DROPPED)
    taken: tuple[str, int] | None = None  # (thread, acquired) of the next acquisition
    for s in trace.locks:  # sorted by wait, and acquired >= wait: stop past the best
        if taken is not None and s.wait >= taken[1]:
            break
        acquired = s.acquired
        if s.lock == lock and acquired is not None and at < acquired:
            taken = (s.thread, acquired) if taken is None or acquired < taken[1] else taken
    last_release = None if last is None or last.released is None else (last.thread, last.released)
    return NoHolder(lock, Unheld.FREE, last_release, taken)


def busiest_instant(trace: Trace) -> int:
    """The instant whose wait-for graph is worth a look: a reported
    deadlock; else the one with the most threads waiting for locks while
    every lock waited for has a holder in the trace (exact sweep; the
    earliest of equals); else the one with the most waiting at all (a
    sampled trace may never show the holder); else the trace's middle."""
    for e in trace.others:
        if e.get("ev") == "deadlock":
            return int(e["ts"])
    later_waits = _waits_by_thread(trace)
    changes: list[tuple[int, int, str, int]] = []  # (ts, 0 hold / 1 wait, lock, +1 / -1)
    for s in trace.locks:
        if s.acquired is None:
            stop = _wait_bound(trace, s, later_waits[s.thread])
            end = math.inf if stop == math.inf else int(stop)
        else:
            end = s.acquired
        if end > s.wait:
            changes.append((s.wait, 1, s.lock, 1))
            if end != math.inf:
                changes.append((int(end), 1, s.lock, -1))
        if s.acquired is not None and (s.released is None or s.released > s.acquired):
            changes.append((s.acquired, 0, s.lock, 1))
            if s.released is not None:
                changes.append((s.released, 0, s.lock, -1))
    changes.sort()
    counts: dict[tuple[int, str], int] = defaultdict(int)  # (kind, lock) -> spans now
    waiting = orphans = 0  # threads waiting; locks waited for with no holder
    best_known = best_any = (0, trace.end // 2)  # (waiting, at)
    for i, (ts, kind, lock, delta) in enumerate(changes):
        before = counts[1, lock] > 0 and counts[0, lock] == 0
        counts[kind, lock] += delta
        waiting += delta if kind == 1 else 0
        orphans += (counts[1, lock] > 0 and counts[0, lock] == 0) - before
        if i + 1 < len(changes) and changes[i + 1][0] == ts:
            continue  # the state at ts is the one after all of ts's changes
        if waiting > best_any[0]:
            best_any = (waiting, ts)
        if orphans == 0 and waiting > best_known[0]:
            best_known = (waiting, ts)
    return best_known[1] if best_known[0] else best_any[1]


def _waits_by_thread(trace: Trace) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for s in trace.locks:
        out[s.thread].append(s.wait)  # in order: trace.locks is sorted by wait
    return out


def _wait_bound(trace: Trace, s: LockSpan, waits: list[int]) -> float:
    """When a wait that never got its lock ended, at the latest."""
    bound: float = math.inf
    i = bisect.bisect_right(waits, s.wait)
    if i < len(waits):
        bound = waits[i]
    run = trace.tasks.get(s.task)
    if run is not None and run.thread == s.thread and run.end is not None and run.end >= s.wait:
        bound = min(bound, run.end)
    return bound


def deadlock_cycles(graph: nx.DiGraph) -> list[list[str]]:
    """The cycles of a wait-for graph: each a deadlock, thread -> lock ->
    thread -> lock ... (without repeating its first node). Each starts at
    its first thread in node order; shortest first, then by node order."""
    order = {n: i for i, n in enumerate(graph.nodes)}

    def first(n: Hashable) -> tuple[bool, int]:
        return (graph.nodes[n].get("kind") != "thread", order[n])

    cycles = [_rotate(c, first) for c in nx.simple_cycles(graph)]
    return sorted(cycles, key=lambda c: (len(c), [order[n] for n in c]))
