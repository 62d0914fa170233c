"""What the reactor and the workers hand each other.

Owns: the records that cross between the reactor thread and the workers:
work items the reactor queues for a connection (besides parsed commands),
and the actions workers post back. Must not: hold behaviour; the reactor
applies actions in the order they were posted, and that order is the
delivery order the protocol guarantees.
"""

from __future__ import annotations

from dataclasses import dataclass

from reactor.kinds import ByeReason, Mode
from reactor.protocol import BadLine, Command, Event, Message

# --- reactor -> worker: internal work items for one connection -------------


@dataclass(frozen=True)
class TextAck:
    """Text-mode delivery: every message up to `id` was written to the socket."""

    id: int


@dataclass(frozen=True)
class Reply:
    """An answer the I/O model decided itself (an IRC numeric that needs no
    command), emitted in its turn among the connection's replies."""

    event: Event


@dataclass(frozen=True)
class Disconnect:
    """The socket is closed: log the user out (last item of a connection)."""


# --- worker -> reactor -----------------------------------------------------------


@dataclass(frozen=True)
class Emit:
    """Write `event` to connection `conn` in its current mode."""

    conn: int
    event: Event


@dataclass(frozen=True)
class Replay:
    """Write a login's unread messages; while they wait in the output buffer
    they do not count against --max-outbuf (the server chose to send them)."""

    conn: int
    messages: tuple[Message, ...]


@dataclass(frozen=True)
class Deliver:
    """A committed message pushed to the connections of online recipients."""

    message: Message
    conns: tuple[int, ...]


@dataclass(frozen=True)
class SetMode:
    """From the next event on, encode for `conn` in `mode`."""

    conn: int
    mode: Mode


@dataclass(frozen=True)
class LoggedIn:
    """`conn` is logged in as `user`: its login timer stops."""

    conn: int
    user: str


@dataclass(frozen=True)
class Close:
    """Send `bye` with `reason` (if any), flush, then close `conn`; the
    commands it sent after this are not run."""

    conn: int
    reason: ByeReason | None


@dataclass(frozen=True)
class Done:
    """The worker finished the batch it had for `conn`."""

    conn: int


Action = Emit | Replay | Deliver | SetMode | LoggedIn | Close | Done

Item = Command | BadLine | Reply | TextAck | Disconnect
"""One unit of a connection's work, in the order the I/O model queued it."""
