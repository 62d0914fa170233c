"""The server's closed sets of names: encodings, bye reasons, I/O models,
locking strategies, authentication modes.

Owns: one `enum` per set, each member's value being its spelling on the
wire or the command line. Must not: import any other project module.

Members are also `str`, so they compare equal to their spelling, go into
JSON as it, and `str()` of one is its value (as `enum.StrEnum` does from
Python 3.11 on).
"""

from __future__ import annotations

import enum


class _Named(str, enum.Enum):
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(self, format_spec)

    __hash__ = str.__hash__  # a member and its spelling are one dict key


class Mode(_Named):
    """A connection's encoding of events (`/mode`)."""

    TEXT = "text"
    JSON = "json"


class ByeReason(_Named):
    """Why the server ends a connection (the `bye` event's reason)."""

    EXIT = "exit"
    IDLE = "idle"
    REPLACED = "replaced"
    SLOW_CONSUMER = "slow_consumer"
    SERVER_FULL = "server_full"
    SHUTDOWN = "shutdown"


class Model(_Named):
    """The I/O model (`--model`)."""

    REACTOR = "reactor"  # one selectors thread and a worker pool
    THREADED = "threaded"  # a thread per client
    INLINE = "inline"  # one selectors thread that runs every command itself


class Strategy(_Named):
    """The locking strategy (`--locking`)."""

    GLOBAL = "global"
    FINE = "fine"
    INVERTED = "inverted"


class Auth(_Named):
    """How `/login` checks who you are (`--auth`)."""

    PASSWORD = "password"
    NONE = "none"
