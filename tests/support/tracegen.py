"""Synthetic traces that follow TRACE.md, for tests with hand-computed answers.

    b = TraceBuilder(locking="fine", workers=2)
    b.task(1, "send", "worker-0", queued=0, start=10, end=100)
    b.lock("worker-0", "storage", task=1, wait=20, acquired=30, released=60)
    path = b.write(tmp_path / "t.jsonl")

Events of each thread are written in ts order; threads are interleaved
(by a fixed shuffle), as the real writer interleaves them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

_TIDS: dict[str, int] = {}


def tid(thread: str) -> int:
    return _TIDS.setdefault(thread, 1000 + len(_TIDS))


class TraceBuilder:
    def __init__(self, locking: str = "fine", workers: int = 2, sample: float = 1.0) -> None:
        self.header = {
            "type": "header", "version": 1, "clock": "monotonic_ns",
            "start_unix": 1_700_000_000.0, "locking": locking, "workers": workers,
            "sample": sample,
        }  # fmt: skip
        self.events: list[dict] = []

    def event(self, ts: int, thread: str, ev: str, **fields) -> TraceBuilder:
        self.events.append({"ts": ts, "tid": tid(thread), "thread": thread, "ev": ev, **fields})
        return self

    def task(self, task: int, cmd: str, thread: str, queued=None, start=None, end=None,
             conn: int = 1, queued_by: str = "MainThread") -> TraceBuilder:  # fmt: skip
        if queued is not None:
            self.event(queued, queued_by, "task_queued", task=task, cmd=cmd, conn=conn)
        if start is not None:
            self.event(start, thread, "task_start", task=task, cmd=cmd)
        if end is not None:
            self.event(end, thread, "task_end", task=task, cmd=cmd)
        return self

    def lock(self, thread: str, lock: str, task: int, wait: int, acquired=None,
             released=None, timeout=None) -> TraceBuilder:  # fmt: skip
        self.event(wait, thread, "lock_wait", lock=lock, task=task)
        if acquired is not None:
            self.event(acquired, thread, "lock_acquired", lock=lock, task=task)
        if released is not None:
            self.event(released, thread, "lock_released", lock=lock, task=task)
        if timeout is not None:
            self.event(timeout, thread, "lock_timeout", lock=lock, task=task)
        return self

    def lines(self) -> list[str]:
        by_thread: dict[str, list[dict]] = {}
        for e in self.events:
            by_thread.setdefault(e["thread"], []).append(e)
        chunks = []
        for evs in by_thread.values():
            evs.sort(key=lambda e: e["ts"])
            chunks += [evs[i : i + 3] for i in range(0, len(evs), 3)]
        random.Random(7).shuffle(chunks)  # interleave threads, keep each in order
        out = [json.dumps(self.header)]
        per_thread_pos: dict[str, int] = {}
        # Re-sort chunks of one thread into order after the shuffle.
        ordered: dict[str, list[list[dict]]] = {}
        for c in chunks:
            ordered.setdefault(c[0]["thread"], []).append(c)
        for thread in ordered:
            ordered[thread].sort(key=lambda c: c[0]["ts"])
            per_thread_pos[thread] = 0
        for c in chunks:
            thread = c[0]["thread"]
            chunk = ordered[thread][per_thread_pos[thread]]
            per_thread_pos[thread] += 1
            out += [json.dumps(e) for e in chunk]
        return out

    def write(self, path: Path) -> Path:
        path.write_text("\n".join(self.lines()) + "\n")
        return path
