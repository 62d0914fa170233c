"""The chat side of the server as an I/O model uses it.

Owns: `Engine`, which opens a connection's session, makes each queued
item's trace task (when it is queued, so the trace sees its wait), and runs
a loop pass's batches on the worker pool (`submit`) or in the calling thread
(`run_all`), or one batch in the calling thread (`run`); and
the password lane: a batch that hashes a password (`/register`, `/login`
with passwords) runs on lane threads of its own, at most LANE_CAPACITY such
batches at once, so chat never waits behind scrypt; one more gets `busy`
at once. Must not: touch sockets, block the caller of `submit` (the reactor
thread), or know which I/O model calls it; it implements
reactor/frontend.py `Dispatch`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import cast

from reactor import limits
from reactor.actions import Action, Done, Item
from reactor.chat.batches import Batch, item_name, run_batch, run_batches
from reactor.chat.commands import Chat
from reactor.chat.pool import Pool
from reactor.chat.sessions import ConnState
from reactor.frontend import Session
from reactor.kinds import Auth
from reactor.protocol import BadLine, Command
from reactor.stats import PoolStatistics
from reactor.sync.tasks import Task
from reactor.tracing.hooks import TraceHooks

log = logging.getLogger("reactor.chat.engine")

_BUSY = "server busy: too many logins at once; retry in a moment"


class Engine:
    """Runs connections' batches: on `workers` pool threads (0: none, the
    I/O model runs every batch in its own threads), and batches that hash
    a password on `lane_workers` lane threads."""

    def __init__(
        self,
        chat: Chat,
        post: Callable[[Sequence[Action]], None],
        tracer: TraceHooks,
        workers: int = 0,
        lane_workers: int = limits.LANE_WORKERS,
        lane_capacity: int = limits.LANE_CAPACITY,
    ) -> None:
        self.chat = chat
        self._post = post
        self._tracer = tracer
        self.pool = Pool(workers, post, tracer)
        self.lane = Pool(lane_workers if workers else 0, post, tracer, name="lane")
        # The lane's slots: one per batch that may hash, running or queued.
        # Taken without waiting (acquire(False) never blocks the reactor
        # thread) and given back when the batch is done; a semaphore is the
        # counter, so it needs no lock of ours.
        self._slots = threading.BoundedSemaphore(lane_capacity)
        self._hashing = {"register", "login"} if chat.auth is Auth.PASSWORD else {"register"}

    def open_session(self, conn_id: int, peer: str) -> ConnState:
        """The session of a new connection (its login state)."""
        return ConnState(conn_id, peer)

    def submit(self, batches: Sequence[tuple[Session, Sequence[Item]]]) -> None:
        """Queue one pass's batches (each connection at most once): a batch
        that hashes to the lane on its own, the others to the pool as jobs
        of up to JOB_CONNECTIONS batches, each job one commit and one post.
        Every batch's `Done` is posted when it has run. Never blocks."""
        job: list[Batch] = []
        for session, items in batches:
            state = cast(ConnState, session)  # made by open_session
            if self._hashes(items):
                if self._slots.acquire(blocking=False):
                    run = functools.partial(self._in_lane, state, items, self._tasks(state, items))
                    self.lane.submit((state.conn_id,), run)
                    continue
                items = self._busy(items)
            job.append((state, items, self._tasks(state, items)))
            if len(job) == limits.JOB_CONNECTIONS:
                self._queue(job)
                job = []
        if job:
            self._queue(job)

    def run_all(self, batches: Sequence[tuple[Session, Sequence[Item]]]) -> None:
        """Run one pass's batches in the calling thread, each connection's
        in order, with one commit and one post for all but those that hash
        (each of those runs alone, holding a lane slot)."""
        job: list[Batch] = []
        for session, items in batches:
            state = cast(ConnState, session)  # made by open_session
            if self._hashes(items):
                self.run(state, items)
            else:
                job.append((state, items, self._tasks(state, items)))
        if not job:
            return
        try:
            run_batches(self.chat, self._post, self._tracer, job)
        except Exception:  # the loop must outlive any bug in a batch, as a worker does
            log.exception("batch for connections %s failed", [b[0].conn_id for b in job])
            self._post([Done(b[0].conn_id) for b in job])

    def run(self, session: Session, items: Sequence[Item], *, done: bool = True) -> None:
        """Run a batch in the calling thread; `done=False` posts no `Done`
        (a text ack run outside the connection's turn). A batch that hashes
        takes a lane slot for its time, or is answered `busy`."""
        state = cast(ConnState, session)  # made by open_session
        if self._hashes(items):
            if self._slots.acquire(blocking=False):
                self._in_lane(state, items, self._tasks(state, items), done)
                return
            items = self._busy(items)
        run_batch(
            self.chat, self._post, self._tracer, state, items, self._tasks(state, items), done
        )

    def _queue(self, job: list[Batch]) -> None:
        self.pool.submit(
            tuple(b[0].conn_id for b in job),
            lambda: run_batches(self.chat, self._post, self._tracer, job),
        )

    def start(self) -> None:
        """Start the pool's and the lane's threads."""
        self.pool.start()
        self.lane.start()

    def stop(self) -> None:
        """Finish queued batches and end the threads."""
        self.lane.stop()
        self.pool.stop()

    def statistics(self) -> PoolStatistics:
        """The worker pool's statistics (the lane's not included)."""
        return self.pool.statistics()

    def _in_lane(
        self, state: ConnState, items: Sequence[Item], traced: list[Task], done: bool = True
    ) -> None:
        try:
            run_batch(self.chat, self._post, self._tracer, state, items, traced, done)
        finally:
            self._slots.release()

    def _hashes(self, items: Sequence[Item]) -> bool:
        hashing = self._hashing
        return any(isinstance(i, Command) and i.name in hashing for i in items)

    def _busy(self, items: Sequence[Item]) -> list[Item]:
        hashing = self._hashing
        return [
            BadLine(i.name, "busy", _BUSY) if isinstance(i, Command) and i.name in hashing else i
            for i in items
        ]

    def _tasks(self, session: ConnState, items: Sequence[Item]) -> list[Task]:
        new_task = self._tracer.new_task
        return [new_task(item_name(i), session.conn_id) for i in items]
