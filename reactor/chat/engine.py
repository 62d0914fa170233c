"""The chat side of the server as an I/O model uses it.

Owns: `Engine`, which opens a connection's session, makes each queued
item's trace task (when it is queued, so the trace sees its wait), and runs
batches on the worker pool (`submit`) or in the calling thread (`run`).
Must not: touch sockets or know which I/O model calls it; it implements
reactor/frontend.py `Dispatch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from reactor.actions import Action, Item
from reactor.chat.batches import item_name, run_batch
from reactor.chat.commands import Chat
from reactor.chat.pool import Pool
from reactor.chat.sessions import ConnState
from reactor.frontend import Session
from reactor.stats import PoolStatistics
from reactor.sync.tasks import Task
from reactor.tracing.hooks import TraceHooks


class Engine:
    """Runs connections' batches: on `workers` pool threads (0: none, the
    I/O model runs every batch in its own threads)."""

    def __init__(
        self,
        chat: Chat,
        post: Callable[[Sequence[Action]], None],
        tracer: TraceHooks,
        workers: int = 0,
    ) -> None:
        self.chat = chat
        self._post = post
        self._tracer = tracer
        self.pool = Pool(workers, post, tracer)

    def open_session(self, conn_id: int, peer: str) -> ConnState:
        """The session of a new connection (its login state)."""
        return ConnState(conn_id, peer)

    def submit(self, session: Session, items: Sequence[Item]) -> None:
        """Queue a batch on the pool; its `Done` is posted when it has run."""
        state = cast(ConnState, session)  # made by open_session
        traced = self._tasks(state, items)
        self.pool.submit(
            session.conn_id,
            lambda: run_batch(self.chat, self._post, self._tracer, state, items, traced),
        )

    def run(self, session: Session, items: Sequence[Item], *, done: bool = True) -> None:
        """Run a batch in the calling thread; `done=False` posts no `Done`
        (a text ack run outside the connection's turn)."""
        state = cast(ConnState, session)  # made by open_session
        run_batch(
            self.chat, self._post, self._tracer, state, items, self._tasks(state, items), done
        )

    def start(self) -> None:
        """Start the pool's threads."""
        self.pool.start()

    def stop(self) -> None:
        """Finish queued batches and end the pool's threads."""
        self.pool.stop()

    def statistics(self) -> PoolStatistics:
        """The pool's statistics."""
        return self.pool.statistics()

    def _tasks(self, session: ConnState, items: Sequence[Item]) -> list[Task]:
        new_task = self._tracer.new_task
        return [new_task(item_name(i), session.conn_id) for i in items]
