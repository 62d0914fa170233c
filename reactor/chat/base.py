"""What every command handler shares: the chat state it runs against and
the lookups it makes.

Owns: `ChatState` (the locks, the store, the sessions, the committer and
the settings of one server), the lookups a handler makes under the
``storage`` lock key (who am I, which user or group a name is), and `_tell`
(a membership change to the online members, here and on other nodes).
Must not: touch sockets or take locks itself: its callers hold the keys
each method names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactor import limits
from reactor.chat.commit import Committer
from reactor.chat.outbox import Outbox
from reactor.chat.sessions import ConnState, Sessions
from reactor.chat.store import Group, Store, User
from reactor.errors import ChatError
from reactor.kinds import Auth
from reactor.protocol import GroupChange
from reactor.stats import ServerStatistics
from reactor.sync.locks import Locking

#: What a handler returns: the fields of its `ok`, or None if it replied itself.
Fields = dict[str, Any] | None


class ChatState:
    """The shared chat state a handler runs against, and its lookups."""

    def __init__(
        self,
        locks: Locking,
        storage: Store,
        sessions: Sessions,
        committer: Committer,
        *,
        auth: Auth = Auth.PASSWORD,
        max_login_failures: int = limits.MAX_LOGIN_FAILURES,
        statistics: Callable[[], ServerStatistics] | None = None,
    ) -> None:
        self.locks = locks
        self.storage = storage
        self.sessions = sessions
        self.committer = committer
        self.auth = auth
        self.max_login_failures = max_login_failures
        # The /stats snapshot, taken by the server's wiring (reactor/server.py).
        self._statistics = statistics

    def _tell(self, conn: ConnState, out: Outbox, change: GroupChange, names: list[str]) -> None:
        """`change`, once committed, to the online `names` but the caller,
        here and on other nodes (holds ``sessions``)."""
        away = []
        for name in names:
            other = self.sessions.conn_of(name.lower())
            if other is None:
                away.append(name.lower())
            elif other != conn.conn_id:
                out.tell(other, change)
        if away:
            out.after_commit(lambda: self.sessions.tell_elsewhere(away, change))

    # --- lookups (caller holds ``storage``) ------------------------------------------------

    def _me(self, conn: ConnState) -> User:
        assert conn.user_id is not None and conn.user is not None  # `run` checked the login
        return User(conn.user_id, conn.user, None, 0)

    def _my_id(self, conn: ConnState) -> int:
        assert conn.user_id is not None  # `run` checked the login
        return conn.user_id

    def _user(self, name: str) -> User:
        return self._known(name, self.storage.user(name))

    def _address(self, name: str) -> User:
        return self._known(name, self.storage.address(name))

    def _known(self, name: str, user: User | None) -> User:
        if user is None:
            hint = " (a group: use /sendgroup)" if self.storage.group(name) else ""
            raise ChatError("unknown_user", f"no user named {name}{hint}")
        return user

    def _member_group(self, conn: ConnState, name: str) -> Group:
        group = self.storage.group(name)
        if group is None:
            raise ChatError("unknown_group", f"no group named {name}")
        if not self.storage.is_member(group, self._my_id(conn)):
            raise ChatError("not_member", f"you are not in #{group.name}")
        return group
