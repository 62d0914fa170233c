"""One IRC connection's protocol state, sans-IO: IRC lines in, the native
work items they mean out; the server's events in, IRC lines out
(../shared/spec/IRC.md, docs/irc.md).

Owns: `IrcSession`: framing and dispatch of IRC lines, registration (CAP,
PASS, NICK, USER, SASL PLAIN, the welcome), and the rendering of replies,
messages and membership changes as IRC lines; the commands after
registration are reactor/protocol/irccommands.py's. Each native command it queues leaves a
context (which IRC command asked, and how to answer) that the reply with the
same command word consumes: replies to one connection come in the order its
commands were queued. Must not: import socket, selectors or threading, or
decide anything the chat side decides (who may log in, join, send): it
only translates. Called from the one thread that owns the connection.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from reactor import limits
from reactor.actions import Item
from reactor.kinds import ByeReason
from reactor.protocol.events import Bye, Error, Event, GroupChange, Message, Notice, Ok, Raw
from reactor.protocol.framing import Frame, FrameError
from reactor.protocol.irc import MAX_FRAME, MAX_LINE, IrcLine, LineTooLong, line, parse_line
from reactor.protocol.ircbase import as_bytes
from reactor.protocol.irccommands import IrcCommands
from reactor.protocol.parsing import Command, valid_name

#: Capabilities offered (CAP LS).
#: `multi-prefix` changes nothing here (no member has a prefix);
#: `userhost-in-names` shows each member's `nick!nick@server` in NAMES.
CAPS = ("echo-message", "message-tags", "multi-prefix", "sasl", "server-time", "userhost-in-names")
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


class IrcSession(IrcCommands):
    """The IRC side of one connection: feed it frames, ask it for bytes."""

    # --- input ------------------------------------------------------------------------

    def frame(self, frame: Frame) -> list[Item]:
        """The work items one frame means, in order."""
        if isinstance(frame, FrameError):
            if frame.code == "line_too_long":
                return [self._say(self._num("417", "Input line was too long"))]
            return [self._say(line(self.server, "FAIL", "*", "INVALID_UTF8", frame.message))]
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
        return as_bytes(lines)

    def message(self, m: Message) -> bytes:
        """A chat message as PRIVMSG lines (cut to fit); b"" for the echo of
        one's own group message unless `echo-message` was negotiated."""
        me = (self.nick or "").lower()
        if m.group is not None and m.sender.lower() == me and "echo-message" not in self.caps:
            return b""
        return as_bytes(self._privmsg_lines(m))

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
            if self._sasl is not None:  # CAP END in the middle of AUTHENTICATE: abort it
                self._sasl, self._sasl_chunks = None, []
                aborted = self._say(self._num("906", "SASL authentication aborted"))
                return [aborted, *self._maybe_register()]
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
        if len(msg.params) < 4 or not msg.params[0] or not msg.params[3]:
            return [self._say(self._num("461", "USER", "Not enough parameters"))]
        self._user_given = True
        self.username, self.realname = msg.params[0][: limits.MAX_NAME], msg.params[3]
        return self._maybe_register()

    def _pass(self, msg: IrcLine) -> list[Item]:
        if self.ready or self._logged_in:
            return [self._say(self._num("462", "You may not reregister"))]
        if not msg.params:
            return [self._say(self._num("461", "PASS", "Not enough parameters"))]
        self._password = msg.params[0]
        return []

    def _authenticate(self, msg: IrcLine) -> list[Item]:
        if self._sasl_ok or self._sasl_login:
            return [self._say(self._num("907", "You have already authenticated using SASL"))]
        if self.ready or self._registering:
            return [self._say(self._num("462", "You may not reregister"))]
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
        self._sasl_login = True
        return [self._queue(login, self._sasl_done)]

    def _sasl_done(self, reply: Ok | Error) -> list[str]:
        self._sasl_login = False
        if isinstance(reply, Ok):
            self._logged_in = self._sasl_ok = True
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
        welcome = self._welcome
        if self._sasl_login:  # the SASL login queued runs first
            welcome = self._welcome_after_sasl
        elif not self._logged_in:
            args = (self.nick,) if self._password is None else (self.nick, self._password)
            login = Command("login", args, keep_existing=self.auth_none)
            items.append(self._queue(login, self._login_done))
        ident = (self.username, self.realname)  # USER came: registration needs it
        items.append(self._queue(Command("groups", ident=ident), welcome))
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
            line(self.server, "464", "*", text),
            line(None, "ERROR", f"Closing link ({text.lower()})"),
        ]

    def _welcome_after_sasl(self, reply: Ok | Error) -> list[str]:
        """The welcome of a registration that counted on a SASL login still
        under way; that login failed: there is no other password to try."""
        if self._logged_in:
            return self._welcome(reply)
        if self.close_requested:  # the SASL failure closed it already (too many failures)
            return []
        self.close_requested = True
        return [line(self.server, "464", "*", "SASL authentication failed"),
                line(None, "ERROR", "Closing link (authentication failed)")]  # fmt: skip

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
        early, self._early_changes = self._early_changes, []
        shown = {
            g["name"].lower(): {m.lower() for m in g["members"]} for g in reply.fields["groups"]
        }
        for change in early:  # less what the welcome's names already say
            members = shown.get(change.group.lower())
            if members is not None and (
                (change.left is not None and change.left.lower() not in members)
                or (change.added and {a.lower() for a in change.added} <= members)
            ):
                continue
            lines += self._group_change(change)
        return lines

    def _isupport(self) -> tuple[str, ...]:
        return (
            "CHANTYPES=#", f"NICKLEN={limits.MAX_NAME}", f"CHANNELLEN={limits.MAX_NAME + 1}",
            "CASEMAPPING=ascii", f"NETWORK={self.network}", "CHANMODES=,,,i", "PREFIX=",
            "SAFELIST",
        )  # fmt: skip

    # --- events --------------------------------------------------------------------------

    def _answer(self, reply: Ok | Error) -> list[str]:
        while self._contexts:
            cmd, render = self._contexts.popleft()
            if cmd == reply.cmd:
                return render(reply)
        return [] if isinstance(reply, Ok) else [self._error_notice(reply)]

    def _group_change(self, change: GroupChange) -> list[str]:
        if not self.ready:  # told between the login and the welcome: after the welcome
            self._early_changes.append(change)
            return []
        channel = f"#{change.group}"
        me = (self.nick or "").lower()
        if change.left is not None:
            if change.left.lower() == me:
                self._channels.discard(change.group.lower())
            reason = (change.reason,) if change.reason else ()
            return [line(self._mask(change.left), "PART", channel, *reason)]
        lines: list[str] = []
        for name in change.added:
            if name.lower() == me:
                if change.group.lower() in self._channels:
                    continue  # shown joined already (by the welcome)
                if change.by.lower() != me:  # added by someone: an invitation, and in
                    lines.append(line(self._mask(change.by), "INVITE", self.nick or "*", channel))
                lines += self._joined(change.group, list(change.members))
            else:
                lines.append(line(self._mask(name), "JOIN", channel))
        return lines


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
