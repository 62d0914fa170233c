"""The bus between nodes, on Redis pub/sub: notifications only, never data.

Owns: this node's two Redis connections (one publishes, one listens), the
channel names, the publisher and listener threads, and their counters.
Must not: take the server's locks or hold chat data: what a subscriber
misses (Redis restarted, the connection killed, a slow subscriber cut off)
it reads back from PostgreSQL, so Redis may lose anything.

Channels, under a prefix that names the cluster's database (so clusters
and test runs sharing a Redis never hear each other):
- ``<prefix>commits``: "a node committed up to id N" (payload: N);
- ``<prefix>node:<name>``: to one node, "end user U's session on your
  connection C" (payload: JSON ``{"user": U, "conn": C}``);
- ``<prefix>events``: a group's membership changed, for users on other
  nodes (payload: JSON ``{"from": node, "users": [...], "group": ...}``,
  the `GroupChange` fields). Not stored anywhere: like on one node, whoever
  misses it learns the same from the login reply and /groups.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from reactor import limits
from reactor.protocol import GroupChange

log = logging.getLogger("reactor.cluster.bus")


@dataclass(frozen=True)
class BusStatistics:
    """The bus as this node saw it since start."""

    connected: bool
    published: int
    received: int
    reconnects: int
    publish_failures: int


class Bus:
    """Publishes this node's news and listens for the others'."""

    def __init__(
        self,
        url: str,
        prefix: str,
        node: str,
        *,
        on_commit: Callable[[int], None],
        on_replace: Callable[[str, int], None],
        on_event: Callable[[list[str], GroupChange], None],
        on_connect: Callable[[], None],
    ) -> None:
        """`on_commit(id)`, `on_replace(user, conn)` and `on_connect()` (a
        (re)subscription: whatever was missed must be read back) run in the
        listener thread."""
        self._url = url
        self.commits = prefix + "commits"
        self.events = prefix + "events"
        self._node = node
        self._prefix = prefix
        self.mine = f"{prefix}node:{node}"
        self._client_name = f"reactor-chat:{node}"
        self._on_commit = on_commit
        self._on_replace = on_replace
        self._on_event = on_event
        self._on_connect = on_connect
        self._pub = self._redis()
        self._stop = threading.Event()
        # Guards _top and _notes, the publisher's queue: the newest commit
        # to announce (older ones are implied) and the notes to nodes.
        self._pending = threading.Condition(threading.Lock())
        self._top = 0
        self._notes: deque[tuple[str, str]] = deque()
        self._threads = [
            threading.Thread(target=self._publisher, name="bus-publish", daemon=True),
            threading.Thread(target=self._listener, name="bus-listen", daemon=True),
        ]
        # Counters, each written by one thread only.
        self.connected = False
        self.published = self.received = self.reconnects = self.publish_failures = 0

    def _redis(self) -> redis.Redis:
        return redis.Redis.from_url(
            self._url, client_name=self._client_name,
            socket_connect_timeout=limits.PG_CONNECT_SECONDS, socket_timeout=5,
        )  # fmt: skip

    def check(self) -> None:
        """Raise `redis.RedisError` if Redis does not answer now."""
        self._pub.ping()

    def start(self) -> None:
        """Start the publisher and the listener."""
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Stop both threads (the queue is dropped: notifications only)."""
        if self._stop.is_set():
            return
        self._stop.set()
        with self._pending:
            self._pending.notify()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=5)
        self._pub.close()

    def announce(self, top: int) -> None:
        """Tell the others this node committed up to `top` (never blocks)."""
        with self._pending:
            if top > self._top:
                self._top = top
                self._pending.notify()

    def tell(self, node: str, user_key: str, conn_id: int) -> None:
        """Ask `node` to end `user_key`'s session on its `conn_id` (never blocks)."""
        note = json.dumps({"user": user_key, "conn": conn_id})
        with self._pending:
            self._notes.append((f"{self._prefix}node:{node}", note))
            self._pending.notify()

    def broadcast(self, user_keys: list[str], event: GroupChange) -> None:
        """Send `event` to `user_keys` on the other nodes (never blocks)."""
        note = json.dumps({
            "from": self._node, "users": user_keys, "group": event.group, "by": event.by,
            "members": event.members, "added": event.added, "left": event.left,
            "reason": event.reason,
        })  # fmt: skip
        with self._pending:
            self._notes.append((self.events, note))
            self._pending.notify()

    def statistics(self) -> BusStatistics:
        """A snapshot of the counters."""
        return BusStatistics(
            self.connected, self.published, self.received, self.reconnects,
            self.publish_failures,
        )  # fmt: skip

    # --- threads -------------------------------------------------------------------

    def _publisher(self) -> None:
        sent = 0
        while not self._stop.is_set():
            with self._pending:
                while not self._stop.is_set() and self._top == sent and not self._notes:
                    self._pending.wait()
                top, notes = self._top, list(self._notes)
                self._notes.clear()
            try:
                for channel, note in notes:
                    self._pub.publish(channel, note)
                    self.published += 1
                if top != sent:
                    self._pub.publish(self.commits, str(top))
                    self.published += 1
                if self.publish_failures:
                    log.info("publishing to Redis again")
            except redis.RedisError as exc:
                # The others poll PostgreSQL meanwhile; a lost note is
                # caught by their next reconcile.
                if not self.publish_failures:
                    log.warning("cannot publish to Redis (others will poll): %s", exc)
                self.publish_failures += 1
                self._stop.wait(limits.BUS_RETRY_MAX_SECONDS)
            sent = top

    def _listener(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            client = self._redis()
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.commits, self.mine, self.events)
                if delay:
                    self.reconnects += 1
                    log.info("listening on Redis again")
                self.connected = True
                delay = 0.0
                self._on_connect()
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is not None and msg.get("type") == "message":
                        self.received += 1
                        self._handle(msg)
            except redis.RedisError as exc:
                if self.connected or not delay:
                    log.warning("lost Redis (polling PostgreSQL until it is back): %s", exc)
                self.connected = False
                self._stop.wait(delay)
                delay = min(max(delay * 2, 0.1), limits.BUS_RETRY_MAX_SECONDS)
            finally:
                pubsub.close()
                client.close()

    def _handle(self, msg: dict[str, Any]) -> None:
        channel = msg["channel"].decode()
        try:
            if channel == self.commits:
                self._on_commit(int(msg["data"]))
            elif channel == self.events:
                note = json.loads(msg["data"])
                if note["from"] != self._node:
                    change = GroupChange(
                        str(note["group"]), str(note["by"]), tuple(note["members"]),
                        tuple(note["added"]), note["left"], str(note.get("reason", "")),
                    )  # fmt: skip
                    self._on_event([str(u) for u in note["users"]], change)
            else:
                note = json.loads(msg["data"])
                self._on_replace(str(note["user"]), int(note["conn"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a bad bus message on %s: %s", channel, exc)
