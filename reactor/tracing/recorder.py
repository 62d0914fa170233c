"""The concurrency trace (`--trace FILE`): cheap to record, written off the
hot path (docs/trace.md).

Owns: the trace header, one bounded event buffer per thread, the writer
thread that drains the buffers, and the writer process it feeds. Must not: block or
take a lock on the recording path, or know what commands mean.

Recording an event appends one tuple to the calling thread's own deque: no
lock (deque.append is atomic), no JSON, no system call. Every 50 ms the
writer thread pops what is there and ships it, marshalled, down a pipe to a
writer process (reactor/tracing/writer.py) that formats the JSON Lines and
flushes each batch, so the file is valid up to its last complete line even
after the server is killed with SIGKILL. A buffer that reaches its cap drops
new events and counts them; the count becomes a `dropped` event on that
thread. A writer that falls behind blocks only the writer thread, never a
worker: the buffers fill and drop. Sampling keeps
or drops whole tasks (decided when the reactor queues one), so every kept
task is complete.
"""

from __future__ import annotations

import itertools
import json
import logging
import marshal
import random
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any

from reactor.sync import tasks
from reactor.sync.instrument import LockInstrument, Watched
from reactor.tracing.hooks import TraceHooks

log = logging.getLogger("reactor.tracing.recorder")

#: Events one thread may have waiting for the writer. At ~10 events per
#: command and 50 ms between drains this is ~6,500 commands per thread per
#: drain, far above what one worker runs; past it, events are dropped.
BUFFER_CAP = 65536
#: Time between drains: the trace is at most this much behind.
FLUSH_SECONDS = 0.05
#: Events taken from one thread's buffer per drain, so the writer thread
#: never holds the GIL for one long pass; the rest waits for the next drain.
DRAIN_CHUNK = 20000
#: How long shutdown waits for the writer before giving up on it.
CLOSE_TIMEOUT = 10.0


class _Buffer:
    """One thread's pending events. Only that thread appends; only the writer pops."""

    __slots__ = ("dropped", "ended", "events", "name", "reported", "tid")

    def __init__(self) -> None:
        self.tid = threading.get_native_id()
        self.name = threading.current_thread().name
        self.events: deque[tuple[object, ...]] = deque()
        self.dropped = 0  # written by the owner thread only
        self.reported = 0  # written by the writer only
        self.ended = False  # the thread said `thread_end`: drop once drained


class Tracer(TraceHooks, LockInstrument):
    """Records events from any thread; a writer thread ships them to the
    process that writes `path`. Also a lock hook (reactor/sync/locks.py): it
    records lock events of sampled tasks."""

    enabled = True

    def __init__(
        self, path: str, *, locking: str, workers: int, sample: float = 1.0, node: str = ""
    ) -> None:
        """`node`: the cluster node's name, written in the header (none alone)."""
        self.path = path
        self.sample = sample
        self.start_ns = time.monotonic_ns()
        header = {
            "type": "header", "version": 1, "clock": "monotonic_ns",
            "start_unix": time.time(), "locking": locking, "workers": workers,
            "sample": sample, **({"node": node} if node else {}),
        }  # fmt: skip
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(header) + "\n")
        # Encoding runs in a process of its own (reactor/tracing/writer.py), so
        # it costs the server no time under its GIL; this side only ships
        # marshalled tuples down a pipe.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "reactor.tracing.writer", path, str(self.start_ns)],
            stdin=subprocess.PIPE,
            start_new_session=True,  # signals to our group are not for it: EOF ends it
        )
        assert self._process.stdin is not None  # stdin=PIPE
        self._pipe = self._process.stdin
        self._local = threading.local()
        self._buffers: list[_Buffer] = []  # appended under the GIL; read by the writer
        self._rng = random.Random()
        self._ids = itertools.count(1)  # next() is atomic: any thread may ask
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="trace-writer", daemon=True)
        self._writer.start()

    # --- recording (any thread) ----------------------------------------------

    def _buf(self) -> _Buffer:
        try:
            buf: _Buffer = self._local.buf
            return buf
        except AttributeError:
            buf = self._local.buf = _Buffer()
            buf.events.append(("X", time.monotonic_ns(), "thread_start", {}))
            self._buffers.append(buf)
            return buf

    def thread_start(self) -> None:
        """Put the calling thread in the trace now (a `thread_start` event),
        so a thread that never runs a sampled task still shows as idle."""
        self._buf()

    def thread_end(self) -> None:
        """The calling thread ends now (a `thread_end` event). Threads that
        come and go, as with --model threaded, say so; the others get their
        `thread_end` at `close()`."""
        buf = self._buf()
        buf.events.append(("X", time.monotonic_ns(), "thread_end", {}))
        buf.ended = True
        del self._local.buf

    def _record(self, event: tuple[object, ...]) -> None:
        buf = self._buf()
        if len(buf.events) >= BUFFER_CAP:
            buf.dropped += 1
        else:
            buf.events.append(event)

    def new_task(self, cmd: str, conn: int) -> tasks.Task:
        """A new task, sampled or not, and its `task_queued` event: a command
        the reactor queues, or the commit a worker queues for itself."""
        sampled = self.sample >= 1.0 or self._rng.random() < self.sample
        task = tasks.Task(next(self._ids), cmd, conn, sampled)
        if sampled:
            self._record(("Q", time.monotonic_ns(), task.id, cmd, conn))
        return task

    def task_start(self, task: tasks.Task) -> None:
        """The calling worker starts `task` (and records its lock events)."""
        if task.sampled:
            task.buf = self._buf()
            self._record(("S", time.monotonic_ns(), task.id, task.cmd))

    def task_end(self, task: tasks.Task) -> None:
        """The calling worker finished `task` (a `task_end` event if sampled)."""
        if task.sampled:
            self._record(("E", time.monotonic_ns(), task.id, task.cmd))

    def io(self, kind: str, conn: int, nbytes: int) -> None:
        """`kind` is "io_read" or "io_write"; kept at the sampling rate."""
        if self.sample >= 1.0 or self._rng.random() < self.sample:
            self._record(("I", time.monotonic_ns(), kind, conn, nbytes))

    def loop_busy(self, start: int, end: int, busy: int) -> None:
        """A `loop_busy` event at `end`: `busy` ns of [`start`, `end`] worked."""
        self._record(("B", end, start, busy))

    def event(self, ev: str, **fields: Any) -> None:
        """Any other event (order_violation, deadlock...), JSON-encoded later."""
        self._record(("X", time.monotonic_ns(), ev, fields))

    # --- lock hooks (reactor/sync/locks.py) -----------------------------------------

    def acquired(self, lock: Watched, t0: int, t1: int) -> None:
        """`lock`, asked for at `t0` and had at `t1`, by a sampled task."""
        task = tasks.current()
        if task is not None and task.buf is not None:
            buf = task.buf
            if len(buf.events) < BUFFER_CAP:
                buf.events.append(("A", t0, t1, lock.name, task.id))
            else:
                buf.dropped += 1

    def gave_up(self, lock: Watched, t0: int, t1: int) -> None:
        """A timed wait (the `inverted` demo) ended without the lock."""
        task = tasks.current()
        if task is not None and task.buf is not None:
            self._record(("G", t0, t1, lock.name, task.id))

    def released(self, lock: Watched, t: int) -> None:
        """`lock` released at `t` by a sampled task."""
        task = tasks.current()
        if task is not None and task.buf is not None:
            buf = task.buf
            if len(buf.events) < BUFFER_CAP:
                buf.events.append(("R", t, lock.name, task.id))
            else:
                buf.dropped += 1

    # --- shipping (writer thread) -------------------------------------------------

    def _drain(self) -> None:
        frame: list[tuple[int, str, list[tuple[object, ...]], int]] = []
        for buf in list(self._buffers):
            events = buf.events
            # In chunks, so the GIL is not held for one huge pass.
            taken = [events.popleft() for _ in range(min(len(events), DRAIN_CHUNK))]
            total = buf.dropped  # read once: the owner thread may be adding
            dropped, buf.reported = total - buf.reported, total
            if taken or dropped:
                frame.append((buf.tid, buf.name, taken, dropped))
            if buf.ended and not events:
                self._buffers.remove(buf)  # only this thread removes
        if frame:
            data = marshal.dumps(frame)
            self._pipe.write(len(data).to_bytes(4, "big") + data)
            self._pipe.flush()

    def _write_loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            try:
                self._drain()
            except Exception:  # never take the server down for its trace
                log.exception("trace writer failed; tracing stops")
                return

    def close(self) -> None:
        """Stop shipping, send everything recorded so far (each thread's
        events end with `thread_end`), wait for the file. Called once the
        other threads have stopped."""
        self._stop.set()
        self._writer.join(CLOSE_TIMEOUT)
        now = time.monotonic_ns()
        for buf in list(self._buffers):
            if not buf.ended:
                buf.events.append(("X", now, "thread_end", {}))
        try:
            while any(buf.events for buf in self._buffers):
                self._drain()
            self._pipe.close()
        except OSError:
            log.error("the trace writer process is gone; the trace may be short")
        try:
            self._process.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.error("the trace writer did not finish in %.0f s; stopped", CLOSE_TIMEOUT)
            self._process.kill()
