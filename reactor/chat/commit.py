"""Group commit and the ordered hand-off of committed messages.

Owns: the commit point. A worker that wrote calls `commit_through(epoch)`
after running its batch; whoever gets the ``delivery`` lock first commits the
whole open transaction for everybody who wrote into it (one fsync-free
COMMIT for many commands), then posts the newly durable messages to the
reactor, routed to the recipients' current connections, in id order (the
feed, reactor/chat/feed.py, says which are due: in a cluster, others'
commits below ours come first).
Because posting happens under ``delivery``, the reactor receives messages in
id order, so every member of a group sees one order, and a login that holds
``delivery`` sees a clean line between replayed and live messages.
Must not: run command logic or touch sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reactor.actions import Action, Deliver
from reactor.chat.feed import Feed, LocalFeed
from reactor.chat.sessions import Sessions
from reactor.chat.store import Delivery, Store
from reactor.sync.locks import DELIVERY, SESSIONS, STORAGE, Locking

log = logging.getLogger("reactor.chat.commit")


@dataclass(frozen=True)
class Settlement:
    """What a commit settled for the epochs asked about: those rolled back
    (their writes lost), and the final id of each provisionally numbered
    message (see reactor/chat/store.py)."""

    lost: frozenset[int] = frozenset()
    ids: dict[int, int] = field(default_factory=dict)


class Committer:
    """Commits epochs of the storage and posts their messages in order."""

    def __init__(
        self,
        locks: Locking,
        storage: Store,
        sessions: Sessions,
        post: Callable[[Sequence[Action]], None],
        feed: Feed | None = None,
    ) -> None:
        self._locks = locks
        self._storage = storage
        self._sessions = sessions
        self._post = post
        self.feed: Feed = feed or LocalFeed(storage.committed_max_id)

    def commit_through(self, epochs: set[int]) -> Settlement:
        """Make every write of `epochs` (and before) durable and delivered."""
        with self._locks.hold(DELIVERY):
            return self.commit_held(epochs)

    def commit_held(self, epochs: set[int]) -> Settlement:
        """`commit_through` for a caller that already holds ``delivery``."""
        storage = self._storage
        done = []
        with self._locks.hold(STORAGE):
            top = max(epochs)
            # Invariant: an epoch neither failed nor committed is the open one.
            if top not in storage.failed and storage.committed_epoch < top:
                try:
                    done = storage.commit()
                except storage.Error as exc:
                    log.error("commit failed, its writes were rolled back: %s", exc)
            lost = frozenset(e for e in epochs if e in storage.failed)
            ids = storage.final_ids(epochs)
        if done:
            self._route(self.feed.committed(done))
        return Settlement(lost, ids)

    def catch_up(self) -> int:
        """Deliver what others committed above the feed's watermark (a
        cluster node's bus and poll call this); returns how many."""
        with self._locks.hold(DELIVERY):
            due = self.feed.poll()
            self._route(due)
        return len(due)

    def _route(self, due: list[Delivery]) -> None:
        """Post `due` to the recipients' connections here (hold ``delivery``)."""
        if not due:
            return
        with self._locks.hold(SESSIONS):
            conn_of = self._sessions.conn_of
            routed = []
            for d in due:
                conns = tuple(c for k in d.recipients if (c := conn_of(k)) is not None)
                if conns:
                    routed.append(Deliver(d.message, conns))
        if routed:
            self._post(routed)
