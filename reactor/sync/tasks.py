"""Which task the current thread is running.

Owns: a thread-local record of the task a worker runs (its trace id, command
word, whether the trace samples it). Set by reactor/chat/pool.py around each
command; read by the lock hooks (tracing, lock-order checker) and the
`inverted` demo strategy. Must not: import other project modules.
"""

from __future__ import annotations

import threading

_local = threading.local()


class Task:
    """One command (or a commit) being run by a worker."""

    __slots__ = ("id", "cmd", "conn", "sampled", "buf")

    def __init__(self, task_id: int, cmd: str, conn: int, sampled: bool) -> None:
        self.id = task_id
        self.cmd = cmd
        self.conn = conn
        self.sampled = sampled
        self.buf = None  # the running thread's trace buffer, set by the tracer


def current() -> Task | None:
    """The task the calling thread runs, or None outside tasks."""
    return getattr(_local, "task", None)


def enter(task: Task | None) -> None:
    _local.task = task
