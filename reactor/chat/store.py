"""What the chat side asks of a database: the `Store` interface, shared by
the embedded SQLite store (reactor/chat/storage.py) and the cluster's
PostgreSQL store (reactor/cluster/pgstore.py), and the records they return.

Owns: `Store`, `User`, `Group`, `Delivery`, `by_group`. Must not: import a database
driver or take locks. Every method is called under the ``storage`` lock key
(reactor/sync/locks.py); that is the caller's duty.

Writes join one open transaction numbered by an *epoch*; `commit()` commits
the epoch whole (group commit) and returns its messages, now durable, in id
order. A store may number a message only when it commits (the cluster
does, so that ids follow commit order across nodes): until then
`add_message` gives a provisional id below zero, and `final_ids` maps it
to the real one once the epoch is committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from reactor.protocol import Message
from reactor.stats import LockStats


@dataclass(frozen=True)
class User:
    """A row of ``users``: `cursor` is the highest message id acknowledged."""

    id: int
    name: str
    pwhash: str | None
    cursor: int


@dataclass(frozen=True)
class Group:
    """A row of ``groups``."""

    id: int
    name: str
    #: Made by IRC's JOIN or `/join`: anyone may join. Else invite-only
    #: (made by `/group`): members add members.
    open: bool = False


@dataclass(frozen=True)
class Delivery:
    """A message and the user keys it goes to, as decided when it was stored."""

    message: Message
    recipients: tuple[str, ...]


class Store(Protocol):
    """The chat database. Not thread-safe: hold the ``storage`` lock key."""

    #: What the database raises when it fails (the epoch is then rolled back).
    Error: type[Exception]
    #: The open epoch, the last committed one, and those rolled back.
    epoch: int
    committed_epoch: int
    failed: set[int]

    @property
    def committed_max_id(self) -> int:
        """The highest message id committed (by anyone)."""

    def commit(self) -> list[Delivery]:
        """Commit the open epoch; return its messages in id order. Raises
        `Error` after rolling the epoch back (it is then in `failed`)."""

    def final_ids(self, epochs: set[int]) -> dict[int, int]:
        """Provisional message id → final id, for messages of `epochs` that
        were numbered at commit (empty for a store that numbers at once)."""

    def lock_statistics(self) -> list[LockStats]:
        """Counters of the locks the store takes itself (a cluster's order lock)."""

    def close(self) -> None:
        """Commit what is open and close the database."""

    def user(self, name: str) -> User | None:
        """The user called `name` (any case), or None."""

    def address(self, name: str) -> User | None:
        """The user called `name` as a message's address (id and name only)."""

    def name_taken(self, name: str) -> bool:
        """True if a user or a group already has `name` (one name space)."""

    def create_user(self, name: str, pwhash: str | None) -> int:
        """Add a user; return the epoch. Raises `ChatError` name_taken if the
        name was taken meanwhile (by another node)."""

    def user_names(self) -> list[str]:
        """Every user's name, in name order."""

    def set_cursor(self, user_id: int, message_id: int) -> int:
        """Raise the user's delivery cursor to `message_id` (never lowers it)."""

    def group(self, name: str) -> Group | None:
        """The group called `name` (any case), or None."""

    def create_group(self, name: str, open: bool = False) -> tuple[Group, int]:
        """Add an empty group; return it and the epoch (`ChatError` name_taken
        as for `create_user`)."""

    def delete_group(self, group: Group) -> int:
        """Delete `group` and its memberships; return the epoch."""

    def members(self, group: Group) -> list[tuple[int, str]]:
        """(user id, name) of each member, in name order."""

    def is_member(self, group: Group, user_id: int) -> bool:
        """True if user `user_id` is a member of `group`."""

    def add_member(self, group: Group, user_id: int) -> int:
        """Add a member who sees the group's messages stored from now on."""

    def remove_member(self, group: Group, user_id: int) -> int:
        """Take user `user_id` out of `group`; return the epoch."""

    def user_groups(self, user_id: int) -> list[tuple[str, list[str]]]:
        """(group name, member names) of each group of the user, in name order."""

    def open_groups(self) -> list[tuple[str, list[str]]]:
        """(group name, member names) of every open group, in name order."""

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

    def private_history(self, a: User, b: User, limit: int) -> list[Message]:
        """The last `limit` messages between `a` and `b`, oldest first."""

    def group_history(self, group: Group, limit: int) -> list[Message]:
        """The last `limit` messages of `group`, oldest first."""

    def unread(self, user: User, upto: int) -> list[Message]:
        """Messages to `user` above its cursor and at most `upto`, oldest first."""


def by_group(rows: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(group name, member name) rows, grouped by group in their order, as
    (group name, member names) pairs: the answer of `user_groups` and
    `open_groups` from their SQL."""
    out: dict[str, list[str]] = {}
    for group_name, member in rows:
        out.setdefault(group_name, []).append(member)
    return list(out.items())
