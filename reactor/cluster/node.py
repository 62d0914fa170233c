"""One node of a cluster: the PostgreSQL store, the presence, the feed and
the Redis bus, put together for reactor/server.py.

Owns: the node's name, its connection pool (the feed's and the presence's
reads and writes; the store keeps one connection of its own for its
transaction), the ``cluster-tick`` thread (every CLUSTER_POLL_SECONDS: read
others' commits, reconcile sessions, beat), and the `/stats` record of the
cluster. Must not: run command logic or touch client sockets; it reaches
the chat side only through the committer and the ``sessions`` lock key.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from reactor import limits
from reactor.actions import Action, Close, Emit
from reactor.chat.commit import Committer
from reactor.cluster.bus import Bus
from reactor.cluster.feed import ClusterFeed
from reactor.cluster.pgstore import PgStorage
from reactor.cluster.presence import ClusterSessions
from reactor.errors import StoreUnavailable
from reactor.kinds import ByeReason
from reactor.protocol import GroupChange
from reactor.stats import ClusterStatistics
from reactor.sync.instrument import LockHooks
from reactor.sync.locks import SESSIONS, Locking

log = logging.getLogger("reactor.cluster.node")


def channel_prefix(store: str) -> str:
    """The bus prefix of the cluster on `store`: its server and database."""
    info = conninfo_to_dict(store)
    host, port, db = info.get("host", "localhost"), info.get("port", 5432), info.get("dbname")
    return f"reactor-chat:{host}:{port}/{db}:"


def default_node_name(port: int) -> str:
    """Host and port (or process id, for port 0): unique on one network."""
    return f"{socket.gethostname()}:{port or os.getpid()}"


class ClusterNode:
    """A node's cluster parts; `open` after the I/O model is built, `close` last."""

    def __init__(
        self,
        store: str,
        bus: str,
        node: str,
        hooks: LockHooks,
        post: Callable[[Sequence[Action]], None],
    ) -> None:
        """Connects to PostgreSQL; raises `StoreUnavailable` if it cannot."""
        self.name = node
        self._url = store
        self._post = post
        self.pool: ConnectionPool[Any] = ConnectionPool(
            store, min_size=2, max_size=4, kwargs={"autocommit": True},
            timeout=limits.PG_CONNECT_SECONDS, name=f"node-{node}", open=False,
        )  # fmt: skip
        try:
            self.storage = PgStorage(store, hooks)
            self.pool.open(wait=True, timeout=limits.PG_CONNECT_SECONDS)
        except (psycopg.Error, PoolTimeout) as exc:
            self.pool.close()
            raise StoreUnavailable(f"cannot use PostgreSQL at {store}: {exc}") from exc
        self.bus = Bus(
            bus, channel_prefix(store), node, on_commit=self._heard_commit,
            on_replace=self._heard_replace, on_event=self._heard_event,
            on_connect=self._catch_up_all,
        )  # fmt: skip
        self.sessions = ClusterSessions(
            self.pool, node, self.bus.tell, self._end, self.bus.broadcast
        )
        self.feed = ClusterFeed(self.pool, self.storage.committed_max_id, self.bus.announce)
        self._committer: Committer | None = None
        self._locks: Locking | None = None
        self._stop = threading.Event()
        self._tick = threading.Thread(target=self._ticking, name="cluster-tick", daemon=True)
        self.polls = 0

    def open(self, locks: Locking, committer: Committer) -> None:
        """Claim the node's name (raises `NodeNameInUse`), start the bus and the tick."""
        self._locks, self._committer = locks, committer
        try:
            self.sessions.claim(self._url)
            self.bus.check()
        except (psycopg.Error, redis.RedisError) as exc:
            raise StoreUnavailable(f"cannot join the cluster: {exc}") from exc
        self.bus.start()
        self._tick.start()
        log.info("cluster node %s on %s", self.name, channel_prefix(self._url).rstrip(":"))

    def quiet(self) -> None:
        """Stop the tick and the bus: nothing from other nodes arrives after
        this (the I/O model is about to close). Again is a no-op."""
        self._stop.set()
        if self._tick.is_alive():
            self._tick.join(timeout=5)
        self.bus.stop()

    def close(self) -> None:
        """After `quiet` and the last commit: leave the cluster, close the pool."""
        self.quiet()
        self.sessions.leave()
        self.pool.close()

    def statistics(self) -> ClusterStatistics:
        """The node's part of `/stats`."""
        bus = self.bus.statistics()
        return ClusterStatistics(
            node=self.name, watermark=self.feed.watermark, bus_connected=bus.connected,
            published=bus.published, received=bus.received, bus_reconnects=bus.reconnects,
            polls=self.polls, catch_up_reads=self.feed.reads, caught_up=self.feed.read_rows,
        )  # fmt: skip

    # --- what the bus and the tick do -----------------------------------------------

    def _end(self, conn_id: int) -> None:
        self._post([Close(conn_id, ByeReason.REPLACED)])

    def _heard_commit(self, top: int) -> None:
        if top > self.feed.watermark:  # a stale read: catch_up decides under ``delivery``
            self._catch_up()

    def _heard_replace(self, user_key: str, conn_id: int) -> None:
        assert self._locks is not None
        try:
            with self._locks.hold(SESSIONS):
                self.sessions.end_replaced(user_key, conn_id)
        except Exception:
            log.exception("ending %s's replaced session failed", user_key)

    def _heard_event(self, user_keys: list[str], change: GroupChange) -> None:
        assert self._locks is not None
        with self._locks.hold(SESSIONS):
            conns = [c for k in user_keys if (c := self.sessions.conn_of(k)) is not None]
        if conns:
            self._post([Emit(c, change) for c in conns])

    def _catch_up(self) -> None:
        assert self._committer is not None
        try:
            self._committer.catch_up()
        except psycopg.Error as exc:
            log.warning("cannot read others' commits now: %s", exc)
        except Exception:
            log.exception("catching up failed")

    def _catch_up_all(self) -> None:
        self._catch_up()
        self._reconcile()

    def _reconcile(self) -> None:
        assert self._locks is not None
        try:
            with self._locks.hold(SESSIONS):
                self.sessions.reconcile()
        except psycopg.Error as exc:
            log.warning("cannot check sessions now: %s", exc)
        except Exception:
            log.exception("checking sessions failed")

    def _ticking(self) -> None:
        beat = 0.0
        while not self._stop.wait(limits.CLUSTER_POLL_SECONDS):
            self.polls += 1
            self._catch_up_all()
            now = time.monotonic()
            if now - beat >= limits.HEARTBEAT_SECONDS:
                try:
                    self.sessions.heartbeat()
                    beat = now
                except psycopg.Error as exc:
                    log.warning("cannot beat: %s", exc)
