"""The delivery feed: which committed messages this server hands to its
connections, in id order, and how far it has got (the watermark).

Owns: `Feed`, the interface, and `LocalFeed`, the one of a server that is
the only writer of its database. Must not: take locks (every method is
called under the ``delivery`` lock key) or touch sockets.

Cursors are cumulative over message ids (docs/protocol.md §6), so a server
may push id N only once every smaller id a user could receive has been
pushed or is known never to exist: otherwise an ack of N would skip it.
The watermark is the highest id up to which that holds; a login replays
up to the watermark and everything above it arrives live. On one server
the watermark is simply the last committed id. In a cluster
(reactor/cluster/feed.py) other nodes commit too, and the feed fills the
gap from the database before it hands out a message of its own.
"""

from __future__ import annotations

from typing import Protocol

from reactor.chat.store import Delivery


class Feed(Protocol):
    """Committed messages in id order. Hold ``delivery`` for every call."""

    @property
    def watermark(self) -> int:
        """Every message id up to this one has been handed out (or never was)."""

    def committed(self, done: list[Delivery]) -> list[Delivery]:
        """This server committed `done` (in id order): every message now due,
        in id order, ending with `done`; the watermark moves to its end."""

    def poll(self) -> list[Delivery]:
        """Messages others committed above the watermark, in id order."""


class LocalFeed:
    """The feed of a database this server alone writes: its commits are all
    there is, so nothing is ever missing below them."""

    def __init__(self, committed_max_id: int) -> None:
        self._watermark = committed_max_id

    @property
    def watermark(self) -> int:
        """The last committed message id."""
        return self._watermark

    def committed(self, done: list[Delivery]) -> list[Delivery]:
        """`done` itself."""
        if done:
            self._watermark = done[-1].message.id
        return done

    def poll(self) -> list[Delivery]:
        """Nothing: nobody else writes."""
        return []
