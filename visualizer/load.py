"""Reading traces (docs/trace.md) into plain records.

Owns: `load_trace(path)` and the records it returns: the header, one
`LockSpan` per lock use (wait, acquisition, release), one `TaskRun` per
task, one `ThreadLife` per thread, one `LoopBusy` per `loop_busy` event,
and the other events as they are (kinds it does not know included).
Must not: plot or compute statistics (visualizer/stats.py does).

The file is read once, line by line (streaming: memory grows with the
records, not the text); events of one thread are in `ts` order, threads
are interleaved. A malformed line raises `TraceError` naming the file and
line, unless `skip_bad=True`, which skips and counts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TraceError(ValueError):
    """The trace file is not what docs/trace.md describes (the file's fault)."""


@dataclass(frozen=True)
class Header:
    """The trace's first line: format version, clock, and the server's settings."""

    version: int
    clock: str
    start_unix: float
    locking: str
    workers: int
    sample: float
    node: str = ""  # the cluster node that wrote it; "" for a server on its own


@dataclass(frozen=True, slots=True)
class LockSpan:
    """One use of a lock by one thread, in ns since the trace start.
    `acquired` is None for a wait that gave up (at `timeout`) or never
    ended; `released` is None if the trace ends while the lock is held."""

    thread: str
    lock: str
    task: int
    wait: int
    acquired: int | None
    released: int | None
    timeout: int | None = None

    @property
    def cls(self) -> str:
        """The lock's class: its name up to the first colon (`group:os2` -> `group`)."""
        return self.lock.partition(":")[0]

    @property
    def waited(self) -> int | None:
        """ns from asking for the lock to getting it (None: never got it)."""
        return None if self.acquired is None else self.acquired - self.wait

    @property
    def held(self) -> int | None:
        """ns from getting the lock to releasing it (None: not both in the trace)."""
        if self.acquired is None or self.released is None:
            return None
        return self.released - self.acquired

    @property
    def contended(self) -> bool:
        """Whether the thread had to wait: it did not get the lock the instant it asked."""
        return self.acquired != self.wait


@dataclass(slots=True)
class TaskRun:
    """One task: queued by thread `queued_by` (the reactor, or a worker for
    its commit), run by `thread`. Any time may be None if the trace lacks
    that event."""

    task: int
    cmd: str
    conn: int | None = None
    queued: int | None = None
    start: int | None = None
    end: int | None = None
    thread: str | None = None
    queued_by: str | None = None

    @property
    def queue_delay(self) -> int | None:
        """ns from being queued to starting (None: either is missing)."""
        if self.queued is None or self.start is None:
            return None
        return self.start - self.queued

    @property
    def run_time(self) -> int | None:
        """ns from starting to ending (None: either is missing)."""
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


@dataclass(slots=True)
class ThreadLife:
    """When one thread was first and last seen in the trace."""

    tid: int
    name: str
    first: int  # thread_start, or its first event
    last: int  # thread_end, or its last event


@dataclass(frozen=True, slots=True)
class LoopBusy:
    """A loop thread (the reactor) between ts `start` and `end`: `busy` ns
    of it outside `select`, the rest waiting in it. A thread's records
    tile the part of its life they cover (each starts where the last ended)."""

    thread: str
    start: int
    end: int
    busy: int  # Invariant: 0 <= busy <= end - start


@dataclass
class Trace:
    """Everything read from one trace file."""

    header: Header
    path: str
    locks: list[LockSpan] = field(default_factory=list)  # sorted by wait
    tasks: dict[int, TaskRun] = field(default_factory=dict)
    threads: dict[str, ThreadLife] = field(default_factory=dict)
    io: list[tuple[int, str, int, int]] = field(default_factory=list)  # ts, kind, conn, bytes
    loops: list[LoopBusy] = field(default_factory=list)  # each thread's in ts order
    others: list[dict[str, Any]] = field(default_factory=list)  # order_violation, deadlock...
    events: int = 0  # event lines read
    skipped: int = 0  # malformed lines skipped (skip_bad)

    @property
    def end(self) -> int:
        """The last ts in the trace."""
        return max((t.last for t in self.threads.values()), default=0)

    @property
    def lock_names(self) -> list[str]:
        """Every lock used in the trace, by name."""
        return sorted({s.lock for s in self.locks})

    def thread_order(self) -> list[str]:
        """Threads as a person expects them: the reactor, then workers by number."""

        def key(name: str) -> tuple[int, int, str]:
            if name == "MainThread":
                return (0, 0, name)
            head, _, num = name.rpartition("-")
            return (1, int(num), head) if num.isdigit() else (2, 0, name)

        return sorted(self.threads, key=key)


_REQUIRED = {
    "lock_wait": ("lock", "task"),
    "lock_acquired": ("lock", "task"),
    "lock_released": ("lock", "task"),
    "lock_timeout": ("lock", "task"),
    "task_queued": ("task", "cmd"),
    "task_start": ("task", "cmd"),
    "task_end": ("task", "cmd"),
    "io_read": ("conn", "bytes"),
    "io_write": ("conn", "bytes"),
    "loop_busy": ("from", "busy_ns"),
}


def load_trace(path: str | Path, skip_bad: bool = False) -> Trace:
    """Read a trace file. Raises `TraceError` on a malformed line (or skips
    and counts it with `skip_bad`); a missing or bad header always raises."""
    path = str(path)
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        try:
            h = json.loads(first)
            if h.get("type") != "header":
                raise ValueError("line 1 is not the header")
            if h.get("version") != 1:
                raise ValueError(f"version {h.get('version')!r}, only 1 is known")
            header = Header(
                1, h.get("clock", "monotonic_ns"), float(h.get("start_unix", 0.0)),
                str(h.get("locking", "?")), int(h.get("workers", 0)), float(h.get("sample", 1.0)),
                str(h.get("node") or ""),
            )  # fmt: skip
        except (ValueError, TypeError) as exc:
            raise TraceError(f"{path}:1: not a trace header ({exc})") from None
        reader = _Reader(Trace(header, path))
        for lineno, line in enumerate(f, start=2):
            if not line.strip():
                continue
            try:
                reader.feed(json.loads(line))
            except (ValueError, TypeError, KeyError) as exc:
                if not skip_bad:
                    raise TraceError(f"{path}:{lineno}: {exc} (use --skip-bad to go on)") from None
                reader.trace.skipped += 1
    return reader.finish()


@dataclass(slots=True)
class _Pending:
    """A lock use whose release (or timeout) has not been read yet."""

    wait: int
    task: int
    acquired: int | None = None


class _Reader:
    """Pairs events into records as they stream by."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        # (thread, lock) -> stack of pending uses: a stack, because a thread
        # may wait for a lock it holds (recursion) and give up.
        self._pending: dict[tuple[str, str], list[_Pending]] = {}

    def feed(self, e: dict[str, Any]) -> None:
        ts, thread, ev = e["ts"], e["thread"], e["ev"]
        if not isinstance(ts, int) or not isinstance(thread, str) or not isinstance(ev, str):
            raise ValueError("ts, thread and ev must be an int and strings")
        for name in _REQUIRED.get(ev, ()):
            if name not in e:
                raise KeyError(f"{ev} without {name!r}")
        trace = self.trace
        trace.events += 1
        life = trace.threads.get(thread)
        if life is None:
            life = trace.threads[thread] = ThreadLife(e.get("tid", 0), thread, ts, ts)
        life.first, life.last = min(life.first, ts), max(life.last, ts)
        if ev == "lock_wait":
            self._pending.setdefault((thread, e["lock"]), []).append(_Pending(ts, e["task"]))
        elif ev == "lock_acquired":
            stack = self._pending.setdefault((thread, e["lock"]), [])
            if not stack or stack[-1].acquired is not None:  # cut mid-wait: count it free
                stack.append(_Pending(ts, e["task"]))
            stack[-1].acquired = ts
        elif ev == "lock_released" or ev == "lock_timeout":
            uses = self._pending.get((thread, e["lock"]), [])
            want_held = ev == "lock_released"
            match = [i for i, q in enumerate(uses) if (q.acquired is not None) == want_held]
            if not match:
                raise ValueError(f"{ev} of {e['lock']} with no matching lock_wait on {thread}")
            p = uses.pop(match[-1])
            if not uses:
                del self._pending[thread, e["lock"]]
            if ev == "lock_released":
                span = LockSpan(thread, e["lock"], p.task, p.wait, p.acquired, ts)
            else:
                span = LockSpan(thread, e["lock"], p.task, p.wait, None, None, ts)
            trace.locks.append(span)
        elif ev in ("task_queued", "task_start", "task_end"):
            run = trace.tasks.get(e["task"])
            if run is None:
                run = trace.tasks[e["task"]] = TaskRun(e["task"], e["cmd"])
            if ev == "task_queued":
                run.queued, run.conn, run.queued_by = ts, e.get("conn"), thread
            elif ev == "task_start":
                run.start, run.thread = ts, thread
            else:
                run.end = ts
        elif ev in ("io_read", "io_write"):
            trace.io.append((ts, ev, e["conn"], e["bytes"]))
        elif ev == "loop_busy":
            start, busy = e["from"], e["busy_ns"]
            if not isinstance(start, int) or not isinstance(busy, int):
                raise ValueError("loop_busy's from and busy_ns must be ints")
            if not 0 <= start <= ts or busy < 0:
                raise ValueError(f"loop_busy from {start} to {ts} with busy_ns {busy}")
            trace.loops.append(LoopBusy(thread, start, ts, min(busy, ts - start)))
        elif ev not in ("thread_start", "thread_end"):
            trace.others.append(e)

    def finish(self) -> Trace:
        for (thread, lock), stack in self._pending.items():
            for p in stack:
                self.trace.locks.append(LockSpan(thread, lock, p.task, p.wait, p.acquired, None))
        self.trace.locks.sort(key=lambda s: s.wait)
        return self.trace
