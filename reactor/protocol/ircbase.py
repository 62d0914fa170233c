"""The state every part of an IRC connection's protocol shares, sans-IO.

Owns: `IrcState` (nick, capabilities, registration flags, the channels
shown joined, the contexts of queued native commands) and the helpers that
build IRC lines from it (numerics, notices, masks, a channel's names).
Must not: import socket, selectors or threading, or map commands (that is
reactor/protocol/irccommands.py and reactor/protocol/ircsession.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from reactor.actions import Reply
from reactor.protocol.events import Error, Ok, Raw
from reactor.protocol.framing import Framer
from reactor.protocol.irc import MAX_FRAME, line
from reactor.protocol.parsing import Command

#: How to answer the reply to one queued native command, as IRC lines.
Render = Callable[[Ok | Error], list[str]]


class IrcState:
    """The fields and line helpers of one IRC connection."""

    def __init__(self, server: str, network: str, auth_none: bool) -> None:
        self.server = server
        self.network = network
        self.auth_none = auth_none
        self.framer = Framer(MAX_FRAME)
        self.nick: str | None = None  # the account's name once logged in
        self.caps: set[str] = set()
        #: Welcome sent: messages may be written (until then they are held).
        self.ready = False
        #: The connection must close after the lines queued so far.
        self.close_requested = False
        self._user_given = False
        self._password: str | None = None
        self._cap_open = False  # CAP LS/REQ seen, CAP END not yet
        self._sasl: str | None = None  # "PLAIN" while AUTHENTICATE runs
        self._sasl_chunks: list[str] = []
        self._logged_in = False
        self._registering = False
        self._invisible = False  # user mode +i (accepted, changes nothing)
        self._channels: set[str] = set()  # lower-case names of the groups shown joined
        self._contexts: deque[tuple[str, Render]] = deque()

    def _queue(self, cmd: Command, render: Render) -> Command:
        self._contexts.append((cmd.name, render))
        return cmd

    def _say(self, *lines: str) -> Reply:
        return Reply(Raw(as_bytes(lines).decode()))

    def _num(self, code: str, *params: str) -> str:
        return line(self.server, code, self.nick or "*", *params)

    def _notice(self, text: str) -> str:
        return line(self.server, "NOTICE", self.nick or "*", text)

    def _error_notice(self, reply: Error) -> str:
        return self._notice(f"error [{reply.code}]: {reply.message}")

    def _mask(self, nick: str) -> str:
        return f"{nick}!{nick}@{self.server}"

    def _joined(self, group: str, members: list[str]) -> list[str]:
        """`JOIN` of oneself, then the channel's names."""
        self._channels.add(group.lower())
        me = self.nick or "*"
        return [line(self._mask(me), "JOIN", f"#{group}"), *self._names(group, members)]

    def _names(self, group: str, members: list[str]) -> list[str]:
        lines = []
        chunk: list[str] = []
        for name in members:
            chunk.append(name)
            if len(chunk) == 20:
                lines.append(self._num("353", "=", f"#{group}", " ".join(chunk)))
                chunk = []
        if chunk:
            lines.append(self._num("353", "=", f"#{group}", " ".join(chunk)))
        return [*lines, self._num("366", f"#{group}", "End of /NAMES list")]


def as_bytes(lines: Iterable[str]) -> bytes:
    """Lines joined, each with its CRLF."""
    return "".join(f"{x}\r\n" for x in lines).encode()
