"""Durable chat data in PostgreSQL, shared by every node of a cluster: the
same `Store` as the embedded SQLite one (reactor/chat/store.py), plus the
cluster's tables (nodes and sessions, used by reactor/cluster/presence.py).

Owns: this node's write connection, its open transaction (one epoch, as in
SQLite: group commit), and the numbering of messages at commit
under the order lock (reactor/cluster/orderlock.py). Must not: take the
server's locks (every method is called under the ``storage`` lock key) or
touch sockets. The tables are reactor/cluster/pgschema.py's.

Messages are numbered when their epoch commits, not when written: the
commit takes ``cluster:order``, asks the sequence for as many ids as it has
messages, inserts them and commits, so ids follow commit order across
nodes. Until then a message has a provisional id below zero; `final_ids`
gives the real one to the `ok` of its `/send`. Names are claimed in one
table (`names`) with ON CONFLICT DO NOTHING, so two nodes registering the
same name at once give one `name_taken`, never a failed transaction.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import psycopg

from reactor.chat.store import Delivery, Group, User, by_group
from reactor.cluster.orderlock import OrderLock
from reactor.cluster.pgschema import MSG_COLS, ORDER_KEY, connect, migrate
from reactor.errors import ChatError
from reactor.protocol import Message
from reactor.stats import LockStats
from reactor.sync.instrument import LockHooks

log = logging.getLogger("reactor.cluster.pgstore")

_INSERT = (
    "INSERT INTO messages (id, sender, sender_id, to_user, to_name, group_id, group_name,"
    " text, ts, recipients, notice) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
#: Final ids kept for this many epochs after their commit, for the workers
#: whose epochs another worker committed.
_KEPT_EPOCHS = 256


@dataclass
class _Pending:
    """A message written in the open epoch, numbered at commit."""

    provisional: int
    sender: User
    to: User | None
    group: Group | None
    text: str
    ts: float
    recipients: tuple[str, ...]
    notice: bool


class PgStorage:
    """The chat database on a PostgreSQL server (a `Store`). Not
    thread-safe: hold the ``storage`` lock key."""

    Error: type[Exception] = psycopg.Error

    def __init__(self, url: str, hooks: LockHooks) -> None:
        self.path = url
        self._url = url
        self.order = OrderLock(hooks)
        migrate(url)
        self._db = connect(url)
        # Invariant: _in_txn is True exactly while a BEGIN is not ended;
        # _pending holds the open epoch's messages in the order written;
        # _late_adds the members added after some of them (index into it).
        self._in_txn = False
        self._pending: list[_Pending] = []
        self._late_adds: list[tuple[int, int, int]] = []
        self._provisional = 0
        self._final: OrderedDict[int, dict[int, int]] = OrderedDict()
        self._addresses: dict[str, User] = {}
        self.epoch = 1
        self.committed_epoch = 0
        self.failed: set[int] = set()

    # --- connection and transaction -------------------------------------------

    def _conn(self) -> psycopg.Connection[Any]:
        if self._db.closed:
            log.warning("reconnecting to PostgreSQL")
            self._db = connect(self._url)
        return self._db

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> psycopg.Cursor[Any]:
        """Run a statement; one that fails inside the open transaction
        fails its whole epoch (PostgreSQL has aborted it)."""
        try:
            return self._conn().execute(sql, params)
        except psycopg.Error:
            if self._in_txn:
                self._fail()
            raise

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> psycopg.Cursor[Any]:
        if not self._in_txn:
            self._run("BEGIN")
            self._in_txn = True
        return self._run(sql, params)

    def _fail(self) -> None:
        if not self._db.closed:
            try:
                self._db.execute("ROLLBACK")
            except psycopg.Error:
                self._db.close()  # reconnect next time
        if self.order.owner is not None:
            self.order.released()
        self._in_txn = False
        self._pending = []
        self._late_adds = []
        self._addresses.clear()
        self.failed.add(self.epoch)
        self.epoch += 1

    def commit(self) -> list[Delivery]:
        """Number the epoch's messages under ``cluster:order``, insert them,
        commit; return them in id order. Raises `psycopg.Error` after rolling
        the epoch back (it is in `failed`)."""
        if not self._in_txn:
            self.committed_epoch = self.epoch
            self.epoch += 1
            return []
        done: list[Delivery] = []
        try:
            if self._pending:
                done = self._number_and_insert()
            self._conn().execute("COMMIT")
        except psycopg.Error:
            self._fail()
            raise
        if self.order.owner is not None:
            self.order.released()
        self._in_txn = False
        self._pending = []
        self._late_adds = []
        self.committed_epoch = self.epoch
        self.epoch += 1
        return done

    def _number_and_insert(self) -> list[Delivery]:
        db = self._conn()
        n = len(self._pending)
        last: int | None = None

        def try_take() -> bool:
            nonlocal last
            row = db.execute(
                "SELECT CASE WHEN pg_try_advisory_xact_lock(%s)"
                " THEN setval('message_ids', nextval('message_ids') + %s - 1) END",
                (ORDER_KEY, n),
            ).fetchone()
            last = row[0] if row else None
            return last is not None

        def take() -> None:
            nonlocal last
            db.execute("SELECT pg_advisory_xact_lock(%s)", (ORDER_KEY,))
            row = db.execute(
                "SELECT setval('message_ids', nextval('message_ids') + %s - 1)", (n,)
            ).fetchone()
            last = row[0] if row else None

        self.order.acquire(try_take, take)
        assert last is not None
        first = last - n + 1
        ids = {p.provisional: first + i for i, p in enumerate(self._pending)}
        rows = []
        done = []
        for p in self._pending:
            msg_id = ids[p.provisional]
            to_name = p.to.name if p.to else None
            group_name = p.group.name if p.group else None
            rows.append((
                msg_id, p.sender.name, p.sender.id, p.to.id if p.to else None, to_name,
                p.group.id if p.group else None, group_name, p.text, p.ts, list(p.recipients),
                p.notice,
            ))  # fmt: skip
            message = Message(msg_id, p.sender.name, to_name, group_name, p.text, p.ts, p.notice)
            done.append(Delivery(message, p.recipients))
        with db.cursor() as cur:
            cur.executemany(_INSERT, rows)
            for group_id, user_id, before in self._late_adds:
                # Added after `before` of this epoch's messages: those are not theirs.
                cur.execute(
                    "UPDATE members SET joined_after = %s WHERE group_id = %s AND user_id = %s",
                    (first + before - 1, group_id, user_id),
                )
        self._final[self.epoch] = ids
        while len(self._final) > _KEPT_EPOCHS:
            self._final.popitem(last=False)
        return done

    def final_ids(self, epochs: set[int]) -> dict[int, int]:
        """Provisional → final ids of the committed messages of `epochs`."""
        out: dict[int, int] = {}
        for e in epochs:
            out.update(self._final.get(e, {}))
        return out

    def lock_statistics(self) -> list[LockStats]:
        """``cluster:order``'s counters, as this node saw them."""
        return [self.order.statistics()]

    @property
    def committed_max_id(self) -> int:
        """The highest message id any node committed."""
        return self._one("SELECT COALESCE(MAX(id), 0) FROM messages")

    def close(self) -> None:
        """Commit what is open and close the connection."""
        try:
            if self._in_txn:
                self.commit()
        finally:
            self._db.close()

    # --- users -----------------------------------------------------------------

    def user(self, name: str) -> User | None:
        """The user called `name` (any case), or None."""
        row = self._run(
            "SELECT id, name, pwhash, cursor FROM users WHERE key = %s", (name.lower(),)
        ).fetchone()
        return User(*row) if row else None

    def address(self, name: str) -> User | None:
        """The user called `name` as a message's address, remembered."""
        key = name.lower()
        user = self._addresses.get(key)
        if user is None:
            found = self.user(name)
            if found is None:
                return None
            user = self._addresses[key] = User(found.id, found.name, None, 0)
        return user

    def name_taken(self, name: str) -> bool:
        """True if a user or a group already has `name`."""
        return bool(self._one("SELECT count(*) FROM names WHERE key = %s", (name.lower(),)))

    def _claim(self, name: str) -> None:
        row = self._write(
            "INSERT INTO names VALUES (%s) ON CONFLICT DO NOTHING RETURNING key", (name.lower(),)
        ).fetchone()
        if row is None:
            raise ChatError("name_taken", f"{name} is already taken")

    def create_user(self, name: str, pwhash: str | None) -> int:
        """Add a user; return the epoch (`ChatError` name_taken if claimed)."""
        self._claim(name)
        self._write(
            "INSERT INTO users (name, key, pwhash, created) VALUES (%s, %s, %s, %s)",
            (name, name.lower(), pwhash, time.time()),
        )
        return self.epoch

    def user_names(self) -> list[str]:
        """Every user's name, in name order."""
        return [r[0] for r in self._run("SELECT name FROM users ORDER BY key")]

    def set_cursor(self, user_id: int, message_id: int) -> int:
        """Raise the user's delivery cursor to `message_id`."""
        self._write(
            "UPDATE users SET cursor = %s WHERE id = %s AND cursor < %s",
            (message_id, user_id, message_id),
        )
        return self.epoch

    # --- groups ----------------------------------------------------------------

    def group(self, name: str) -> Group | None:
        """The group called `name` (any case), or None."""
        row = self._run(
            "SELECT id, name, open FROM groups WHERE key = %s", (name.lower(),)
        ).fetchone()
        return Group(*row) if row else None

    def create_group(self, name: str, open: bool = False) -> tuple[Group, int]:
        """Add an empty group (`open`: anyone may join); return it and the epoch."""
        self._claim(name)
        row = self._write(
            "INSERT INTO groups (name, key, created, open) VALUES (%s, %s, %s, %s) RETURNING id",
            (name, name.lower(), time.time(), open),
        ).fetchone()
        assert row is not None
        return Group(row[0], name, open), self.epoch

    def delete_group(self, group: Group) -> int:
        """Delete `group`, its memberships and its name."""
        self._write("DELETE FROM members WHERE group_id = %s", (group.id,))
        self._write("DELETE FROM groups WHERE id = %s", (group.id,))
        self._write("DELETE FROM names WHERE key = %s", (group.name.lower(),))
        return self.epoch

    def members(self, group: Group) -> list[tuple[int, str]]:
        """(user id, name) of each member, in name order."""
        return [
            (r[0], r[1])
            for r in self._run(
                "SELECT u.id, u.name FROM members m JOIN users u ON u.id = m.user_id"
                " WHERE m.group_id = %s ORDER BY u.key",
                (group.id,),
            )
        ]

    def is_member(self, group: Group, user_id: int) -> bool:
        """True if user `user_id` is a member of `group`."""
        return bool(
            self._one(
                "SELECT count(*) FROM members WHERE group_id = %s AND user_id = %s",
                (group.id, user_id),
            )
        )

    def add_member(self, group: Group, user_id: int) -> int:
        """Add a member who sees the group's messages stored from now on."""
        added = self._write(
            "INSERT INTO members (group_id, user_id, joined_after)"
            " VALUES (%s, %s, (SELECT COALESCE(MAX(id), 0) FROM messages))"
            " ON CONFLICT DO NOTHING RETURNING 1",
            (group.id, user_id),
        ).fetchone()
        if added and self._pending:
            self._late_adds.append((group.id, user_id, len(self._pending)))
        return self.epoch

    def remove_member(self, group: Group, user_id: int) -> int:
        """Take user `user_id` out of `group`."""
        self._write("DELETE FROM members WHERE group_id = %s AND user_id = %s", (group.id, user_id))
        return self.epoch

    def user_groups(self, user_id: int) -> list[tuple[str, list[str]]]:
        """(group name, member names) of each group of the user, in name order."""
        rows = self._run(
            "SELECT g.name, u.name FROM members mine"
            " JOIN groups g ON g.id = mine.group_id"
            " JOIN members m ON m.group_id = g.id JOIN users u ON u.id = m.user_id"
            " WHERE mine.user_id = %s ORDER BY g.key, u.key",
            (user_id,),
        )
        return by_group(rows)

    def open_groups(self) -> list[tuple[str, list[str]]]:
        """(group name, member names) of every open group, in name order."""
        rows = self._run(
            "SELECT g.name, u.name FROM groups g"
            " JOIN members m ON m.group_id = g.id JOIN users u ON u.id = m.user_id"
            " WHERE g.open ORDER BY g.key, u.key"
        )
        return by_group(rows)

    # --- messages ----------------------------------------------------------------

    def add_message(
        self,
        sender: User,
        text: str,
        *,
        to: User | None = None,
        group: Group | None = None,
        recipients: tuple[str, ...] = (),
        notice: bool = False,
    ) -> tuple[Message, int]:
        """Keep a message for the commit, which numbers and inserts it; its
        id is provisional (below zero) until then."""
        if not self._in_txn:
            self._run("BEGIN")
            self._in_txn = True
        self._provisional -= 1
        ts = time.time()
        self._pending.append(
            _Pending(self._provisional, sender, to, group, text, ts, recipients, notice)
        )
        msg = Message(
            self._provisional, sender.name, to.name if to else None,
            group.name if group else None, text, ts, notice,
        )  # fmt: skip
        return msg, self.epoch

    def private_history(self, a: User, b: User, limit: int) -> list[Message]:
        """The last `limit` messages between `a` and `b`, oldest first."""
        rows = self._run(
            f"SELECT {MSG_COLS} FROM ("
            f" SELECT * FROM messages WHERE to_user = %s AND sender_id = %s"
            f" UNION ALL"
            f" SELECT * FROM messages WHERE to_user = %s AND sender_id = %s AND %s != %s"
            f") AS both_ways ORDER BY id DESC LIMIT %s",
            (a.id, b.id, b.id, a.id, a.id, b.id, limit),
        ).fetchall()
        return [Message(*r) for r in reversed(rows)]

    def group_history(self, group: Group, limit: int) -> list[Message]:
        """The last `limit` messages of `group`, oldest first."""
        rows = self._run(
            f"SELECT {MSG_COLS} FROM messages WHERE group_id = %s ORDER BY id DESC LIMIT %s",
            (group.id, limit),
        ).fetchall()
        return [Message(*r) for r in reversed(rows)]

    def unread(self, user: User, upto: int) -> list[Message]:
        """Messages to `user` above its cursor and at most `upto`, oldest first."""
        cols = ", ".join("m." + c.strip() for c in MSG_COLS.split(","))
        rows = self._run(
            f"SELECT {MSG_COLS} FROM messages WHERE to_user = %s AND id > %s AND id <= %s"
            f" UNION ALL"
            f" SELECT {cols} FROM members gm JOIN messages m ON m.group_id = gm.group_id"
            f" WHERE gm.user_id = %s AND m.id > %s AND m.id > gm.joined_after AND m.id <= %s"
            f" ORDER BY 1",
            (user.id, user.cursor, upto, user.id, user.cursor, upto),
        ).fetchall()
        return [Message(*r) for r in rows]

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        row = self._run(sql, params).fetchone()
        assert row is not None
        return int(row[0])
