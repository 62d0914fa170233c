"""The batch procedure: run connections' work items, each connection's in
order, commit what they wrote, post the replies.

Owns: `run_batch` and `run_batches` (used by every I/O model, through
reactor/chat/engine.py),
the housekeeping items (text acks, logout) and the trace's name of an item.
Must not: touch sockets, or run two batches of one connection at once (the
I/O model hands a connection to one thread at a time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from reactor.actions import Action, Disconnect, Done, Item, Reply, TextAck
from reactor.chat.commands import Chat
from reactor.chat.outbox import Outbox
from reactor.chat.sessions import ConnState
from reactor.errors import LockTimeout
from reactor.protocol import COMMANDS, BadLine, Command, Error
from reactor.sync import tasks
from reactor.tracing.hooks import TraceHooks

log = logging.getLogger("reactor.chat.batches")


#: One connection's batch as the chat side runs it: its session, its items
#: in order, and each item's trace `Task` (made when the item was queued).
Batch = tuple[ConnState, Sequence[Item], Sequence[tasks.Task]]


def run_batch(
    chat: Chat,
    post: Callable[[Sequence[Action]], None],
    tracer: TraceHooks,
    conn: ConnState,
    items: Sequence[Item],
    traced: Sequence[tasks.Task],
    done: bool = True,
) -> None:
    """Run one connection's items in order, commit, post, then `Done`
    (unless `done` is False: a text ack run outside the connection's turn)."""
    run_batches(chat, post, tracer, [(conn, items, traced)], done)


def run_batches(
    chat: Chat,
    post: Callable[[Sequence[Action]], None],
    tracer: TraceHooks,
    batches: Sequence[Batch],
    done: bool = True,
) -> None:
    """Run several connections' batches (each connection at most once), one
    after the other, then commit once for all of them and post every
    reply, each connection's in order, and their `Done`s in one list.

    One commit and one post per call is the point: the cost of a commit, a
    post and the I/O model's wake-up is shared by every line of the pass,
    however many connections the lines came from."""
    outs = []
    epochs: set[int] = set()
    for conn, items, traced in batches:
        out = Outbox(conn.conn_id, post)
        _run_items(chat, tracer, conn, items, traced, out)
        epochs |= out.epochs
        outs.append(out)
    if epochs:
        # The commit is a task of its own in the trace, queued by this
        # thread: it may commit other connections' writes too.
        task = tracer.new_task("commit", batches[0][0].conn_id)
        tasks.enter(task)
        tracer.task_start(task)
        try:
            settled = chat.committer.commit_through(epochs)
        finally:
            tracer.task_end(task)
        for out in outs:
            out.settle(settled)
    tasks.enter(None)
    actions: list[Action] = []
    for out in outs:
        actions += out.take()
        if done:
            actions.append(Done(out.conn_id))
    if actions:
        post(actions)


def _run_items(
    chat: Chat,
    tracer: TraceHooks,
    conn: ConnState,
    items: Sequence[Item],
    traced: Sequence[tasks.Task],
    out: Outbox,
) -> None:
    for item, task in zip(items, traced, strict=True):
        tasks.enter(task)
        tracer.task_start(task)
        try:
            if isinstance(item, Command):
                if not conn.closed:
                    chat.run(conn, item, out)
            elif isinstance(item, BadLine):
                if not conn.closed:
                    out.reply(Error(item.cmd, item.code, item.message))
            elif isinstance(item, Reply):
                if not conn.closed:
                    out.reply(item.event)
            else:
                _housekeeping(chat, conn, item, out)
        finally:
            tracer.task_end(task)


def _housekeeping(chat: Chat, conn: ConnState, item: TextAck | Disconnect, out: Outbox) -> None:
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
    except chat.storage.Error as exc:  # the database failed or is unreachable
        log.error("%s for connection %d failed: %s", item_name(item), conn.conn_id, exc)
    except Exception:
        log.exception("%s for connection %d failed", item_name(item), conn.conn_id)


def item_name(item: Item) -> str:
    """The trace's `cmd` of a work item: the command word, or what it is."""
    if isinstance(item, Command):
        return item.name
    if isinstance(item, BadLine):  # a made-up word is not a command name
        return item.cmd if item.cmd in COMMANDS else item.code
    if isinstance(item, Reply):
        return "irc"
    return "text_ack" if isinstance(item, TextAck) else "disconnect"
