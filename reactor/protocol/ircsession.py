"""One IRC connection's protocol state, sans-IO: IRC lines in, the native
work items they mean out; the server's events in, IRC lines out
(../shared/spec/IRC.md, docs/irc.md).

Owns: registration (CAP, PASS, NICK, USER, SASL PLAIN), the mapping of the
IRC subset onto native commands, and the rendering of every reply, message
and membership change as IRC lines. Each native command it queues leaves a
context (which IRC command asked, and how to answer) that the reply with the
same command word consumes: replies to one connection come in the order its
commands were queued. Must not: import socket, selectors or threading, or
decide anything the chat side decides (who may log in, join, send): it
only translates. Called from the one thread that owns the connection.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from reactor import limits
from reactor.actions import Item, Reply
from reactor.kinds import ByeReason
from reactor.protocol.events import Bye, Error, Event, GroupChange, Message, Notice, Ok, Raw
from reactor.protocol.framing import Frame, FrameError, Framer
from reactor.protocol.irc import (
    MAX_FRAME,
    MAX_LINE,
    IrcLine,
    LineTooLong,
    line,
    parse_line,
    split_text,
)
from reactor.protocol.parsing import Command, valid_name

#: Capabilities offered (CAP LS).
CAPS = ("echo-message", "message-tags", "sasl", "server-time")
_CAP_VALUES = {"sasl": "PLAIN"}

_BYE_TEXT = {
    ByeReason.EXIT: "quit",
    ByeReason.IDLE: "registration timeout",
    ByeReason.REPLACED: "replaced",
    ByeReason.SLOW_CONSUMER: "slow consumer",
    ByeReason.SERVER_FULL: "server full",
    ByeReason.SHUTDOWN: "server shutting down",
}

_PRE_REGISTRATION = {"CAP", "NICK", "USER", "PASS", "AUTHENTICATE", "PING", "PONG", "QUIT"}

Render = Callable[[Ok | Error], list[str]]


class IrcSession:
    """The IRC side of one connection: feed it frames, ask it for bytes."""

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

    # --- input ------------------------------------------------------------------------

    def frame(self, frame: Frame) -> list[Item]:
        """The work items one frame means, in order."""
        if isinstance(frame, FrameError):
            if frame.code == "line_too_long":
                return [self._say(self._num("417", "Input line was too long"))]
            return [self._say(self._notice(f"{frame.message}"))]
        if "\x00" in frame:
            return [self._say(self._notice("line contains NUL, discarded"))]
        try:
            msg = parse_line(frame)
        except LineTooLong:
            return [self._say(self._num("417", "Input line was too long"))]
        if msg is None:
            return []
        if not self.ready and msg.command not in _PRE_REGISTRATION:
            return [self._say(self._num("451", "You have not registered"))]
        handler = _HANDLERS.get(msg.command)
        if handler is None:
            return [self._say(self._num("421", msg.command, "Unknown command"))]
        return handler(self, msg)

    def flooded(self) -> list[Item]:
        """A line over the rate limit: dropped, and the client told."""
        return [self._say(self._notice("too many commands; slow down (line dropped)"))]

    # --- output ---------------------------------------------------------------------------

    def encode(self, event: Event) -> bytes:
        """Bytes for one event sent to this connection (a reply, a bye...)."""
        lines: list[str]
        if isinstance(event, Raw):
            return event.text.encode()
        if isinstance(event, Ok | Error):
            lines = self._answer(event)
        elif isinstance(event, Bye):
            lines = [line(None, "ERROR", f"Closing link ({_BYE_TEXT[event.reason]})")]
        elif isinstance(event, GroupChange):
            lines = self._group_change(event)
        elif isinstance(event, Message):
            return self.message(event)
        elif isinstance(event, Notice):
            lines = [self._notice(event.text)]
        return _bytes(lines)

    def message(self, m: Message) -> bytes:
        """A chat message as PRIVMSG lines (cut to fit); b"" for the echo of
        one's own group message unless `echo-message` was negotiated."""
        me = (self.nick or "").lower()
        if m.group is not None:
            if m.sender.lower() == me and "echo-message" not in self.caps:
                return b""
            target = f"#{m.group}"
        else:
            target = m.to or self.nick or "*"
        tags = []
        if "server-time" in self.caps:
            ms = int(m.ts * 1000) % 1000
            tags.append(f"time={time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(m.ts))}.{ms:03d}Z")
        if "message-tags" in self.caps:
            tags.append(f"msgid={m.id}")
        source = self._mask(m.sender)
        room = MAX_LINE - len(f":{source} PRIVMSG {target} :".encode()) - 2
        return _bytes(
            line(source, "PRIVMSG", target, piece, tags=";".join(tags))
            for piece in split_text(m.text, room)
        )

    # --- registration ----------------------------------------------------------------

    def _cap(self, msg: IrcLine) -> list[Item]:
        sub = msg.params[0].upper() if msg.params else ""
        if sub == "LS":
            if not self.ready:
                self._cap_open = True
            v302 = len(msg.params) > 1 and msg.params[1] >= "302"
            offered = " ".join(
                f"{c}={_CAP_VALUES[c]}" if v302 and c in _CAP_VALUES else c for c in CAPS
            )
            return [self._say(self._cap_line("LS", offered))]
        if sub == "LIST":
            return [self._say(self._cap_line("LIST", " ".join(sorted(self.caps))))]
        if sub == "REQ":
            if not self.ready:
                self._cap_open = True
            wanted = msg.params[1].split() if len(msg.params) > 1 else []
            names = [w.lstrip("-") for w in wanted]
            if not wanted or any(n not in CAPS for n in names):
                return [self._say(self._cap_line("NAK", " ".join(wanted)))]
            for w in wanted:
                (self.caps.discard if w.startswith("-") else self.caps.add)(w.lstrip("-"))
            if "message-tags" not in self.caps:
                self.framer.max_line = MAX_LINE
            else:
                self.framer.max_line = MAX_FRAME
            return [self._say(self._cap_line("ACK", " ".join(wanted)))]
        if sub == "END":
            self._cap_open = False
            return self._maybe_register()
        return [self._say(self._num("410", sub or "*", "Invalid CAP command"))]

    def _cap_line(self, sub: str, text: str) -> str:
        return line(self.server, "CAP", self.nick or "*", sub, text)

    def _nick(self, msg: IrcLine) -> list[Item]:
        if not msg.params or not msg.params[0]:
            return [self._say(self._num("431", "No nickname given"))]
        nick = msg.params[0]
        if self.ready:
            if nick.lower() == (self.nick or "").lower():
                return []
            if not valid_name(nick):
                return [self._say(self._num("432", nick, "Erroneous nickname"))]
            return [self._say(self._num("432", nick, "Nick changes are not supported here"))]
        if not valid_name(nick):
            return [self._say(self._num("432", nick, "Erroneous nickname"))]
        if not self._logged_in:
            self.nick = nick
        return self._maybe_register()

    def _user(self, msg: IrcLine) -> list[Item]:
        if self.ready or self._user_given:
            return [self._say(self._num("462", "You may not reregister"))]
        if len(msg.params) < 4:
            return [self._say(self._num("461", "USER", "Not enough parameters"))]
        self._user_given = True
        return self._maybe_register()

    def _pass(self, msg: IrcLine) -> list[Item]:
        if self.ready or self._logged_in:
            return [self._say(self._num("462", "You may not reregister"))]
        if not msg.params:
            return [self._say(self._num("461", "PASS", "Not enough parameters"))]
        self._password = msg.params[0]
        return []

    def _authenticate(self, msg: IrcLine) -> list[Item]:
        if self._logged_in or self.ready:
            return [self._say(self._num("907", "You have already authenticated using SASL"))]
        if "sasl" not in self.caps or not msg.params:
            return [self._say(self._num("904", "SASL authentication failed"))]
        arg = msg.params[0]
        if arg == "*":
            self._sasl, self._sasl_chunks = None, []
            return [self._say(self._num("906", "SASL authentication aborted"))]
        if self._sasl is None:
            if arg.upper() != "PLAIN":
                return [self._say(self._num("908", "PLAIN", "are available SASL mechanisms"),
                                  self._num("904", "SASL authentication failed"))]  # fmt: skip
            self._sasl = "PLAIN"
            return [self._say(line(None, "AUTHENTICATE", "+"))]
        if arg != "+":
            self._sasl_chunks.append(arg)
        if len(arg) == 400:
            return []  # more chunks follow
        payload, self._sasl, self._sasl_chunks = "".join(self._sasl_chunks), None, []
        try:
            fields = base64.b64decode(payload, validate=True).decode().split("\x00")
        except (binascii.Error, UnicodeDecodeError):
            fields = []
        if len(fields) != 3 or not fields[1]:
            return [self._say(self._num("904", "SASL authentication failed"))]
        account, password = fields[1], fields[2]
        login = Command("login", (account, password), keep_existing=self.auth_none)
        return [self._queue(login, self._sasl_done)]

    def _sasl_done(self, reply: Ok | Error) -> list[str]:
        if isinstance(reply, Ok):
            self._logged_in = True
            self.nick = reply.fields["user"]
            me = self.nick or "*"
            return [
                self._num("900", self._mask(me), me, f"You are now logged in as {me}"),
                self._num("903", "SASL authentication successful"),
            ]
        lines = [self._num("904", "SASL authentication failed")]
        if reply.code == "name_in_use":
            lines = [self._num("433", reply.message.split()[0], "Nickname is already in use")]
        if reply.code == "too_many_failures":
            self.close_requested = True
            lines.append(line(None, "ERROR", "Closing link (too many failed logins)"))
        return lines

    def _maybe_register(self) -> list[Item]:
        if self.ready or self._registering or self._cap_open or self._sasl:
            return []
        if self.nick is None or not self._user_given:
            return []
        self._registering = True
        items: list[Item] = []
        if not self._logged_in:
            args = (self.nick,) if self._password is None else (self.nick, self._password)
            login = Command("login", args, keep_existing=self.auth_none)
            items.append(self._queue(login, self._login_done))
        items.append(self._queue(Command("groups"), self._welcome))
        return items

    def _login_done(self, reply: Ok | Error) -> list[str]:
        if isinstance(reply, Ok):
            self._logged_in = True
            self.nick = reply.fields["user"]
            return []
        self._registering = False
        nick = self.nick or "*"
        if reply.code == "name_in_use":
            self.nick = None
            return [line(self.server, "433", "*", nick, "Nickname is already in use")]
        if reply.code == "name_taken":
            self.nick = None
            return [line(self.server, "433", "*", nick, "Nickname is a channel's name")]
        if reply.code == "bad_args":  # no password where one is needed
            text = "Password required (PASS or SASL)"
        elif reply.code in ("auth_failed", "too_many_failures"):
            text = "Password incorrect"
        else:
            text = reply.message
        self.close_requested = True
        return [
            line(self.server, "464", nick, text),
            line(None, "ERROR", f"Closing link ({text.lower()})"),
        ]

    def _welcome(self, reply: Ok | Error) -> list[str]:
        if not isinstance(reply, Ok) or not self._logged_in:
            return []
        self.ready = True
        me = self.nick or "*"
        s = self.server
        lines = [
            self._num("001", f"Welcome to the {self.network} IRC network, {me}"),
            self._num("002", f"Your host is {s}, running reactor-chat"),
            self._num("003", "This server speaks IRC over the reactor-chat core"),
            self._num("004", s, "reactor-chat", "i", "i"),
            self._num("005", *self._isupport(), "are supported by this server"),
            self._num("422", "MOTD File is missing"),
        ]
        for g in reply.fields["groups"]:
            lines += self._joined(g["name"], g["members"])
        return lines

    def _isupport(self) -> tuple[str, ...]:
        return (
            "CHANTYPES=#", f"NICKLEN={limits.MAX_NAME}", f"CHANNELLEN={limits.MAX_NAME + 1}",
            "CASEMAPPING=ascii", f"NETWORK={self.network}", "CHANMODES=,,,i", "PREFIX=",
            "SAFELIST",
        )  # fmt: skip

    # --- commands ------------------------------------------------------------------------

    def _privmsg(self, msg: IrcLine) -> list[Item]:
        if not msg.params or not msg.params[0]:
            return [self._say(self._num("411", f"No recipient given ({msg.command})"))]
        if len(msg.params) < 2 or not msg.params[1]:
            return [self._say(self._num("412", "No text to send"))]
        text = msg.params[1]
        items: list[Item] = []
        for target in msg.params[0].split(","):
            if target.startswith("#"):
                cmd = Command("sendgroup", (target[1:],), text)
                items.append(self._queue(cmd, self._sent_group(target)))
            else:
                items.append(self._queue(Command("send", (target,), text), self._sent(target)))
        return items

    def _sent(self, target: str) -> Render:
        def render(reply: Ok | Error) -> list[str]:
            if isinstance(reply, Ok):
                return []
            if reply.code in ("unknown_user", "bad_name"):
                return [self._num("401", target, "No such nick/channel")]
            return [self._error_notice(reply)]

        return render

    def _sent_group(self, target: str) -> Render:
        def render(reply: Ok | Error) -> list[str]:
            if isinstance(reply, Ok):
                return []
            if reply.code in ("unknown_group", "bad_name"):
                return [self._num("403", target, "No such channel")]
            if reply.code == "not_member":
                return [self._num("404", target, "Cannot send to channel")]
            return [self._error_notice(reply)]

        return render

    def _join(self, msg: IrcLine) -> list[Item]:
        if not msg.params or not msg.params[0]:
            return [self._say(self._num("461", "JOIN", "Not enough parameters"))]
        if msg.params[0] == "0":
            return [self._say(self._notice("JOIN 0 is not supported: PART each channel"))]
        items: list[Item] = []
        for target in msg.params[0].split(","):
            name = target[1:]
            if not target.startswith("#") or not valid_name(name):
                items.append(self._say(self._num("403", target, "No such channel")))
                continue
            items.append(self._queue(Command("join", (name,)), self._joined_reply(target)))
        return items

    def _joined_reply(self, target: str) -> Render:
        def render(reply: Ok | Error) -> list[str]:
            if isinstance(reply, Ok):
                name = reply.fields["group"]
                if name.lower() in self._channels:
                    return []
                return self._joined(name, reply.fields["members"])
            if reply.code == "not_member":
                return [self._num("473", target, "Cannot join channel (+i)")]
            if reply.code in ("name_taken", "bad_name", "unknown_group"):
                return [self._num("403", target, "No such channel")]
            return [self._error_notice(reply)]

        return render

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

    def _part(self, msg: IrcLine) -> list[Item]:
        if not msg.params or not msg.params[0]:
            return [self._say(self._num("461", "PART", "Not enough parameters"))]
        reason = msg.params[1] if len(msg.params) > 1 else ""
        items: list[Item] = []
        for target in msg.params[0].split(","):
            if not target.startswith("#") or not valid_name(target[1:]):
                items.append(self._say(self._num("403", target, "No such channel")))
                continue
            items.append(self._queue(Command("leave", (target[1:],)), self._parted(target, reason)))
        return items

    def _parted(self, target: str, reason: str) -> Render:
        def render(reply: Ok | Error) -> list[str]:
            if isinstance(reply, Ok):
                self._channels.discard(reply.fields["group"].lower())
                params = (f"#{reply.fields['group']}", reason) if reason else (target,)
                return [line(self._mask(self.nick or "*"), "PART", *params)]
            if reply.code == "not_member":
                return [self._num("442", target, "You're not on that channel")]
            if reply.code in ("unknown_group", "bad_name"):
                return [self._num("403", target, "No such channel")]
            return [self._error_notice(reply)]

        return render

    def _invite(self, msg: IrcLine) -> list[Item]:
        if len(msg.params) < 2:
            return [self._say(self._num("461", "INVITE", "Not enough parameters"))]
        nick, target = msg.params[0], msg.params[1]
        if not target.startswith("#") or not valid_name(target[1:]):
            return [self._say(self._num("403", target, "No such channel"))]
        if not valid_name(nick):
            return [self._say(self._num("401", nick, "No such nick/channel"))]

        def render(reply: Ok | Error) -> list[str]:
            if isinstance(reply, Ok):
                group = f"#{reply.fields['group']}"
                return [self._num("341", nick, group), line(self._mask(nick), "JOIN", group)]
            if reply.code == "not_member":
                return [self._num("442", target, "You're not on that channel")]
            if reply.code in ("unknown_user",):
                return [self._num("401", nick, "No such nick/channel")]
            if reply.code == "name_taken":
                return [self._num("403", target, "No such channel")]
            return [self._error_notice(reply)]

        return [self._queue(Command("group", (target[1:], nick)), render)]

    def _names_cmd(self, msg: IrcLine) -> list[Item]:
        if not msg.params:
            return [self._say(self._num("366", "*", "End of /NAMES list"))]
        targets = msg.params[0].split(",")

        def render(reply: Ok | Error) -> list[str]:
            if not isinstance(reply, Ok):
                return [self._error_notice(reply)]
            mine = {g["name"].lower(): g for g in reply.fields["groups"]}
            lines: list[str] = []
            for t in targets:
                g = mine.get(t[1:].lower()) if t.startswith("#") else None
                if g is None:
                    lines.append(self._num("366", t, "End of /NAMES list"))
                else:
                    lines += self._names(g["name"], g["members"])
            return lines

        return [self._queue(Command("groups"), render)]

    def _list(self, msg: IrcLine) -> list[Item]:
        def render(reply: Ok | Error) -> list[str]:
            if not isinstance(reply, Ok):
                return [self._error_notice(reply)]
            lines = [self._num("321", "Channel", "Users  Name")]
            for g in reply.fields["groups"]:
                lines.append(self._num("322", f"#{g['name']}", str(len(g["members"])), ""))
            return [*lines, self._num("323", "End of /LIST")]

        return [self._queue(Command("groups"), render)]

    def _who(self, msg: IrcLine) -> list[Item]:
        mask = msg.params[0] if msg.params else "*"
        groups: dict[str, list[str]] = {}

        def keep_groups(reply: Ok | Error) -> list[str]:
            if isinstance(reply, Ok):
                groups.update({g["name"].lower(): g["members"] for g in reply.fields["groups"]})
            return []

        def render(reply: Ok | Error) -> list[str]:
            if not isinstance(reply, Ok):
                return [self._error_notice(reply)]
            online = {u["name"].lower(): u for u in reply.fields["users"] if u["online"]}
            if mask.startswith("#"):
                names = [n for n in groups.get(mask[1:].lower(), []) if n.lower() in online]
                channel = mask
            elif mask in ("*", "0"):
                names, channel = [u["name"] for u in online.values()], "*"
            else:
                names = [online[mask.lower()]["name"]] if mask.lower() in online else []
                channel = "*"
            lines = [
                self._num("352", channel, n, self.server, self.server, n, "H", f"0 {n}")
                for n in names
            ]
            return [*lines, self._num("315", mask, "End of /WHO list")]

        return [
            self._queue(Command("groups"), keep_groups),
            self._queue(Command("users"), render),
        ]

    def _whois(self, msg: IrcLine) -> list[Item]:
        if not msg.params:
            return [self._say(self._num("431", "No nickname given"))]
        nick = msg.params[-1]

        def render(reply: Ok | Error) -> list[str]:
            if not isinstance(reply, Ok):
                return [self._error_notice(reply)]
            found = [u for u in reply.fields["users"] if u["name"].lower() == nick.lower()]
            end = self._num("318", nick, "End of /WHOIS list")
            if not found or not found[0]["online"]:
                return [self._num("401", nick, "No such nick/channel"), end]
            n = found[0]["name"]
            return [
                self._num("311", n, n, self.server, "*", n),
                self._num("312", n, self.server, "reactor-chat"),
                end,
            ]

        return [self._queue(Command("users"), render)]

    def _topic(self, msg: IrcLine) -> list[Item]:
        if not msg.params:
            return [self._say(self._num("461", "TOPIC", "Not enough parameters"))]
        return [self._say(self._num("331", msg.params[0], "No topic is set"))]

    def _mode(self, msg: IrcLine) -> list[Item]:
        if not msg.params:
            return [self._say(self._num("461", "MODE", "Not enough parameters"))]
        target = msg.params[0]
        if not target.startswith("#"):
            if target.lower() != (self.nick or "").lower():
                return [self._say(self._num("502", "Cannot change mode for other users"))]
            if len(msg.params) > 1:
                return self._user_mode(msg.params[1])
            return [self._say(self._num("221", "+i" if self._invisible else "+"))]
        changes = len(msg.params) > 1 and msg.params[1] not in ("b", "+b")

        def render(reply: Ok | Error) -> list[str]:
            if not isinstance(reply, Ok):
                return [self._error_notice(reply)]
            mine = {g["name"].lower() for g in reply.fields["groups"]}
            if target[1:].lower() not in mine:
                return [self._num("442", target, "You're not on that channel")]
            if len(msg.params) > 1 and not changes:
                return [self._num("368", target, "End of channel ban list")]
            if changes:
                return [self._num("482", target, "You're not channel operator")]
            group = next(
                g for g in reply.fields["groups"] if g["name"].lower() == target[1:].lower()
            )
            return [self._num("324", target, "+" if group.get("open") else "+i")]

        return [self._queue(Command("groups", detail=True), render)]

    def _user_mode(self, change: str) -> list[Item]:
        """Only `i` (invisible) is known, and it changes nothing: /users and
        WHO show everyone online either way."""
        if not change or change[0] not in "+-" or set(change[1:]) - {"i"}:
            return [self._say(self._num("501", "Unknown MODE flag"))]
        self._invisible = change[0] == "+"
        me = self.nick or "*"
        return [self._say(line(self._mask(me), "MODE", me, change[0] + "i"))]

    def _ping(self, msg: IrcLine) -> list[Item]:
        if not msg.params:
            return [self._say(self._num("409", "No origin specified"))]
        return [self._say(line(self.server, "PONG", self.server, msg.params[0]))]

    def _pong(self, msg: IrcLine) -> list[Item]:
        return []

    def _quit(self, msg: IrcLine) -> list[Item]:
        return [self._queue(Command("exit"), lambda reply: [])]

    # --- events --------------------------------------------------------------------------

    def _answer(self, reply: Ok | Error) -> list[str]:
        while self._contexts:
            cmd, render = self._contexts.popleft()
            if cmd == reply.cmd:
                return render(reply)
        return [] if isinstance(reply, Ok) else [self._error_notice(reply)]

    def _group_change(self, change: GroupChange) -> list[str]:
        channel = f"#{change.group}"
        me = (self.nick or "").lower()
        if change.left is not None:
            if change.left.lower() == me:
                self._channels.discard(change.group.lower())
            return [line(self._mask(change.left), "PART", channel)]
        lines: list[str] = []
        for name in change.added:
            if name.lower() == me:
                lines += self._joined(change.group, list(change.members))
            else:
                lines.append(line(self._mask(name), "JOIN", channel))
        return lines

    # --- helpers -------------------------------------------------------------------------

    def _queue(self, cmd: Command, render: Render) -> Command:
        self._contexts.append((cmd.name, render))
        return cmd

    def _say(self, *lines: str) -> Reply:
        return Reply(Raw(_bytes(lines).decode()))

    def _num(self, code: str, *params: str) -> str:
        return line(self.server, code, self.nick or "*", *params)

    def _notice(self, text: str) -> str:
        return line(self.server, "NOTICE", self.nick or "*", text)

    def _error_notice(self, reply: Error) -> str:
        return self._notice(f"error [{reply.code}]: {reply.message}")

    def _mask(self, nick: str) -> str:
        return f"{nick}!{nick}@{self.server}"


def _bytes(lines: Any) -> bytes:
    return "".join(f"{x}\r\n" for x in lines).encode()


_HANDLERS: dict[str, Callable[[IrcSession, IrcLine], list[Item]]] = {
    "CAP": IrcSession._cap,
    "NICK": IrcSession._nick,
    "USER": IrcSession._user,
    "PASS": IrcSession._pass,
    "AUTHENTICATE": IrcSession._authenticate,
    "PRIVMSG": IrcSession._privmsg,
    "NOTICE": IrcSession._privmsg,
    "JOIN": IrcSession._join,
    "PART": IrcSession._part,
    "INVITE": IrcSession._invite,
    "NAMES": IrcSession._names_cmd,
    "LIST": IrcSession._list,
    "WHO": IrcSession._who,
    "WHOIS": IrcSession._whois,
    "TOPIC": IrcSession._topic,
    "MODE": IrcSession._mode,
    "PING": IrcSession._ping,
    "PONG": IrcSession._pong,
    "QUIT": IrcSession._quit,
}
