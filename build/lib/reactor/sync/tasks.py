"""Which task the current thread is running.

Owns: a thread-local record of the task a worker runs (its trace id, command
word, whether the trace samples it). Set by reactor/chat/pool.py around each
command; read by the lock hooks (tracing, lock-order checker) and the
`inverted` demo strategy. Must not: import other project modules.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

_local = threading.local()


class TraceBuffer(Protocol):
    """The running thread's trace buffer (reactor/tracing/recorder.py
    `_Buffer`), as the lock hooks reach it through the task: events are
    appended and, past its cap, counted as dropped."""

    events: deque[tuple[object, ...]]
    dropped: int


class Task:
    """One command (or a commit) being run by a worker."""

    __slots__ = ("buf", "cmd", "conn", "id", "sampled")

    def __init__(self, task_id: int, cmd: str, conn: int, sampled: bool) -> None:
        self.id = task_id
        self.cmd = cmd
        self.conn = conn
        self.sampled = sampled
        self.buf: TraceBuffer | None = None  # the running thread's, set by the tracer


def current() -> Task | None:
    """The task the calling thread runs, or None outside tasks."""
    return getattr(_local, "task", None)


def enter(task: Task | None) -> None:
    """Make `task` the one the calling thread runs (None: no task)."""
    _local.task = task
