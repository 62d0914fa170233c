"""The IRC commands after registration, sans-IO: each IRC line becomes the
native commands it means, each with the context that renders its reply
(../shared/spec/IRC.md §4).

Owns: `IrcCommands` (PRIVMSG/NOTICE, JOIN, PART, INVITE, NAMES, LIST, WHO,
WHOIS, TOPIC, MODE, PING, PONG, QUIT) and the numerics of their errors.
Must not: import socket, selectors or threading, or decide what the chat
side decides (who may join or send): it translates.
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any

from reactor.actions import Item
from reactor.protocol.events import Error, Message, Ok
from reactor.protocol.irc import IrcLine, line
from reactor.protocol.ircbase import IrcState, Render
from reactor.protocol.parsing import Command, valid_name


class IrcCommands(IrcState):
    """The handlers of the IRC subset, one method per command."""

    def _privmsg(self, msg: IrcLine) -> list[Item]:
        quiet = msg.command == "NOTICE"  # never an automatic reply to a NOTICE (RFC 2812)
        if not msg.params or not _targets(msg.params[0]):
            no_target = self._num("411", f"No recipient given ({msg.command})")
            return [] if quiet else [self._say(no_target)]
        if len(msg.params) < 2 or not msg.params[1]:
            return [] if quiet else [self._say(self._num("412", "No text to send"))]
        text = msg.params[1]
        items: list[Item] = []
        for target in _targets(msg.params[0]):
            if target.startswith("#"):
                cmd = Command("sendgroup", (target[1:],), text, notice=quiet)
                render = self._sent_group(target)
            else:
                cmd = Command("send", (target,), text, notice=quiet)
                render = self._sent(target, text, quiet)
            items.append(self._queue(cmd, _quietly(render) if quiet else render))
        return items

    def _sent(self, target: str, text: str, notice: bool) -> Render:
        def render(reply: Ok | Error) -> list[str]:
            if isinstance(reply, Ok):  # the sender of a private message gets no event
                me = self.nick or "*"
                if "echo-message" not in self.caps or target.lower() == me.lower():
                    return []  # (one's message to oneself comes back as the delivery)
                echo = Message(reply.fields["id"], me, target, None, text, time.time(), notice)
                return self._privmsg_lines(echo)
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
        if not msg.params or not _targets(msg.params[0]):
            return [self._say(self._num("461", "JOIN", "Not enough parameters"))]
        if msg.params[0] == "0":
            return [self._say(self._notice("JOIN 0 is not supported: PART each channel"))]
        items: list[Item] = []
        for target in _targets(msg.params[0]):
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

    def _part(self, msg: IrcLine) -> list[Item]:
        if not msg.params or not _targets(msg.params[0]):
            return [self._say(self._num("461", "PART", "Not enough parameters"))]
        reason = msg.params[1] if len(msg.params) > 1 else ""
        items: list[Item] = []
        for target in _targets(msg.params[0]):
            if not target.startswith("#") or not valid_name(target[1:]):
                items.append(self._say(self._num("403", target, "No such channel")))
                continue
            leave = Command("leave", (target[1:],), reason)
            items.append(self._queue(leave, self._parted(target, reason)))
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
        before: set[str] = set()  # the channel's members before the INVITE

        def keep_members(reply: Ok | Error) -> list[str]:
            if isinstance(reply, Ok):
                for g in reply.fields["groups"]:
                    if g["name"].lower() == target[1:].lower():
                        before.update(m.lower() for m in g["members"])
            return []

        def render(reply: Ok | Error) -> list[str]:
            if isinstance(reply, Ok):
                group = f"#{reply.fields['group']}"
                if nick.lower() in before:
                    return [self._num("443", nick, group, "is already on channel")]
                # the invitee is a member now: it gets INVITE and JOIN, the others its JOIN
                return [self._num("341", nick, group), line(self._mask(nick), "JOIN", group)]
            if reply.code == "not_member":
                return [self._num("442", target, "You're not on that channel")]
            if reply.code in ("unknown_user",):
                return [self._num("401", nick, "No such nick/channel")]
            if reply.code in ("name_taken", "unknown_group"):
                return [self._num("403", target, "No such channel")]
            return [self._error_notice(reply)]

        return [
            self._queue(Command("groups"), keep_members),
            self._queue(Command("group", (target[1:], nick), existing=True), render),
        ]

    def _names_cmd(self, msg: IrcLine) -> list[Item]:
        targets = _targets(msg.params[0]) if msg.params else []

        def render(reply: Ok | Error) -> list[str]:
            if not isinstance(reply, Ok):
                return [self._error_notice(reply)]
            mine = {g["name"].lower(): g for g in reply.fields["open_groups"]}
            mine.update({g["name"].lower(): g for g in reply.fields["groups"]})
            lines: list[str] = []
            if not targets:  # every channel of one's own, then one end
                for g in reply.fields["groups"]:
                    lines += self._names(g["name"], g["members"], end=False)
                return [*lines, self._num("366", "*", "End of /NAMES list")]
            for t in targets:
                g = mine.get(t[1:].lower()) if t.startswith("#") else None
                if g is None:
                    lines.append(self._num("366", t, "End of /NAMES list"))
                else:
                    lines += self._names(g["name"], g["members"])
            return lines

        return [self._queue(Command("groups", public=True), render)]

    def _list(self, msg: IrcLine) -> list[Item]:
        listed = _targets(msg.params[0]) if msg.params else []
        wanted = {t.lower() for t in listed} if listed else None

        def render(reply: Ok | Error) -> list[str]:
            if not isinstance(reply, Ok):
                return [self._error_notice(reply)]
            shown = {g["name"].lower(): g for g in reply.fields["open_groups"]}
            shown.update({g["name"].lower(): g for g in reply.fields["groups"]})
            lines = [self._num("321", "Channel", "Users  Name")]
            for key in sorted(shown):
                g = shown[key]
                if wanted is None or f"#{key}" in wanted:
                    lines.append(self._num("322", f"#{g['name']}", str(len(g["members"])), ""))
            return [*lines, self._num("323", "End of /LIST")]

        return [self._queue(Command("groups", public=True), render)]

    def _who(self, msg: IrcLine) -> list[Item]:
        mask = msg.params[0] if msg.params and msg.params[0] else "*"
        groups: dict[str, list[str]] = {}
        members_names: dict[str, str] = {}  # lower-case name: the group's own spelling

        def keep_groups(reply: Ok | Error) -> list[str]:
            if isinstance(reply, Ok):
                groups.update({g["name"].lower(): g["members"] for g in reply.fields["groups"]})
                members_names.update({g["name"].lower(): g["name"] for g in reply.fields["groups"]})
            return []

        def render(reply: Ok | Error) -> list[str]:
            if not isinstance(reply, Ok):
                return [self._error_notice(reply)]
            online = {u["name"].lower(): u for u in reply.fields["users"] if u["online"]}
            if mask.startswith("#"):
                members = groups.get(mask[1:].lower())
                names = [n for n in members or [] if n.lower() in online]
                channel = f"#{members_names[mask[1:].lower()]}" if members else mask
            else:  # a nick, or a mask of nicks (`*`, `?`); `0` is everyone
                pattern = "*" if mask == "0" else mask.lower()
                names = [u["name"] for k, u in online.items() if fnmatch.fnmatchcase(k, pattern)]
                channel = "*"
            lines = [
                self._num("352", channel, *self._user_host(online[n.lower()]), self.server, n,
                          "H", f"0 {self._real_name(online[n.lower()])}")
                for n in names
            ]  # fmt: skip
            return [*lines, self._num("315", mask, "End of /WHO list")]

        return [
            self._queue(Command("groups"), keep_groups),
            self._queue(Command("users", detail=True), render),
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
                self._num("311", n, *self._user_host(found[0]), "*", self._real_name(found[0])),
                self._num("312", n, self.server, "reactor-chat"),
                end,
            ]

        return [self._queue(Command("users", detail=True), render)]

    def _user_host(self, user: dict[str, Any]) -> tuple[str, str]:
        """WHO's and WHOIS's username and host of a user of `/users`: its IRC
        USER's username (as ~name), else the account's name."""
        return (f"~{user['username']}" if "username" in user else user["name"]), self.server

    def _real_name(self, user: dict[str, Any]) -> str:
        """IRC USER's realname of a user of `/users`, else the account's name."""
        return str(user.get("realname") or user["name"])

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


def _quietly(render: Render) -> Render:
    """`render`, with its errors left unsaid (a NOTICE's)."""

    def quiet(reply: Ok | Error) -> list[str]:
        return render(reply) if isinstance(reply, Ok) else []

    return quiet


def _targets(param: str) -> list[str]:
    """A comma-separated list of targets, without empty ones (`#a,,#b`)."""
    return [t for t in param.split(",") if t]
