"""A node's delivery feed: every message committed by any node, handed out
in id order once nothing below it can still appear (the watermark).

Owns: `ClusterFeed` (reactor/chat/feed.py `Feed`): the watermark and the
catch-up reads. Must not: take locks (the committer calls it holding
``delivery``) or write anything.

Why it is safe: ids follow commit order (reactor/cluster/orderlock.py), so
once id N is visible every smaller id is committed or never will be. When
this node commits ids N..M it first reads what others committed between
its watermark and N, and hands that out before its own. A notification on
the bus, or the poll every CLUSTER_POLL_SECONDS, reads everything above the
watermark. Nothing rides on the notification itself: a lost one only
delays a message until the next read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from reactor import limits
from reactor.chat.store import Delivery
from reactor.cluster.pgschema import MSG_COLS
from reactor.protocol import Message

log = logging.getLogger("reactor.cluster.feed")


class ClusterFeed:
    """The watermark and the reads behind it. Hold ``delivery``."""

    def __init__(
        self, pool: ConnectionPool[Any], start: int, announce: Callable[[int], None]
    ) -> None:
        """`start`: the highest id committed when the node started (what is
        below it is replayed at login); `announce(id)` tells the other nodes."""
        self._pool = pool
        self._watermark = start
        self._announce = announce
        self.reads = 0  # catch-up queries made
        self.read_rows = 0  # others' messages they found

    @property
    def watermark(self) -> int:
        """Every id up to this one has been handed out here, or never existed."""
        return self._watermark

    def committed(self, done: list[Delivery]) -> list[Delivery]:
        """Others' messages below ours, then `done`. If they cannot be read
        now, nothing is handed out: the next poll reads `done` back too."""
        self._announce(done[-1].message.id)
        first = done[0].message.id
        due: list[Delivery] = []
        if first > self._watermark + 1:
            try:
                due = self._read(self._watermark, first)
            except psycopg.Error as exc:
                log.error("cannot read others' commits below %d, will poll: %s", first, exc)
                return []
        self._watermark = done[-1].message.id
        return due + done

    def poll(self) -> list[Delivery]:
        """Everything committed above the watermark, in id order."""
        due = self._read(self._watermark, None)
        if due:
            self._watermark = due[-1].message.id
        return due

    def _read(self, after: int, before: int | None) -> list[Delivery]:
        """Committed messages with after < id (< before), in slices."""
        out: list[Delivery] = []
        upper = " AND id < %s" if before is not None else ""
        with self._pool.connection() as db:
            while True:
                params: tuple[int, ...] = (after,) if before is None else (after, before)
                rows = db.execute(
                    f"SELECT {MSG_COLS}, recipients FROM messages WHERE id > %s{upper}"
                    f" ORDER BY id LIMIT {limits.CATCH_UP_ROWS}",
                    params,
                ).fetchall()
                self.reads += 1
                out += [Delivery(Message(*r[:7]), tuple(r[7])) for r in rows]
                if len(rows) < limits.CATCH_UP_ROWS:
                    break
                after = rows[-1][0]
        self.read_rows += len(out)
        return out
