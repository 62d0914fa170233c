"""Readings of a lock demo's trace for a person: one task's story from the
bytes it came in to the reply it went out as, the most contended lock class,
a table comparing runs, and when a deadlock formed, was reported and broke.
classroom/demos_locks.py's scenarios and notebooks 01-03 (through
`demos_locks`) use them.

Owns: `Step` and a task's story (`pick_task`, `task_story`, `format_story`,
`story_window`); `most_contended` and `compare_runs`; `DeadlockMoments` and
`deadlock_moments`. Must not: start a server or make a run
(classroom/demos_locks.py does), read a trace file itself (it takes a
`Trace` from visualizer/load.py), compute lockstat numbers (visualizer/stats.py
does), or draw (visualizer/plots.py).

    trace = load_trace(path)
    print(format_story(task_story(trace, pick_task(trace, "send"))))
    m = deadlock_moments(trace)   # formed, reported, broken (ns), or None
"""

from __future__ import annotations

import dataclasses
from typing import Any

from loadgen.run import Summary
from visualizer import stats
from visualizer.load import Trace

US, MS = 1_000, 1_000_000  # ns


def most_contended(trace: Trace) -> stats.LockRow | None:
    """The lock class whose waits add up to the most time (None: no locks)."""
    rows = [r for r in stats.lockstat(trace) if r.is_class]
    return max(rows, key=lambda r: (r.wait_total, r.contended), default=None)


def _busy_ns(trace: Trace) -> int:
    """From the first task queued (or started) to the last one done."""
    starts = [t for r in trace.tasks.values() if (t := r.queued or r.start) is not None]
    ends = [r.end for r in trace.tasks.values() if r.end is not None]
    return max(ends) - min(starts) if starts and ends else trace.end


def compare_runs(runs: dict[str, tuple[Trace, Summary]]) -> str:
    """A text table, one row per labelled run: throughput, send->ok latency,
    the most contended lock class, its contended share and p99 wait, and the
    share of the busy part of the run (first task queued to last task done)
    during which it was held (scaled up when the trace was sampled)."""
    rows = [("run", "msgs/s", "ok p50 ms", "ok p99 ms", "busiest lock", "contended",
             "p99 wait", "held")]  # fmt: skip
    for label, (trace, summary) in runs.items():
        ok, row = summary.ok_latency_ms, most_contended(trace)
        held = row.hold_total / max(_busy_ns(trace), 1) / trace.header.sample if row else 0.0
        rows.append((label, f"{summary.delivered_per_s:.0f}", f"{ok.get('p50', 0):.2f}",
                     f"{ok.get('p99', 0):.2f}", row.name if row else "-",
                     f"{row.contended_pct:.0f} %" if row else "-",
                     f"{row.wait_p99 / US:.0f} µs" if row else "-",
                     f"{100 * held:.0f} %"))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i in (0, 4) else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    )


@dataclasses.dataclass(frozen=True)
class Step:
    """One moment of a task's story: when (ns), which thread, what happened."""

    ns: int
    thread: str
    what: str


def pick_task(trace: Trace, cmd: str = "send") -> int:
    """A typical `cmd` task: of those the trace holds whole (queued, started,
    ended), the middle half by time queued, the one with the median time from
    queued to end. Raises ValueError when the trace has none."""
    whole = [(queued, end - queued, r.task) for r in trace.tasks.values()
             if r.cmd == cmd and (queued := r.queued) is not None and r.start is not None
             and (end := r.end) is not None]  # fmt: skip
    if not whole:
        raise ValueError(f"no whole /{cmd} task in {trace.path}")
    whole.sort(key=lambda w: w[0])  # by time queued
    quarter = len(whole) // 4
    middle = sorted(whole[quarter : len(whole) - quarter], key=lambda w: (w[1], w[2]))
    return middle[len(middle) // 2][2]


def _who(thread: str | None) -> str:
    return "reactor" if thread == "MainThread" else str(thread)


def _task_steps(trace: Trace, task: int) -> list[Step]:
    r = trace.tasks[task]
    who, steps = _who(r.thread), []
    if r.queued is not None:
        steps.append(Step(r.queued, _who(r.queued_by), f"queues /{r.cmd} (task {task})"))
    if r.start is not None:
        queue = f" after {(r.start - r.queued) / US:.0f} µs in the queue" if r.queued else ""
        steps.append(Step(r.start, who, f"starts /{r.cmd}{queue}"))
    for s in (s for s in trace.locks if s.task == task):
        if s.acquired is None:
            steps.append(Step(s.wait, _who(s.thread), f"waits for {s.lock}, and gives up"))
            continue
        if s.contended:
            waited = (s.acquired - s.wait) / US
            steps.append(Step(s.wait, _who(s.thread), f"waits for {s.lock}"))
            steps.append(Step(s.acquired, _who(s.thread), f"gets {s.lock} after {waited:.0f} µs"))
        else:
            steps.append(Step(s.acquired, _who(s.thread), f"takes {s.lock} (free)"))
        if s.released is not None:
            held = (s.released - s.acquired) / US
            steps.append(Step(s.released, _who(s.thread), f"releases {s.lock}, held {held:.0f} µs"))
    if r.end is not None:
        ran = f" (ran {(r.end - r.start) / US:.0f} µs)" if r.start is not None else ""
        steps.append(Step(r.end, who, f"ends /{r.cmd}{ran}"))
    return steps


def task_story(trace: Trace, task: int) -> list[Step]:
    """A command's path from bytes to reply, in time order: the reactor's
    read before it was queued (with --trace-io), its run and lock uses on a
    worker, the commit the worker then ran for that connection, and the
    reactor's first write to the connection after them (the reply)."""
    r = trace.tasks[task]
    steps, after = _task_steps(trace, task), r.end or 0
    commits = [(queued, c) for c in trace.tasks.values() if c.cmd == "commit" and c.conn == r.conn
               and c.queued_by == r.thread and (queued := c.queued or -1) >= after]  # fmt: skip
    if r.cmd != "commit" and commits:
        commit = min(commits, key=lambda qc: qc[0])[1]  # the first queued
        steps += _task_steps(trace, commit.task)
        after = max(after, commit.end or 0)
    io = sorted(e for e in trace.io if e[2] == r.conn)
    reads = [e for e in io if e[1] == "io_read" and e[0] <= (r.queued or -1)]
    writes = [e for e in io if e[1] == "io_write" and e[0] >= after]
    if reads:
        steps.append(Step(reads[-1][0], "reactor", f"reads {reads[-1][3]} bytes from "
                          f"connection {r.conn}"))  # fmt: skip
    if writes:
        steps.append(Step(writes[0][0], "reactor", f"writes {writes[0][3]} bytes to "
                          f"connection {r.conn} (the reply)"))  # fmt: skip
    return sorted(steps, key=lambda s: s.ns)


def format_story(steps: list[Step]) -> str:
    """The story as lines: ms since the trace start, +µs since the first step, thread, what."""
    t0 = steps[0].ns if steps else 0
    return "\n".join(
        f"{s.ns / MS:10.3f} ms  +{(s.ns - t0) / US:6.0f} µs  {s.thread:<10} {s.what}" for s in steps
    )


def story_window(steps: list[Step], pad: float = 1.0) -> tuple[int, int]:
    """A timeline window (ns) around the story, `pad` times its length on each side."""
    first, last = steps[0].ns, steps[-1].ns
    margin = int(max(last - first, 50 * US) * pad)
    return max(0, first - margin), last + margin


@dataclasses.dataclass(frozen=True)
class DeadlockMoments:
    """One deadlock the watchdog reported (ns since the trace start)."""

    formed: int  # the last of the cycle's waits began: from here nobody can move
    reported: int  # the watchdog's `deadlock` event
    broken: int | None  # the first of those waits ended (gave up), if the trace shows it
    cycle: tuple[str, ...]  # the threads, as the watchdog named them
    # per thread of the cycle: thread, cmd, waits_for, held_by, seconds
    chain: tuple[dict[str, Any], ...]


def deadlock_moments(trace: Trace) -> DeadlockMoments | None:
    """The first deadlock of the trace, or None. The cycle's waits are found
    among the lock spans (the thread waits for the named lock across the
    report); without them, `formed` comes from the report's wait times."""
    event = next((e for e in trace.others if e.get("ev") == "deadlock"), None)
    if event is None:
        return None
    ts, cycle = int(event["ts"]), tuple(event.get("cycle") or ())
    chain = tuple(c for c in event.get("chain") or () if not cycle or c.get("thread") in cycle)
    waits = [max((s for s in trace.locks if s.thread == c.get("thread") and s.lock ==
                  c.get("waits_for") and s.wait <= ts < (s.acquired or ts + 1)),
                 key=lambda s: s.wait, default=None) for c in chain]  # fmt: skip
    found = [s for s in waits if s is not None]
    if chain and len(found) == len(waits):
        ends = [s.acquired if s.acquired is not None else s.timeout for s in found]
        formed = max(s.wait for s in found)
        broken = min((e for e in ends if e is not None), default=None)
    else:
        formed = ts - round(min((c.get("seconds", 0) for c in chain), default=0) * 1e9)
        broken = None
    return DeadlockMoments(formed, ts, broken, cycle, chain)
