"""Group commit and the ordered hand-off of committed messages.

Owns: the commit point. A worker that wrote calls `commit_through(epoch)`
after running its batch; whoever gets the ``delivery`` lock first commits the
whole open transaction for everybody who wrote into it (one fsync-free
COMMIT for many commands), then posts the newly durable messages to the
reactor, routed to the recipients' current connections, in id order.
Because posting happens under ``delivery``, the reactor receives messages in
id order, so every member of a group sees one order, and a login that holds
``delivery`` sees a clean line between replayed and live messages.
Must not: run command logic or touch sockets.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence

from reactor.actions import Action, Deliver
from reactor.chat.sessions import Sessions
from reactor.chat.storage import Storage
from reactor.sync.locks import DELIVERY, SESSIONS, STORAGE, Locking

log = logging.getLogger("reactor.chat.commit")


class Committer:
    """Commits epochs of the storage and posts their messages in order."""

    def __init__(
        self,
        locks: Locking,
        storage: Storage,
        sessions: Sessions,
        post: Callable[[Sequence[Action]], None],
    ) -> None:
        self._locks = locks
        self._storage = storage
        self._sessions = sessions
        self._post = post

    def commit_through(self, epochs: set[int]) -> set[int]:
        """Make every write of `epochs` (and before) durable and delivered.

        Returns the epochs among them that were rolled back (writes lost).
        """
        with self._locks.hold(DELIVERY):
            return self.commit_held(epochs)

    def commit_held(self, epochs: set[int]) -> set[int]:
        """`commit_through` for a caller that already holds ``delivery``."""
        storage = self._storage
        done = []
        with self._locks.hold(STORAGE):
            top = max(epochs)
            # Invariant: an epoch neither failed nor committed is the open one.
            if top not in storage.failed and storage.committed_epoch < top:
                try:
                    done = storage.commit()
                except sqlite3.Error as exc:
                    log.error("commit failed, its writes were rolled back: %s", exc)
            lost = {e for e in epochs if e in storage.failed}
        if done:
            with self._locks.hold(SESSIONS):
                conn_of = self._sessions.conn_of
                routed = []
                for d in done:
                    conns = tuple(c for k in d.recipients if (c := conn_of(k)) is not None)
                    if conns:
                        routed.append(Deliver(d.message, conns))
            if routed:
                self._post(routed)
        return lost
