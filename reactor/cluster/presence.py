"""Who is logged in where, across the cluster: one session per user on any
node, `/users` online anywhere, and the replacement of a session that a
login on another node took over.

Owns: `ClusterSessions` (reactor/chat/sessions.py `Sessions` plus the
``sessions`` and ``nodes`` tables) and this node's claim on its name. Must
not: touch sockets or the storage's transaction (presence is written at
once, outside the epochs: it is not chat data, and a crash must not leave
it half done). Every method but the name claim is called holding the
``sessions`` lock key, which therefore also guards these tables' rows of
this node.

A login on node B upserts the user's row and learns the session it
replaced; if that was on node A, B tells A on the bus and A ends it with
`bye replaced`. The bus may lose that message, so each node also compares
its own sessions with the table every CLUSTER_POLL_SECONDS (`reconcile`):
a session whose row now names another node is replaced; a row of this node
with no session behind it is deleted. A node killed with -9 stops beating
(``nodes.seen``), and its users stop counting as online.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from reactor import limits
from reactor.chat.sessions import Sessions
from reactor.cluster.pgschema import connect
from reactor.errors import NodeNameInUse
from reactor.protocol import GroupChange

log = logging.getLogger("reactor.cluster.presence")

#: Session-level advisory locks on node names live in their own key space.
_NODE_LOCK_SPACE = 0x6E6F6465


class ClusterSessions(Sessions):
    """`Sessions` whose logins count cluster-wide. Hold ``sessions``."""

    def __init__(
        self,
        pool: ConnectionPool[Any],
        node: str,
        tell: Callable[[str, str, int], None],
        replaced: Callable[[int], None],
        broadcast: Callable[[list[str], GroupChange], None],
    ) -> None:
        """`tell(node, user_key, conn_id)` asks another node to end a session;
        `replaced(conn_id)` ends one of ours with `bye replaced`;
        `broadcast(user_keys, event)` sends an event to the other nodes."""
        super().__init__()
        self._pool = pool
        self.node = node
        self._tell = tell
        self._replaced = replaced
        self._broadcast = broadcast
        self._claim: psycopg.Connection[Any] | None = None

    # --- the node ------------------------------------------------------------

    def claim(self, url: str) -> None:
        """Take this node's name for the process's life (a session advisory
        lock: kill -9 lets go of it), forget a killed predecessor's sessions
        and beat once. Raises `NodeNameInUse`."""
        db = connect(url)
        row = db.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_NODE_LOCK_SPACE, self.node)
        ).fetchone()
        if not (row and row[0]):
            db.close()
            raise NodeNameInUse(f"a node named {self.node!r} is running; pick another --node")
        self._claim = db
        db.execute("DELETE FROM sessions WHERE node = %s", (self.node,))
        db.execute(
            "INSERT INTO nodes (name, seen, started) VALUES (%s, now(), now())"
            " ON CONFLICT (name) DO UPDATE SET seen = now(), started = now()",
            (self.node,),
        )

    def heartbeat(self) -> None:
        """This node is alive (``nodes.seen``)."""
        with self._pool.connection() as db:
            db.execute("UPDATE nodes SET seen = now() WHERE name = %s", (self.node,))

    def leave(self) -> None:
        """Shutting down: delete this node's sessions and give up its name."""
        try:
            with self._pool.connection() as db:
                db.execute("DELETE FROM sessions WHERE node = %s", (self.node,))
        except psycopg.Error as exc:
            log.warning("could not clear this node's sessions: %s", exc)
        if self._claim is not None:
            self._claim.close()

    # --- sessions -------------------------------------------------------------

    def bind(self, user_key: str, conn_id: int) -> int | None:
        """Log `user_key` in here: the table first (raises `psycopg.Error`,
        and then nothing changed), then this node. A session it replaced on
        another node is told to end; one here is returned, as on one node."""
        with self._pool.connection() as db:
            row = db.execute(
                "WITH old AS (SELECT node, conn_id FROM sessions WHERE user_key = %s)"
                " INSERT INTO sessions (user_key, node, conn_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (user_key) DO UPDATE"
                " SET node = EXCLUDED.node, conn_id = EXCLUDED.conn_id, since = now()"
                " RETURNING (SELECT node FROM old), (SELECT conn_id FROM old)",
                (user_key, user_key, self.node, conn_id),
            ).fetchone()
        old_node, old_conn = row if row else (None, None)
        if old_node is not None and old_conn is not None and old_node != self.node:
            self._tell(old_node, user_key, old_conn)
        return super().bind(user_key, conn_id)

    def unbind(self, user_key: str, conn_id: int) -> None:
        """Log out here and in the table (a failure is left to `reconcile`)."""
        super().unbind(user_key, conn_id)
        try:
            with self._pool.connection() as db:
                db.execute(
                    "DELETE FROM sessions WHERE user_key = %s AND node = %s AND conn_id = %s",
                    (user_key, self.node, conn_id),
                )
        except psycopg.Error as exc:
            log.warning("logout of %s not recorded, the next check will: %s", user_key, exc)

    def online(self) -> set[str]:
        """Users logged in on any live node (raises `psycopg.Error`)."""
        with self._pool.connection() as db:
            rows = db.execute(
                "SELECT s.user_key FROM sessions s JOIN nodes n ON n.name = s.node"
                " WHERE n.seen > now() - make_interval(secs => %s)",
                (limits.NODE_ALIVE_SECONDS,),
            ).fetchall()
        return {r[0] for r in rows} | super().online()

    def tell_elsewhere(self, user_keys: list[str], event: GroupChange) -> None:
        """Publish `event` for those of `user_keys` on other nodes (never blocks)."""
        self._broadcast(user_keys, event)

    def end_replaced(self, user_key: str, conn_id: int) -> None:
        """Another node took `user_key` over from our `conn_id`: end it."""
        if self.conn_of(user_key) == conn_id:
            super().unbind(user_key, conn_id)
            self._replaced(conn_id)

    def reconcile(self) -> None:
        """Make this node's sessions and its rows agree (see the module doc)."""
        with self._pool.connection() as db:
            rows = dict(
                db.execute(
                    "SELECT user_key, conn_id FROM sessions WHERE node = %s", (self.node,)
                ).fetchall()
            )
            for user_key, conn_id in list(self._conn_of.items()):
                if rows.get(user_key) != conn_id:
                    log.info("%s logged in elsewhere: ending its session here", user_key)
                    self.end_replaced(user_key, conn_id)
            stale = [k for k, c in rows.items() if self._conn_of.get(k) != c]
            if stale:
                db.execute(
                    "DELETE FROM sessions WHERE node = %s AND user_key = ANY(%s)",
                    (self.node, stale),
                )
