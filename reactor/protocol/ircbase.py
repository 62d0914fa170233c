"""The state every part of an IRC connection's protocol shares, sans-IO.

Owns: `IrcState` (nick, capabilities, registration flags, the channels
shown joined, the contexts of queued native commands) and the helpers that
build IRC lines from it (numerics, notices, masks, a channel's names).
Must not: import socket, selectors or threading, or map commands (that is
reactor/protocol/irccommands.py and reactor/protocol/ircsession.py).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

from reactor.actions import Reply
from reactor.protocol.events import Error, GroupChange, Message, Ok, Raw
from reactor.protocol.framing import Framer
from reactor.protocol.irc import MAX_FRAME, MAX_LINE, line, split_text
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
        self._sasl_login = False  # a SASL login is queued, its reply not yet in
        self._sasl_ok = False  # logged in by SASL
        #: USER's username and realname (recorded with the session at the
        #: welcome; WHO and WHOIS show them to everyone).
        self.username = ""
        self.realname = ""
        self._logged_in = False
        self._registering = False
        self._invisible = False  # user mode +i (accepted, changes nothing)
        self._channels: set[str] = set()  # lower-case names of the groups shown joined
        self._early_changes: list[GroupChange] = []  # told before the welcome
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

    def _privmsg_lines(self, m: Message) -> list[str]:
        """A chat message as PRIVMSG (or NOTICE) lines from its sender, cut to fit, with
        the negotiated tags (`time`, `msgid`)."""
        target = f"#{m.group}" if m.group is not None else m.to or self.nick or "*"
        tags = []
        if "server-time" in self.caps:
            ms = int(m.ts * 1000) % 1000
            tags.append(f"time={time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(m.ts))}.{ms:03d}Z")
        if "message-tags" in self.caps:
            tags.append(f"msgid={m.id}")
        source, command = self._mask(m.sender), "NOTICE" if m.notice else "PRIVMSG"
        room = MAX_LINE - len(f":{source} {command} {target} :".encode()) - 2
        return [
            line(source, command, target, piece, tags=";".join(tags))
            for piece in split_text(m.text, room)
        ]

    def _names(self, group: str, members: list[str], end: bool = True) -> list[str]:
        """353 lines of a channel's members (as many as fit a line each),
        then its 366 unless `end` is False."""
        channel = f"#{group}"
        room = MAX_LINE - len(self._num("353", "=", channel, "").encode()) - 2
        shown = [self._mask(n) if "userhost-in-names" in self.caps else n for n in members]
        lines, chunk = [], ""
        for name in shown:
            if chunk and len(chunk) + 1 + len(name) > room:
                lines.append(self._num("353", "=", channel, chunk))
                chunk = ""
            chunk = f"{chunk} {name}" if chunk else name
        if chunk:
            lines.append(self._num("353", "=", channel, chunk))
        return [*lines, self._num("366", channel, "End of /NAMES list")] if end else lines


def as_bytes(lines: Iterable[str]) -> bytes:
    """Lines joined, each with its CRLF."""
    return "".join(f"{x}\r\n" for x in lines).encode()
