"""The numbers behind the pictures: lockstat, tasks, threads, lock order,
blame, activity over time. All times in ns.

Owns: computations over a loaded `Trace`. Must not: read files or plot.
Percentiles use the nearest-rank method (the smallest value with at least
q% of the values at or below it), so hand-computed answers are exact.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from visualizer.load import LockSpan, TaskRun, Trace


def percentile(values: list[int], q: float) -> int:
    """Nearest-rank percentile of `values` (0 for none)."""
    if not values:
        return 0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class LockRow:
    """lockstat of one lock, or of a class (`is_class`)."""

    name: str
    is_class: bool
    acquisitions: int
    contended: int
    wait_total: int
    wait_max: int
    wait_p50: int
    wait_p99: int
    hold_total: int
    hold_max: int
    timeouts: int = 0

    @property
    def contended_pct(self) -> float:
        """The share of acquisitions that had to wait, in percent."""
        return 100.0 * self.contended / self.acquisitions if self.acquisitions else 0.0


def _row(name: str, is_class: bool, spans: list[LockSpan]) -> LockRow:
    waits = [w for s in spans if (w := s.waited) is not None]
    holds = [h for s in spans if (h := s.held) is not None]
    return LockRow(
        name, is_class, len(waits), sum(1 for w in waits if w != 0),
        sum(waits), max(waits, default=0), percentile(waits, 50), percentile(waits, 99),
        sum(holds), max(holds, default=0), len(spans) - len(waits),
    )  # fmt: skip


def lockstat(trace: Trace) -> list[LockRow]:
    """One row per class, then one per lock, each sorted by name."""
    by_lock: dict[str, list[LockSpan]] = defaultdict(list)
    by_cls: dict[str, list[LockSpan]] = defaultdict(list)
    for s in trace.locks:
        by_lock[s.lock].append(s)
        by_cls[s.cls].append(s)
    return [_row(c, True, by_cls[c]) for c in sorted(by_cls)] + [
        _row(n, False, by_lock[n]) for n in sorted(by_lock)
    ]


LOCKSTAT_COLUMNS = (
    "name", "kind", "acquisitions", "contended", "contended_pct", "wait_total_us",
    "wait_max_us", "wait_p50_us", "wait_p99_us", "hold_total_us", "hold_max_us", "timeouts",
)  # fmt: skip


def lockstat_records(rows: list[LockRow]) -> list[tuple[str | int | float, ...]]:
    """Rows as tuples of LOCKSTAT_COLUMNS (µs, rounded to 0.1)."""

    def us(ns: int) -> float:
        return round(ns / 1000, 1)

    return [
        (
            r.name,
            "class" if r.is_class else "lock",
            r.acquisitions,
            r.contended,
            round(r.contended_pct, 1),
            us(r.wait_total),
            us(r.wait_max),
            us(r.wait_p50),
            us(r.wait_p99),
            us(r.hold_total),
            us(r.hold_max),
            r.timeouts,
        )
        for r in rows
    ]


def lockstat_text(rows: list[LockRow]) -> str:
    """An aligned table, like /proc/lock_stat."""
    table = [LOCKSTAT_COLUMNS] + [tuple(map(str, r)) for r in lockstat_records(rows)]
    return aligned(table, left=2)


def aligned(table: Sequence[Sequence[str]], left: int) -> str:
    """Rows of strings as text columns: the first `left` columns flush left,
    the others (numbers) flush right."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    )


@dataclass(frozen=True)
class ThreadTime:
    """How one thread spent its life, in ns.
    Invariant: busy + waiting + idle == lifetime."""

    name: str
    lifetime: int
    busy: int  # working: in tasks, or a loop outside select; not waiting for a lock
    waiting: int  # waiting for locks
    idle: int  # outside tasks, or a loop waiting in select
    loop: int = 0  # of `busy`, the part its loop_busy events measured


def thread_times(trace: Trace) -> list[ThreadTime]:
    """Busy, waiting and idle time of each thread, in thread order.

    Where a thread's `loop_busy` events cover its life, their `busy_ns`
    are its working time there (lock waits inside it count as waiting),
    the rest idle. Elsewhere it works inside tasks and idles outside them."""
    covered = _loop_cover(trace)
    in_tasks: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for run in trace.tasks.values():
        if run.thread is not None and run.start is not None and run.end is not None:
            in_tasks[run.thread].append((run.start, run.end))
    waits: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for s in trace.locks:
        end = s.acquired if s.acquired is not None else s.timeout
        if end is None:  # never ended: waited until the thread's last event
            end = trace.threads[s.thread].last
        waits[s.thread].append((s.wait, end))
    out = []
    for name in trace.thread_order():
        life = trace.threads[name]
        lifetime = life.last - life.first
        loops = covered.get(name, _Cover([], [], 0))
        span_in, busy_in = loops.length, loops.busy
        task_total = sum(b - a for a, b in in_tasks[name])
        task_in = sum(loops.overlap(a, b) for a, b in in_tasks[name])
        wait_total = sum(b - a for a, b in waits[name])
        wait_in = min(sum(loops.overlap(a, b) for a, b in waits[name]), busy_in)
        task_out = min(task_total - task_in, lifetime - span_in)
        wait_out = min(wait_total - wait_in, task_out)
        out.append(
            ThreadTime(
                name,
                lifetime,
                busy=(busy_in - wait_in) + (task_out - wait_out),
                waiting=wait_in + wait_out,
                idle=(span_in - busy_in) + (lifetime - span_in - task_out),
                loop=busy_in - wait_in,
            )
        )
    return out


@dataclass(frozen=True)
class _Cover:
    """The parts of one thread's life its loop_busy events cover: disjoint
    [start, end) intervals sorted by start, their total length and busy ns."""

    starts: list[int]
    ends: list[int]
    busy: int

    @property
    def length(self) -> int:
        return sum(e - s for s, e in zip(self.starts, self.ends, strict=True))

    def overlap(self, a: int, b: int) -> int:
        """ns of [a, b) inside the covered parts."""
        total = 0
        i = max(0, bisect.bisect_right(self.starts, a) - 1)
        while i < len(self.starts) and self.starts[i] < b:
            total += max(0, min(b, self.ends[i]) - max(a, self.starts[i]))
            i += 1
        return total


def _loop_cover(trace: Trace) -> dict[str, _Cover]:
    """Per thread, its loop_busy intervals clipped to its life (a clipped
    interval keeps its share of busy ns); overlaps are dropped, not counted twice."""
    out: dict[str, _Cover] = {}
    by_thread: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for b in trace.loops:
        by_thread[b.thread].append((b.start, b.end, b.busy))
    for name, parts in by_thread.items():
        life = trace.threads[name]
        starts: list[int] = []
        ends: list[int] = []
        busy = 0
        for start, end, ns in sorted(parts):
            lo = max(start, life.first, ends[-1] if ends else start)
            hi = min(end, life.last)
            if hi <= lo:
                continue
            busy += ns if (lo, hi) == (start, end) else ns * (hi - lo) // (end - start)
            starts.append(lo)
            ends.append(hi)
        out[name] = _Cover(starts, ends, busy)
    return out


def task_table(trace: Trace) -> dict[str, dict[str, int]]:
    """Per command: count, queue delay and run time p50/p99 (ns)."""
    by_cmd: dict[str, list[TaskRun]] = defaultdict(list)
    for run in trace.tasks.values():
        by_cmd[run.cmd].append(run)
    out = {}
    for cmd, runs in sorted(by_cmd.items()):
        delays = [r.queue_delay for r in runs if r.queue_delay is not None]
        times = [r.run_time for r in runs if r.run_time is not None]
        out[cmd] = {
            "count": len(runs),
            "queue_p50": percentile(delays, 50), "queue_p99": percentile(delays, 99),
            "run_p50": percentile(times, 50), "run_p99": percentile(times, 99),
        }  # fmt: skip
    return out


@dataclass(frozen=True)
class OrderEdge:
    """Lock class `after` was taken while `before` was held, `count` times."""

    before: str  # lock class held
    after: str  # lock class then acquired
    count: int
    cmds: tuple[str, ...]  # commands that made this edge, most frequent first


def order_edges(trace: Trace) -> list[OrderEdge]:
    """Edges A -> B (classes) each time a thread acquired B while holding A."""
    per_thread: dict[str, list[tuple[int, LockSpan]]] = defaultdict(list)  # (acquired, span)
    for s in trace.locks:
        if s.acquired is not None:
            per_thread[s.thread].append((s.acquired, s))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    cmds: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for uses in per_thread.values():
        # Taken at the same ns: the one released later was taken first.
        uses.sort(key=lambda u: (u[0], -(u[1].released if u[1].released is not None else 1 << 62)))
        held: list[LockSpan] = []
        for acquired, s in uses:
            held = [h for h in held if h.released is None or h.released > acquired]
            for h in held:
                if h.cls != s.cls:
                    counts[h.cls, s.cls] += 1
                    run = trace.tasks.get(s.task)
                    cmds[h.cls, s.cls][run.cmd if run else "?"] += 1
            held.append(s)
    return [
        OrderEdge(a, b, n, tuple(sorted(cmds[a, b], key=lambda c: -cmds[a, b][c])))
        for (a, b), n in sorted(counts.items())
    ]


@dataclass(frozen=True)
class Blame:
    """Where one slow task's time went, and who held what it waited for."""

    task: int
    cmd: str
    thread: str
    queue_delay: int
    waits: tuple[tuple[str, int, int | None, str | None], ...]  # lock, ns, holder task, its cmd
    running: int  # run time minus lock waits

    @property
    def total(self) -> int:
        """ns from being queued to ending: queued, waiting for locks, running."""
        return self.queue_delay + sum(w[1] for w in self.waits) + self.running


#: Commands that hash a password (scrypt, tens of ms each by design, on the
#: password lane): a few of them at log-in time would fill every "slowest"
#: list, so pictures of steady-state commands leave them out.
SETUP_COMMANDS = frozenset({"register", "login"})


def blame(
    trace: Trace,
    n: int = 10,
    commands: Collection[str] | None = None,
    exclude: Collection[str] = (),
) -> list[Blame]:
    """The `n` slowest tasks (queue delay + run time), slowest first: of
    the commands in `commands` (all when None), but none in `exclude`."""
    timed = [
        (t, r)
        for r in trace.tasks.values()
        if (t := r.run_time) is not None
        and (commands is None or r.cmd in commands)
        and r.cmd not in exclude
    ]
    timed.sort(key=lambda tr: -((tr[1].queue_delay or 0) + tr[0]))
    spans_of_task: dict[int, list[LockSpan]] = defaultdict(list)
    holds: dict[str, list[tuple[int, LockSpan]]] = defaultdict(list)  # (acquired, span)
    for s in trace.locks:
        spans_of_task[s.task].append(s)
        if s.acquired is not None:
            holds[s.lock].append((s.acquired, s))
    for uses in holds.values():
        uses.sort(key=lambda u: u[0])
    starts = {lock: [a for a, _ in uses] for lock, uses in holds.items()}
    by_lock = {lock: [s for _, s in uses] for lock, uses in holds.items()}
    out = []
    for run_time, r in timed[:n]:
        waits: list[tuple[str, int, int | None, str | None]] = []
        for s in spans_of_task[r.task]:
            if s.acquired is None or s.acquired == s.wait:
                continue
            holder = _holder(by_lock[s.lock], starts[s.lock], s)
            hrun = trace.tasks.get(holder.task) if holder else None
            waits.append((s.lock, s.acquired - s.wait, holder.task if holder else None,
                          hrun.cmd if hrun else None))  # fmt: skip
        waited = sum(w[1] for w in waits)
        out.append(Blame(r.task, r.cmd, r.thread or "?", r.queue_delay or 0, tuple(waits),
                         max(0, run_time - waited)))  # fmt: skip
    return out


def _holder(spans: list[LockSpan], starts: list[int], waiter: LockSpan) -> LockSpan | None:
    """The span holding the lock when `waiter` asked for it. Holds of one
    lock never overlap, so it can only be the last one acquired before."""
    i = bisect.bisect_right(starts, waiter.wait) - 1
    if i < 0:
        return None
    h = spans[i]
    return h if h.released is None or h.released > waiter.wait else None


@dataclass(frozen=True)
class Activity:
    """Activity per interval of `step` ns starting at 0."""

    step: int
    completed: list[int]  # tasks ended in each interval
    queued: list[int]  # tasks queued but not started, at each interval's start
    waiters: dict[str, list[int]]  # per lock: threads waiting, at each interval's start


def activity(trace: Trace, intervals: int = 100) -> Activity:
    """Throughput, pool queue length and lock waiters over time."""
    end = max(trace.end, 1)
    step = max(1, math.ceil(end / intervals))
    completed = [0] * intervals
    queue_delta = [0] * (intervals + 1)
    for r in trace.tasks.values():
        if r.end is not None:
            completed[min(r.end // step, intervals - 1)] += 1
        if r.queued is not None and r.start is not None:
            # waiting in the queue over [queued, start): counted at the
            # starts of the intervals inside it
            first = -(-r.queued // step)
            last = -(-r.start // step)
            if first < last:
                queue_delta[min(first, intervals)] += 1
                queue_delta[min(last, intervals)] -= 1
    deltas: dict[str, list[int]] = {}
    for s in trace.locks:
        delta = deltas.get(s.lock)
        if delta is None:
            delta = deltas[s.lock] = [0] * (intervals + 1)
        stop = s.acquired if s.acquired is not None else (s.timeout or end)
        first, last = -(-s.wait // step), -(-stop // step)
        if first < last:
            delta[min(first, intervals)] += 1
            delta[min(last, intervals)] -= 1
    waiters = {lock: _running_sum(deltas[lock])[:intervals] for lock in sorted(deltas)}
    return Activity(step, completed, _running_sum(queue_delta)[:intervals], waiters)


def _running_sum(delta: list[int]) -> list[int]:
    out, total = [], 0
    for d in delta:
        total += d
        out.append(total)
    return out
