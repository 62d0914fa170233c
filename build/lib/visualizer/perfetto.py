"""Export a loaded trace to the Chrome Trace Event format (JSON), the one
ui.perfetto.dev and chrome://tracing open.

Owns: `to_chrome(trace)`, `write_chrome(trace, path)` and the stream of
events behind them (`iter_events`). Must not: read trace files (load.py
does), compute lockstat numbers (stats.py does) or plot.

What the export holds, all in one process (pid 1, "reactor-chat (<locking>)"):
- one track per thread, numbered 1.. in `Trace.thread_order()` (the
  reactor first, then worker-0, worker-1, ...), named by "M" events;
- "X" slices: every task run (cat `task`), every lock wait that waited
  (cat `lock_wait`), every lock hold (cat `lock_hold`), and zero-length
  marks where a flow starts: a task queued (cat `queue`), a lock released
  to a waiter (cat `lock_release`). A wait that gave up ends at its
  `lock_timeout`; any other slice the trace does not close ends at its
  thread's last event;
- "C" counters, exact step changes: the pool's queue length and, per lock,
  the threads waiting for it;
- flows ("s" -> "f"): a task's queuing -> its start on a worker, and a
  lock's release -> its acquisition by a waiter that was contended;
- global instants ("i") for the other events (order_violation, deadlock,
  long_wait, dropped...), with their fields as args.

Design: every kind of event comes from its own stream, each in time order,
and the streams are merged lazily, so `write_chrome` holds the sorted
records (what the loaded trace already holds) but not the JSON. At one
timestamp the order is chosen for Perfetto, which binds a flow event to
the slice last pushed on its thread's stack when it reads it (even one that
has ended, hence the marks): slices longest first (parents before
children), then the flows, which bind to the slice that just began.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from visualizer.load import LockSpan, TaskRun, Trace

PID = 1

# Order of events that share a timestamp (see the module docstring).
_COUNTER, _SLICE, _FLOW_START, _FLOW_END, _INSTANT = range(5)

_Keyed = tuple[tuple[int, int, int], dict[str, Any]]  # ((ts ns, rank, -dur ns), event)


class _Hold(NamedTuple):
    """A lock use that got its lock, with the acquisition time unwrapped."""

    acquired: int
    span: LockSpan


def _us(ns: int) -> float:
    """Trace nanoseconds to the format's microseconds (exact to the ns)."""
    return ns / 1000


def to_chrome(trace: Trace) -> dict[str, Any]:
    """The whole export as one JSON-ready dict:
    `{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}`."""
    return {
        "traceEvents": list(iter_events(trace)),
        "displayTimeUnit": "ms",
        "otherData": _other_data(trace),
    }


def write_chrome(trace: Trace, path: str | Path) -> None:
    """Write the export to `path`, one event per line, without building the
    whole document in memory."""
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"displayTimeUnit": "ms",\n"otherData": ')
        f.write(json.dumps(_other_data(trace)))
        f.write(',\n"traceEvents": [\n')
        sep, encode = "", json.JSONEncoder(separators=(",", ":")).encode
        for event in iter_events(trace):
            f.write(sep)
            f.write(encode(event))
            sep = ",\n"
        f.write("\n]}\n")


def iter_events(trace: Trace) -> Iterator[dict[str, Any]]:
    """Every event of the export: the metadata first, then the rest in time
    order (ties broken as the module docstring says)."""
    tids = {name: i for i, name in enumerate(trace.thread_order(), start=1)}
    yield from _metadata(trace, tids)
    last = {name: life.last for name, life in trace.threads.items()}
    holds = sorted(
        (_Hold(s.acquired, s) for s in trace.locks if s.acquired is not None),
        key=lambda h: (h.acquired, h.span.lock),
    )
    task_flows = _task_flows(trace, tids)
    lock_flows = _lock_flows(holds, tids, first_id=len(task_flows) + 1)
    streams: list[Iterable[_Keyed]] = [
        _task_slices(trace, tids, last),
        _queue_marks(trace, tids),
        _wait_slices(trace, tids, last),
        _hold_slices(holds, tids, last),
        _release_marks(lock_flows),
        _flow_events(task_flows + lock_flows),
        _queue_counter(trace),
        _waiter_counters(trace),
        _instants(trace, tids),
    ]
    for _key, event in heapq.merge(*streams, key=itemgetter(0)):
        yield event


def _other_data(trace: Trace) -> dict[str, Any]:
    return {**dataclasses.asdict(trace.header), "trace_file": trace.path}


def _metadata(trace: Trace, tids: dict[str, int]) -> Iterator[dict[str, Any]]:
    name = f"reactor-chat ({trace.header.locking})"
    yield {"name": "process_name", "ph": "M", "pid": PID, "tid": 0, "args": {"name": name}}
    for thread, tid in tids.items():
        yield {"name": "thread_name", "ph": "M", "pid": PID, "tid": tid, "args": {"name": thread}}
        yield {
            "name": "thread_sort_index",
            "ph": "M",
            "pid": PID,
            "tid": tid,
            "args": {"sort_index": tid},
        }


def _slice(name: str, cat: str, tid: int, start: int, end: int, args: dict[str, Any]) -> _Keyed:
    event = {
        "name": name,
        "cat": cat,
        "ph": "X",
        "ts": _us(start),
        "dur": _us(end - start),
        "pid": PID,
        "tid": tid,
        "args": args,
    }
    return (start, _SLICE, start - end), event


def _task_slices(trace: Trace, tids: dict[str, int], last: dict[str, int]) -> Iterator[_Keyed]:
    keyed = []
    for r in trace.tasks.values():
        thread = r.thread
        if r.start is None or thread is None or thread not in tids:
            continue
        end = r.end if r.end is not None else last[thread]
        keyed.append((r.start, r.start - end, r.task, r, end, tids[thread]))
    keyed.sort(key=itemgetter(0, 1, 2))
    for start, _neg, _task, r, end, tid in keyed:
        delay = r.queue_delay
        args = {
            "task": r.task,
            "conn": r.conn,
            "queue_delay_us": None if delay is None else _us(delay),
        }
        yield _slice(r.cmd, "task", tid, start, end, args)


def _queuer(run: TaskRun) -> str | None:
    """The thread that queued `run`: as recorded, else as the server does it
    (the reactor queues commands, a worker its own commits: docs/trace.md)."""
    if run.queued_by is not None:
        return run.queued_by
    return run.thread if run.cmd == "commit" else "MainThread"


def _queued_runs(trace: Trace, tids: dict[str, int]) -> list[tuple[int, int, TaskRun, int]]:
    """(queued ts, task, run, queuing tid) for tasks queued on a known thread."""
    out = []
    for r in trace.tasks.values():
        by = _queuer(r)
        if r.queued is not None and by is not None and by in tids:
            out.append((r.queued, r.task, r, tids[by]))
    out.sort(key=itemgetter(0, 1))
    return out


def _queue_marks(trace: Trace, tids: dict[str, int]) -> Iterator[_Keyed]:
    for queued, task, r, tid in _queued_runs(trace, tids):
        yield _slice(f"queue {r.cmd}", "queue", tid, queued, queued, {"task": task})


def _wait_end(s: LockSpan, last: dict[str, int]) -> int:
    """When the wait of `s` ended: acquired, gave up, or the thread's end."""
    if s.acquired is not None:
        return s.acquired
    return s.timeout if s.timeout is not None else last[s.thread]


def _wait_slices(trace: Trace, tids: dict[str, int], last: dict[str, int]) -> Iterator[_Keyed]:
    for s in trace.locks:  # sorted by wait
        if s.acquired == s.wait:
            continue
        end = _wait_end(s, last)
        args = {"task": s.task, "acquired": s.acquired is not None}
        yield _slice(f"wait {s.lock}", "lock_wait", tids[s.thread], s.wait, end, args)


def _hold_slices(
    holds: list[_Hold], tids: dict[str, int], last: dict[str, int]
) -> Iterator[_Keyed]:
    def end(s: LockSpan) -> int:
        return s.released if s.released is not None else last[s.thread]

    for acquired, s in sorted(holds, key=lambda h: (h.acquired, h.acquired - end(h.span))):
        args = {"task": s.task, "contended": s.contended}
        yield _slice(s.lock, "lock_hold", tids[s.thread], acquired, end(s), args)


class _Flow(NamedTuple):
    id: int
    name: str
    cat: str
    from_ts: int
    from_tid: int
    to_ts: int
    to_tid: int
    from_task: int


def _task_flows(trace: Trace, tids: dict[str, int]) -> list[_Flow]:
    """A task's queuing -> its start, numbered 1.. by queuing time."""
    flows: list[_Flow] = []
    for queued, task, r, tid in _queued_runs(trace, tids):
        if r.start is not None and r.thread in tids:
            to = tids[r.thread]
            flows.append(_Flow(len(flows) + 1, "queued", "task", queued, tid, r.start, to, task))
    return flows


def _lock_flows(holds: list[_Hold], tids: dict[str, int], first_id: int) -> list[_Flow]:
    """A lock's release -> its acquisition by the next holder, when that one
    was waiting for this release; numbered from `first_id`."""
    flows: list[_Flow] = []
    previous: dict[str, LockSpan] = {}
    for acquired, s in holds:  # by acquisition: holds of one lock never overlap
        before = previous.get(s.lock)
        previous[s.lock] = s
        if before is None or before.released is None or not s.contended:
            continue
        if not s.wait <= before.released <= acquired:
            continue  # it waited for a holder the trace does not show (sampling)
        flow_id, frm, to = first_id + len(flows), tids[before.thread], tids[s.thread]
        flows.append(_Flow(flow_id, f"handoff {s.lock}", "lock", before.released, frm,
                           acquired, to, before.task))  # fmt: skip
    return flows


def _release_marks(lock_flows: list[_Flow]) -> Iterator[_Keyed]:
    for f in sorted(lock_flows, key=lambda f: (f.from_ts, f.id)):
        name = f"release {f.name.removeprefix('handoff ')}"
        yield _slice(name, "lock_release", f.from_tid, f.from_ts, f.from_ts, {"task": f.from_task})


def _flow_events(flows: list[_Flow]) -> Iterator[_Keyed]:
    keyed = [(f.from_ts, _FLOW_START, f.id, i) for i, f in enumerate(flows)]
    keyed += [(f.to_ts, _FLOW_END, f.id, i) for i, f in enumerate(flows)]
    keyed.sort()
    for ts, rank, flow_id, i in keyed:
        f = flows[i]
        event = {"name": f.name, "cat": f.cat, "ph": "s", "id": flow_id, "ts": _us(ts), "pid": PID}
        if rank == _FLOW_END:
            event.update(ph="f", tid=f.to_tid, bp="e")
        else:
            event["tid"] = f.from_tid
        yield (ts, rank, 0), event


def _steps(deltas: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """(ts, value) at each change of a running sum of (ts, delta), sorted;
    changes at one ts make one step; the first ts always makes one."""
    value, shown = 0, None
    i = 0
    while i < len(deltas):
        ts = deltas[i][0]
        while i < len(deltas) and deltas[i][0] == ts:
            value += deltas[i][1]
            i += 1
        if value != shown:
            shown = value
            yield ts, value


def _counter(name: str, key: str, ts: int, value: int) -> _Keyed:
    event = {"name": name, "ph": "C", "ts": _us(ts), "pid": PID, "tid": PID, "args": {key: value}}
    return (ts, _COUNTER, 0), event


def _queue_counter(trace: Trace) -> Iterator[_Keyed]:
    """Tasks queued and not yet started: +1 at task_queued, -1 at task_start."""
    deltas = [(0, 0)]
    for r in trace.tasks.values():
        if r.queued is not None:
            deltas.append((r.queued, 1))
            if r.start is not None:
                deltas.append((r.start, -1))
    deltas.sort()
    for ts, value in _steps(deltas):
        yield _counter("pool", "queued", ts, value)


def _waiter_counters(trace: Trace) -> Iterator[_Keyed]:
    """Per lock, threads waiting: +1 at lock_wait, -1 at lock_acquired (a
    wait that never acquired ends as its slice does)."""
    last = {name: life.last for name, life in trace.threads.items()}
    per_lock: dict[str, list[tuple[int, int]]] = {lock: [(0, 0)] for lock in trace.lock_names}
    for s in trace.locks:
        if s.acquired == s.wait:
            continue
        per_lock[s.lock] += [(s.wait, 1), (_wait_end(s, last), -1)]
    streams = [_lock_counter(lock, sorted(deltas)) for lock, deltas in per_lock.items()]
    return heapq.merge(*streams, key=itemgetter(0))


def _lock_counter(lock: str, deltas: list[tuple[int, int]]) -> Iterator[_Keyed]:
    for ts, value in _steps(deltas):
        yield _counter(f"lock {lock}", "waiters", ts, value)


def _instants(trace: Trace, tids: dict[str, int]) -> Iterator[_Keyed]:
    for e in sorted(trace.others, key=itemgetter("ts")):
        args = {k: v for k, v in e.items() if k not in ("ts", "ev")}
        event = {"name": e["ev"], "cat": "report", "ph": "i", "s": "g", "ts": _us(e["ts"])}
        event.update(pid=PID, tid=tids.get(e["thread"], 0), args=args)
        yield (e["ts"], _INSTANT, 0), event
