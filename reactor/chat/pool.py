"""The worker pool: runs batches of one connection's commands, commits, and
posts the results back to the reactor.

Owns: the worker threads and their task queue, and the batch procedure
(run each item in order, commit the batch's writes, post replies).
Must not: touch sockets or the selector; per-connection order is the
reactor's doing (it gives a connection to at most one worker at a time, see
reactor/net/loop.py), so a batch is run start to end by one thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reactor.actions import Action, Disconnect, Done, TextAck
from reactor.chat.commands import Chat, Outbox
from reactor.chat.sessions import ConnState
from reactor.errors import LockTimeout
from reactor.protocol import COMMANDS, BadLine, Command, Error
from reactor.sync import tasks

log = logging.getLogger("reactor.chat.pool")


@dataclass(frozen=True)
class PoolStatistics:
    workers: int
    busy: int
    queued: int


class Pool:
    """`workers` threads running `(ConnState, items)` batches in FIFO order."""

    def __init__(
        self, chat: Chat, post: Callable[[Sequence[Action]], None], workers: int, tracer=None
    ) -> None:
        self._chat = chat
        self._post = post
        self._tracer = tracer
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        # Each worker writes only its own slot, so reading the list for
        # statistics needs no lock.
        self._busy = [False] * workers
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"worker-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def submit(self, conn: ConnState, items: list, traced: list | None = None) -> None:
        """Queue a batch; called by the reactor thread only. `traced` holds
        the trace's `Task` of each item when tracing."""
        self._tasks.put((conn, items, traced))

    def stop(self) -> None:
        """Finish queued batches, then end the threads."""
        for _ in self._threads:
            self._tasks.put(None)
        for t in self._threads:
            t.join()

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(len(self._threads), sum(self._busy), self._tasks.qsize())

    def _work(self, index: int) -> None:
        if self._tracer is not None:
            self._tracer.thread_start()
        while (task := self._tasks.get()) is not None:
            self._busy[index] = True
            try:
                self.run_batch(*task)
            except BaseException:  # a worker must outlive any bug in a batch
                log.exception("batch for connection %d failed", task[0].conn_id)
                self._post([Done(task[0].conn_id)])
            finally:
                tasks.enter(None)
                self._busy[index] = False

    def run_batch(self, conn: ConnState, items: list, traced: list | None = None) -> None:
        """Run one batch in the calling thread (see `run_batch`)."""
        run_batch(self._chat, self._post, self._tracer, conn, items, traced)


def run_batch(
    chat: Chat,
    post: Callable[[Sequence[Action]], None],
    tracer,
    conn: ConnState,
    items: list,
    traced: list | None = None,
    done: bool = True,
) -> None:
    """Run one connection's items in order, commit, post, then `Done`
    (unless `done` is False: a text ack run outside the connection's turn).

    The batch procedure of both I/O models: a pool worker calls it for the
    reactor, a connection's own thread for the thread-per-client model
    (reactor/net/threaded/server.py). `traced` holds the trace's `Task` of each item
    when tracing."""
    out = Outbox(conn.conn_id, post)
    for i, item in enumerate(items):
        task = traced[i] if traced else tasks.Task(0, item_name(item), conn.conn_id, False)
        tasks.enter(task)
        if tracer is not None:
            tracer.task_start(task)
        try:
            if isinstance(item, Command):
                if not conn.closed:
                    chat.run(conn, item, out)
            elif isinstance(item, BadLine):
                if not conn.closed:
                    out.reply(Error(item.cmd, item.code, item.message))
            elif isinstance(item, (TextAck, Disconnect)):
                _housekeeping(chat, conn, item, out)
        finally:
            if tracer is not None:
                tracer.task_end(task)
    if out.epochs:
        # The commit is a task of its own in the trace, queued by this
        # worker: it may commit other connections' writes too.
        task = tracer.new_task("commit", conn.conn_id) if tracer else None
        tasks.enter(task or tasks.Task(0, "commit", conn.conn_id, False))
        if tracer is not None:
            tracer.task_start(task)
        try:
            out.settle(chat.committer.commit_through(out.epochs))
        finally:
            if tracer is not None:
                tracer.task_end(task)
    tasks.enter(None)
    if done:
        out.add(Done(conn.conn_id))
    out.post_now()


def _housekeeping(chat: Chat, conn: ConnState, item, out: Outbox) -> None:
    """A text ack or a logout. Nobody waits for a reply to these, so a
    failure (the database locked by another process...) is logged and the
    batch goes on: the commands after it still get their replies."""
    try:
        if isinstance(item, TextAck):
            chat.text_ack(conn, item.id, out)
        else:
            chat.disconnect(conn)
    except LockTimeout as exc:  # the `inverted` demo's waits give up
        log.error("%s for connection %d failed: %s", item_name(item), conn.conn_id, exc)
    except Exception:
        log.exception("%s for connection %d failed", item_name(item), conn.conn_id)


def item_name(item) -> str:
    """The trace's `cmd` of a work item: the command word, or what it is."""
    if isinstance(item, Command):
        return item.name
    if isinstance(item, BadLine):  # a made-up word is not a command name
        return item.cmd if item.cmd in COMMANDS else item.code
    return "text_ack" if isinstance(item, TextAck) else "disconnect"
