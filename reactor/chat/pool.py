"""The worker pool: threads that run queued batches, first come first served.

Owns: the worker threads, their task queue and their busy flags.
Must not: touch sockets or the selector; per-connection order is the I/O
model's doing (it gives a connection to at most one worker at a time, see
reactor/net/loop.py), so a batch is run start to end by one thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from reactor.actions import Action, Done
from reactor.stats import PoolStatistics
from reactor.sync import tasks
from reactor.tracing.hooks import TraceHooks

log = logging.getLogger("reactor.chat.pool")

#: One queued job: the ids of the connections whose batches it runs (for a
#: failure's `Done`s) and the call that runs them.
Job = tuple[Sequence[int], Callable[[], None]]


class Pool:
    """`workers` threads running queued jobs in FIFO order."""

    def __init__(
        self,
        workers: int,
        post: Callable[[Sequence[Action]], None],
        tracer: TraceHooks,
        name: str = "worker",
    ) -> None:
        self._post = post
        self._tracer = tracer
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        # Each worker writes only its own slot, so reading the list for
        # statistics needs no lock.
        self._busy = [False] * workers
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        """Start the worker threads."""
        for t in self._threads:
            t.start()

    def submit(self, conn_ids: Sequence[int], job: Callable[[], None]) -> None:
        """Queue `job`, which runs a batch of each of `conn_ids`."""
        self._jobs.put((conn_ids, job))

    def stop(self) -> None:
        """Finish queued batches, then end the threads."""
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()

    def statistics(self) -> PoolStatistics:
        """Workers, how many run a batch now, batches queued (a snapshot)."""
        return PoolStatistics(len(self._threads), sum(self._busy), self._jobs.qsize())

    def _work(self, index: int) -> None:
        self._tracer.thread_start()
        while (job := self._jobs.get()) is not None:
            conn_ids, run = job
            self._busy[index] = True
            try:
                run()
            except BaseException:  # a worker must outlive any bug in a batch
                log.exception("batch for connections %s failed", list(conn_ids))
                self._post([Done(c) for c in conn_ids])
            finally:
                tasks.enter(None)
                self._busy[index] = False
