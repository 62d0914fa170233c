"""The event model: what the server says, as frozen dataclasses.

Owns: `Ok`, `Error`, `Message`, `Bye`, `Notice`, `GroupChange`, `Raw` and the `WELCOME` banner
(docs/protocol.md §4, §5). Must not: encode (reactor/protocol/encoding.py
does) or import anything but the standard library and reactor/kinds.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reactor.kinds import ByeReason


@dataclass(frozen=True)
class Ok:
    """Successful reply to command `cmd`, with its result fields."""

    cmd: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Error:
    """Failed reply; `cmd` is None when the line had no command word."""

    cmd: str | None
    code: str
    message: str


@dataclass(frozen=True)
class Message:
    """A stored chat message; `to` is set for private, `group` for group ones."""

    id: int
    sender: str
    to: str | None
    group: str | None
    text: str
    ts: float
    #: Sent as an IRC NOTICE: IRC shows it as one (bots never answer it);
    #: the native encodings leave it out.
    notice: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The message's fields as the protocol names them (`from`, not `sender`)."""
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.to,
            "group": self.group,
            "text": self.text,
            "ts": self.ts,
        }


@dataclass(frozen=True)
class Bye:
    """Last line before the server closes the connection."""

    reason: ByeReason


@dataclass(frozen=True)
class Notice:
    """Unasked information for people (welcome banner); type `notice` in JSON."""

    text: str


@dataclass(frozen=True)
class GroupChange:
    """A group's membership changed: `by` added `added`, or `left` left;
    `members` is the group's list after the change. Sent to the members it
    concerns who are online; not stored (the login reply and /groups say
    the same to whoever was offline)."""

    group: str
    by: str
    members: tuple[str, ...]
    added: tuple[str, ...] = ()
    left: str | None = None
    #: Why `left` left: an IRC PART's message ("" for none); the native
    #: encodings leave it out.
    reason: str = ""


@dataclass(frozen=True)
class Raw:
    """Lines already in the connection's own wire format (an IRC answer
    that needs no command), each ending in CRLF; written as they are."""

    text: str


Event = Ok | Error | Message | Bye | Notice | GroupChange | Raw

#: The first line of every connection.
WELCOME = Notice("Welcome to the chat server! Type /help for commands.")
