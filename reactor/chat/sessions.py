"""In-memory chat state: who is logged in where, and each connection's
session as the command handlers see it.

Owns: `Sessions` (user -> connection, and the USER username and realname
of IRC sessions, guarded by the ``sessions`` lock key)
and `ConnState` (one connection's login state, owned by whichever worker runs
that connection's commands: the reactor hands a connection to one worker at a
time, so it needs no lock). Must not: touch sockets or storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from reactor.protocol import GroupChange


class Sessions:
    """Which connection each logged-in user is on. Hold ``sessions``."""

    def __init__(self) -> None:
        # Invariant: one entry per logged-in user key; the value is the id of
        # the connection that logged in last (a second login replaces the first).
        self._conn_of: dict[str, int] = {}
        # IRC's USER username and realname of users logged in here over IRC
        # (WHO and WHOIS show them); entries only for keys in _conn_of.
        self._ident: dict[str, tuple[str, str]] = {}

    def bind(self, user_key: str, conn_id: int) -> int | None:
        """Log `user_key` in on `conn_id`; return the connection it replaces."""
        old = self._conn_of.get(user_key)
        self._conn_of[user_key] = conn_id
        self._ident.pop(user_key, None)  # the new session's, if any, comes with set_ident
        return old if old != conn_id else None

    def unbind(self, user_key: str, conn_id: int) -> None:
        """Log out, unless a newer login of the same user replaced `conn_id`."""
        if self._conn_of.get(user_key) == conn_id:
            del self._conn_of[user_key]
            self._ident.pop(user_key, None)

    def set_ident(self, user_key: str, conn_id: int, ident: tuple[str, str]) -> None:
        """Record the (username, realname) the IRC session of `user_key` on
        `conn_id` gave (unless another login replaced it meanwhile)."""
        if self._conn_of.get(user_key) == conn_id:
            self._ident[user_key] = ident

    def ident_of(self, user_key: str) -> tuple[str, str] | None:
        """(username, realname) of `user_key`'s IRC session here, if any."""
        return self._ident.get(user_key)

    def conn_of(self, user_key: str) -> int | None:
        """The connection `user_key` is logged in on, or None."""
        return self._conn_of.get(user_key)

    def online(self) -> set[str]:
        """The keys of every logged-in user (a copy)."""
        return set(self._conn_of)

    def tell_elsewhere(self, user_keys: list[str], event: GroupChange) -> None:
        """Send `event` to those of `user_keys` logged in on other servers
        (a cluster's nodes); here there are none. Needs no lock."""


@dataclass
class ConnState:
    """One connection's session, read and written only by the worker that
    currently runs this connection's commands (one at a time, in order)."""

    conn_id: int
    peer: str = "?"
    user: str | None = None  # display name once logged in
    user_id: int | None = None
    login_failures: int = 0
    closed: bool = False  # /exit or too_many_failures: run nothing more
    logged_out: bool = False  # the session was unbound (exit or disconnect)

    @property
    def user_key(self) -> str | None:
        """The logged-in user's key (lower-case name), or None."""
        return self.user.lower() if self.user else None
