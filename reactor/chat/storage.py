"""Durable chat data in SQLite: users, groups and members, messages, and
per-user delivery cursors; the open write transaction and its commit.

Owns: the one `sqlite3` connection (its schema is reactor/chat/schema.py's), and the list
of messages written in the open transaction (handed out at commit, in id
order). Must not: take locks, touch sockets or know about connections.
Every method is called under the ``storage`` lock key (reactor/sync/locks.py);
that is the caller's duty, the lock is what makes this object safe to share.

Writes go into one open transaction, numbered by an *epoch*. A write returns
the epoch it joined; `commit()` commits the whole epoch at once (group
commit: one transaction for the writes of many commands) and reports the
messages that became durable. If SQLite fails, the epoch is rolled back
entire and recorded in `failed`, so every command that wrote into it learns
its write was lost and answers `internal`: nothing is acknowledged unstored.
Durability: WAL with synchronous=NORMAL, so a commit survives kill -9; a
power cut may lose the last commits. The log is checkpointed in a thread of
its own (reactor/chat/checkpoint.py).
"""

from __future__ import annotations

import sqlite3
import time

from reactor import limits
from reactor.chat.schema import migrate
from reactor.chat.store import Delivery, Group, User, by_group
from reactor.protocol import Message
from reactor.stats import LockStats

_MSG_COLS = "id, sender, to_name, group_name, text, ts, notice"

#: Parameters of one SQL statement.
_Params = tuple[object, ...]
#: A row of `_MSG_COLS`, the fields of a `Message` in order.
_MessageRow = tuple[int, str, str | None, str | None, str, float, int]


def _message(row: _MessageRow) -> Message:
    """A row of `_MSG_COLS` as a `Message`."""
    return Message(*row[:6], notice=bool(row[6]))


class Storage:
    """The chat database in one SQLite file (a `Store`). Not thread-safe:
    hold the ``storage`` lock key."""

    Error: type[Exception] = sqlite3.Error

    def __init__(self, path: str, *, autocheckpoint: bool = True) -> None:
        """`autocheckpoint=False`: a `Checkpointer` does it, never a commit."""
        self.path = path
        self._db = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False,
            timeout=limits.SQLITE_BUSY_SECONDS,
        )  # fmt: skip
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute(f"PRAGMA wal_autocheckpoint={1000 if autocheckpoint else 0}")
        migrate(self._db, path)
        # Invariant: _pending holds, in id order, the messages written in the
        # open epoch; _in_txn is True exactly while a BEGIN is not committed.
        self._pending: list[Delivery] = []
        self._in_txn = False
        # Users by key as a message's address (id and name only). Users are
        # never renamed or deleted, so an entry stays true, except one read
        # inside a transaction that then rolls back: `_fail` empties it.
        self._addresses: dict[str, User] = {}
        self.epoch = 1
        self.committed_epoch = 0
        self.failed: set[int] = set()
        self.committed_max_id = self._one("SELECT COALESCE(MAX(id), 0) FROM messages")

    def final_ids(self, epochs: set[int]) -> dict[int, int]:
        """Empty: a message's id is final when it is written."""
        return {}

    def lock_statistics(self) -> list[LockStats]:
        """None: one process owns the file (reactor/chat/owner.py)."""
        return []

    # --- transaction ---------------------------------------------------------

    def _write(self, sql: str, params: _Params = ()) -> sqlite3.Cursor:
        if not self._in_txn:
            self._db.execute("BEGIN")
            self._in_txn = True
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error:
            self._fail()
            raise

    def _fail(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._in_txn = False
        self._pending = []
        self._addresses.clear()
        self.failed.add(self.epoch)
        self.epoch += 1

    def commit(self) -> list[Delivery]:
        """Commit the open epoch; return its messages, now durable, in id order.

        Raises `sqlite3.Error` after rolling the epoch back (it is in `failed`).
        """
        if not self._in_txn:
            self.committed_epoch = self.epoch
            self.epoch += 1
            return []
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._fail()
            raise
        done, self._pending = self._pending, []
        self._in_txn = False
        self.committed_epoch = self.epoch
        self.epoch += 1
        if done:
            self.committed_max_id = done[-1].message.id
        return done

    def close(self) -> None:
        """Commit what is open and close the database."""
        if self._in_txn:
            self.commit()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    # --- users ---------------------------------------------------------------

    def user(self, name: str) -> User | None:
        """The user called `name` (any case), or None."""
        row: tuple[int, str, str | None, int] | None = self._db.execute(
            "SELECT id, name, pwhash, cursor FROM users WHERE key = ?", (name.lower(),)
        ).fetchone()
        return User(*row) if row else None

    def address(self, name: str) -> User | None:
        """The user called `name` (any case) as a message's address: its id
        and name, without password hash or cursor; None if there is none.
        Remembered, so a conversation costs one query, not one a message."""
        key = name.lower()
        user = self._addresses.get(key)
        if user is None:
            found = self.user(name)
            if found is None:
                return None
            user = self._addresses[key] = User(found.id, found.name, None, 0)
        return user

    def name_taken(self, name: str) -> bool:
        """True if a user or a group already has `name` (one name space)."""
        key = name.lower()
        return bool(
            self._one("SELECT EXISTS(SELECT 1 FROM users WHERE key = ?)", (key,))
            or self._one("SELECT EXISTS(SELECT 1 FROM groups WHERE key = ?)", (key,))
        )

    def create_user(self, name: str, pwhash: str | None) -> int:
        """Add a user (`pwhash` None: an --auth none account); return the epoch."""
        self._write(
            "INSERT INTO users (name, key, pwhash, created) VALUES (?, ?, ?, ?)",
            (name, name.lower(), pwhash, time.time()),
        )
        return self.epoch

    def user_names(self) -> list[str]:
        """Every user's name, in name order."""
        return [r[0] for r in self._db.execute("SELECT name FROM users ORDER BY key")]

    def set_cursor(self, user_id: int, message_id: int) -> int:
        """Raise the user's delivery cursor to `message_id` (never lowers it)."""
        self._write(
            "UPDATE users SET cursor = ? WHERE id = ? AND cursor < ?",
            (message_id, user_id, message_id),
        )
        return self.epoch

    # --- groups --------------------------------------------------------------

    def group(self, name: str) -> Group | None:
        """The group called `name` (any case), or None."""
        row: tuple[int, str, int] | None = self._db.execute(
            "SELECT id, name, open FROM groups WHERE key = ?", (name.lower(),)
        ).fetchone()
        return Group(row[0], row[1], bool(row[2])) if row else None

    def create_group(self, name: str, open: bool = False) -> tuple[Group, int]:
        """Add an empty group (`open`: anyone may join); return it and the epoch."""
        cur = self._write(
            "INSERT INTO groups (name, key, created, open) VALUES (?, ?, ?, ?)",
            (name, name.lower(), time.time(), int(open)),
        )
        return Group(_inserted_id(cur), name, open), self.epoch

    def delete_group(self, group: Group) -> int:
        """Delete `group` and its memberships; return the epoch."""
        self._write("DELETE FROM groups WHERE id = ?", (group.id,))
        return self.epoch

    def members(self, group: Group) -> list[tuple[int, str]]:
        """(user id, name) of each member, in name order."""
        rows: list[tuple[int, str]] = self._db.execute(
            "SELECT u.id, u.name FROM members m JOIN users u ON u.id = m.user_id"
            " WHERE m.group_id = ? ORDER BY u.key",
            (group.id,),
        ).fetchall()
        return rows

    def is_member(self, group: Group, user_id: int) -> bool:
        """True if user `user_id` is a member of `group`."""
        return bool(
            self._one(
                "SELECT EXISTS(SELECT 1 FROM members WHERE group_id = ? AND user_id = ?)",
                (group.id, user_id),
            )
        )

    def add_member(self, group: Group, user_id: int) -> int:
        """Add a member who sees the group's messages stored from now on."""
        self._write(
            "INSERT OR IGNORE INTO members (group_id, user_id, joined_after)"
            " VALUES (?, ?, (SELECT COALESCE(MAX(id), 0) FROM messages))",
            (group.id, user_id),
        )
        return self.epoch

    def remove_member(self, group: Group, user_id: int) -> int:
        """Take user `user_id` out of `group`; return the epoch."""
        self._write("DELETE FROM members WHERE group_id = ? AND user_id = ?", (group.id, user_id))
        return self.epoch

    def user_groups(self, user_id: int) -> list[tuple[str, list[str]]]:
        """(group name, member names) of each group of the user, in name order."""
        rows = self._db.execute(
            "SELECT g.name, u.name FROM members mine"
            " JOIN groups g ON g.id = mine.group_id"
            " JOIN members m ON m.group_id = g.id JOIN users u ON u.id = m.user_id"
            " WHERE mine.user_id = ? ORDER BY g.key, u.key",
            (user_id,),
        )
        return by_group(rows)

    def open_groups(self) -> list[tuple[str, list[str]]]:
        """(group name, member names) of every open group, in name order."""
        rows = self._db.execute(
            "SELECT g.name, u.name FROM groups g"
            " JOIN members m ON m.group_id = g.id JOIN users u ON u.id = m.user_id"
            " WHERE g.open = 1 ORDER BY g.key, u.key"
        )
        return by_group(rows)

    # --- messages --------------------------------------------------------------

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
        """Store a message (uncommitted) for `recipients` (user keys)."""
        ts = time.time()
        cur = self._write(
            "INSERT INTO messages (sender, sender_id, to_user, to_name, group_id,"
            " group_name, text, ts, notice) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sender.name,
                sender.id,
                to.id if to else None,
                to.name if to else None,
                group.id if group else None,
                group.name if group else None,
                text,
                ts,
                int(notice),
            ),
        )
        msg = Message(
            _inserted_id(cur),
            sender.name,
            to.name if to else None,
            group.name if group else None,
            text,
            ts,
            notice,
        )
        self._pending.append(Delivery(msg, recipients))
        return msg, self.epoch

    def private_history(self, a: User, b: User, limit: int) -> list[Message]:
        """The last `limit` messages between `a` and `b`, oldest first."""
        rows: list[_MessageRow] = self._db.execute(
            f"SELECT {_MSG_COLS} FROM ("
            f" SELECT * FROM messages WHERE to_user = ? AND sender_id = ?"
            f" UNION ALL"
            f" SELECT * FROM messages WHERE to_user = ? AND sender_id = ? AND ? != ?"
            f") ORDER BY id DESC LIMIT ?",
            (a.id, b.id, b.id, a.id, a.id, b.id, limit),
        ).fetchall()
        return [_message(r) for r in reversed(rows)]

    def group_history(self, group: Group, limit: int) -> list[Message]:
        """The last `limit` messages of `group`, oldest first."""
        rows: list[_MessageRow] = self._db.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE group_id = ? ORDER BY id DESC LIMIT ?",
            (group.id, limit),
        ).fetchall()
        return [_message(r) for r in reversed(rows)]

    def unread(self, user: User, upto: int) -> list[Message]:
        """Messages to `user` (private, or in its groups since joining) with
        ids above its cursor and at most `upto`, oldest first."""
        rows: list[_MessageRow] = self._db.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE to_user = ? AND id > ? AND id <= ?"
            f" UNION ALL"
            f" SELECT {', '.join('m.' + c.strip() for c in _MSG_COLS.split(','))}"
            f" FROM members gm JOIN messages m ON m.group_id = gm.group_id"
            f" WHERE gm.user_id = ? AND m.id > ? AND m.id > gm.joined_after AND m.id <= ?"
            f" ORDER BY 1",
            (user.id, user.cursor, upto, user.id, user.cursor, upto),
        ).fetchall()
        return [_message(r) for r in rows]

    def max_message_id(self) -> int:
        """Highest message id written, committed or not."""
        return self._one("SELECT COALESCE(MAX(id), 0) FROM messages")

    def _one(self, sql: str, params: _Params = ()) -> int:
        value: int = self._db.execute(sql, params).fetchone()[0]
        return value


def _inserted_id(cur: sqlite3.Cursor) -> int:
    # Set by the INSERT the cursor just ran; None only before any.
    assert cur.lastrowid is not None
    return cur.lastrowid
