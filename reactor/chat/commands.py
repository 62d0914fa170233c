"""The chat commands: one handler per command, each declaring its locks.

Owns: what every command means (docs/protocol.md §4, §6, §7), but the group
commands, which are reactor/chat/groups.py's (the state and lookups every
handler shares are reactor/chat/base.py's). Must not: touch sockets, the
selector or the reactor's connection objects: a handler sees a `ConnState`
and speaks through its outbox. Storage and session calls are made inside
`with self.locks.hold(...)` naming the keys of reactor/sync/locks.py.

A handler returns the fields of its `ok` reply (None if it put its reply
in the outbox itself) or raises `ChatError`. Checks come before writes, so a
failed command changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from reactor import limits
from reactor.actions import Close, LoggedIn, Replay, SetMode
from reactor.chat.arguments import group_name, positive_int
from reactor.chat.base import Fields
from reactor.chat.groups import GroupCommands
from reactor.chat.outbox import Outbox
from reactor.chat.passwords import hash_password, verify_password
from reactor.chat.sessions import ConnState
from reactor.chat.store import User
from reactor.errors import ChatError, LockTimeout
from reactor.kinds import Auth, ByeReason, Mode
from reactor.protocol import COMMANDS, Command, Error, Ok, stats_fields, valid_name
from reactor.sync.locks import DELIVERY, GROUPS, SESSIONS, STORAGE, group_key

log = logging.getLogger("reactor.chat.commands")


class Chat(GroupCommands):
    """Runs commands against the shared chat state."""

    def run(self, conn: ConnState, cmd: Command, out: Outbox) -> None:
        """Run one command and put exactly one reply in `out`."""
        out.start_command()
        if cmd.spec.needs_login and conn.user is None:
            out.reply(Error(cmd.name, "not_logged_in", f"log in first: {cmd.spec.usage}"))
            return
        if log.isEnabledFor(logging.DEBUG):
            shown = "" if cmd.name in ("login", "register") else " ".join(cmd.args)
            log.debug("%s → /%s %s", conn.user or conn.peer, cmd.name, shown)
        try:
            fields = getattr(self, "do_" + cmd.name)(conn, cmd, out)
        except _Answered:
            return
        except LockTimeout as exc:  # only the `inverted` demo strategy times out
            log.error("/%s from %s failed: %s", cmd.name, conn.user or conn.peer, exc)
            out.reply(Error(cmd.name, "internal", "internal server error; nothing was changed"))
            return
        except ChatError as exc:
            out.reply(Error(cmd.name, exc.code, exc.message))
            return
        except self.storage.Error as exc:  # the database failed or is unreachable
            log.error("/%s from %s failed: %s", cmd.name, conn.user or conn.peer, exc)
            out.reply(Error(cmd.name, "internal", "internal server error; nothing was changed"))
            return
        except Exception:
            log.exception("/%s from %s failed", cmd.name, conn.user or conn.peer)
            out.reply(Error(cmd.name, "internal", "internal server error; nothing was changed"))
            return
        if fields is not None:
            out.reply(Ok(cmd.name, fields))

    # --- accounts ------------------------------------------------------------------

    def do_register(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/register <name> <password>: create an account. Takes ``storage`` to
        check the name, hashes outside every lock, then ``groups`` and ``storage``
        to check again and write."""
        name, password = cmd.args
        if not valid_name(name):
            raise ChatError("bad_name", "names are 1-32 characters of A-Z a-z 0-9 _ . -")
        with self.locks.hold(STORAGE):
            taken = self.storage.name_taken(name)
        if taken:
            raise ChatError("name_taken", f"{name} is already taken")
        pwhash = hash_password(password)  # slow: outside every lock
        with self.locks.hold(GROUPS, STORAGE):
            if self.storage.name_taken(name):
                raise ChatError("name_taken", f"{name} is already taken")
            out.wrote(self.storage.create_user(name, pwhash))
        log.info("%s registered", name)
        return {"user": name}

    def do_login(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/login <name> [<password>]: bind the user to this connection and
        replay what it has not seen. Takes ``storage`` (--auth none: ``groups``
        and ``storage``), then ``delivery`` and, inside it, ``sessions`` and
        ``storage``; replies itself, so returns None."""
        if conn.user is not None:
            raise ChatError("already_logged_in", f"already logged in as {conn.user}")
        name = cmd.args[0]
        password = cmd.args[1] if len(cmd.args) > 1 else None
        claimed = 0
        if self.auth == Auth.NONE:
            user, claimed = self._claim(name, out)
        else:
            if password is None:
                raise ChatError("bad_args", "usage: /login <name> <password>")
            user = self._authenticate(conn, name, password, out)
        with self.locks.hold(DELIVERY):
            # Post what this batch has so far, so the login reply keeps its
            # place; then bind and snapshot under ``delivery``: messages
            # committed before are replayed, those after are pushed live.
            if claimed in out.flush_held(self.committer):
                raise ChatError("internal", "the server could not store the account")
            with self.locks.hold(SESSIONS, STORAGE):
                user = self.storage.user(user.name) or user
                if cmd.keep_existing and self.sessions.conn_of(user.name.lower()) is not None:
                    raise ChatError("name_in_use", f"{user.name} is online")
                replaced = self.sessions.bind(user.name.lower(), conn.conn_id)
                unread = self.storage.unread(user, self.committer.feed.watermark)
                groups = [g for g, _ in self.storage.user_groups(user.id)]
            conn.user, conn.user_id = user.name, user.id
            if replaced is not None:
                out.add(Close(replaced, ByeReason.REPLACED))
            out.add(LoggedIn(conn.conn_id, user.name))
            out.reply(Ok("login", {"user": user.name, "groups": groups, "unread": len(unread)}))
            if unread:
                out.add(Replay(conn.conn_id, tuple(unread)))
            out.post_now()
        log.info("%s logged in from %s%s", user.name, conn.peer, " (replacing)" if replaced else "")
        return None

    def _authenticate(self, conn: ConnState, name: str, password: str, out: Outbox) -> User:
        with self.locks.hold(STORAGE):
            user = self.storage.user(name) if valid_name(name) else None
        if verify_password(password, user.pwhash if user else None) and user:
            return user
        conn.login_failures += 1
        log.warning("failed login %d for %r from %s", conn.login_failures, name, conn.peer)
        if conn.login_failures >= self.max_login_failures:
            conn.closed = True
            out.reply(Error("login", "too_many_failures", "too many failed logins; closing"))
            out.add(Close(conn.conn_id, None))
            raise _Answered
        raise ChatError("auth_failed", "wrong name or password")

    def _claim(self, name: str, out: Outbox) -> tuple[User, int]:
        """--auth none: log in as `name`, creating the account if needed.
        Returns the user and the epoch of its creation (0 if it existed)."""
        if not valid_name(name):
            raise ChatError("bad_name", "names are 1-32 characters of A-Z a-z 0-9 _ . -")
        epoch = 0
        with self.locks.hold(GROUPS, STORAGE):
            user = self.storage.user(name)
            if user is None:
                if self.storage.name_taken(name):
                    raise ChatError("name_taken", f"{name} is a group")
                epoch = self.storage.create_user(name, None)
                out.wrote(epoch)
                user = self.storage.user(name)
        assert user is not None
        return user, epoch

    def do_whoami(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/whoami: the user this connection is logged in as. Takes no lock."""
        return {"user": conn.user}

    def do_users(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/users: every user, online ones first (asked by the IRC listener,
        with the username and realname of IRC sessions here). Takes
        ``sessions`` and ``storage``."""
        with self.locks.hold(SESSIONS, STORAGE):
            names = self.storage.user_names()
            online = self.sessions.online()
            idents = {n: self.sessions.ident_of(n.lower()) for n in names} if cmd.detail else {}
        users: list[dict[str, Any]] = [{"name": n, "online": n.lower() in online} for n in names]
        for u in users:
            ident = idents.get(u["name"])
            if ident is not None:
                u["username"], u["realname"] = ident
        users.sort(key=lambda u: (not u["online"], u["name"].lower()))
        return {"users": users}

    # --- messages --------------------------------------------------------------------

    def do_send(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/send <user> <text>: store a private message. Takes ``storage``."""
        with self.locks.hold(STORAGE):
            to = self._address(cmd.args[0])
            msg, epoch = self.storage.add_message(
                self._me(conn), cmd.text, to=to, recipients=(to.name.lower(),), notice=cmd.notice
            )
        out.wrote(epoch)
        return {"id": msg.id}

    def do_sendgroup(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/sendgroup <group> <text>: store a message to a group you are in.
        Takes the group's key and ``storage``."""
        name = group_name(cmd.args[0])
        with self.locks.hold(group_key(name), STORAGE):
            group = self._member_group(conn, name)
            members = tuple(n.lower() for _, n in self.storage.members(group))
            msg, epoch = self.storage.add_message(
                self._me(conn), cmd.text, group=group, recipients=members, notice=cmd.notice
            )
        out.wrote(epoch)
        return {"id": msg.id}

    def do_history(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/history <user-or-group> [<limit>]: the last messages with a user,
        or of a group you are in. Takes ``storage``."""
        limit = limits.HISTORY_DEFAULT
        if len(cmd.args) > 1:
            limit = positive_int(cmd.args[1], "limit")
        limit = min(limit, limits.HISTORY_MAX)
        target = cmd.args[0]
        with self.locks.hold(STORAGE):  # "#name" is a group, never a user
            other = None if target.startswith("#") else self.storage.user(target)
            if other is not None:
                shown = other.name
                msgs = self.storage.private_history(self._me(conn), other, limit)
            else:
                group = self.storage.group(target.removeprefix("#"))
                if group is None:
                    raise ChatError("unknown_user", f"no user or group named {target}")
                if not self.storage.is_member(group, self._my_id(conn)):
                    raise ChatError("not_member", f"you are not in #{group.name}")
                shown = group.name
                msgs = self.storage.group_history(group, limit)
        return {"with": shown, "messages": [m.as_dict() for m in msgs]}

    def do_ack(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/ack <id>: you have seen every message up to `id` (raises the
        cursor replay starts from). Takes ``storage``."""
        upto = positive_int(cmd.args[0], "id", allow_zero=True)
        with self.locks.hold(STORAGE):
            if upto > self.storage.committed_max_id:
                raise ChatError("bad_args", f"no message with id {upto} yet")
            out.wrote(self.storage.set_cursor(self._my_id(conn), upto))
        return {"id": upto}

    def text_ack(self, conn: ConnState, upto: int, out: Outbox) -> None:
        """Text mode: messages up to `upto` reached the socket; count them seen."""
        if conn.user_id is not None:
            with self.locks.hold(STORAGE):
                out.wrote(self.storage.set_cursor(conn.user_id, upto))

    # --- connection --------------------------------------------------------------------

    def do_mode(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/mode json|text: switch this connection's encoding, from this reply
        on (the I/O model encodes). Takes no lock."""
        try:
            mode = Mode(cmd.args[0].lower())
        except ValueError:
            raise ChatError("bad_args", "usage: /mode json|text") from None
        out.add(SetMode(conn.conn_id, mode))  # the reactor encodes, so it keeps the mode
        return {"mode": mode}

    def do_ping(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/ping [<token>]: answer with `token`. Takes no lock."""
        return {"token": cmd.args[0] if cmd.args else None}

    def do_help(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/help [<command>]: every command's usage, or one's. Takes no lock."""
        if cmd.args:
            spec = COMMANDS.get(cmd.args[0].lstrip("/").lower())
            if spec is None:
                raise ChatError("bad_args", f"no command {cmd.args[0]}; try /help")
            return {"usage": spec.usage, "summary": spec.summary}
        every = [{"command": n, "usage": c.usage, "summary": c.summary}
                 for n, c in COMMANDS.items()]  # fmt: skip
        return {"commands": every}

    def do_stats(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/stats: lock, pool and connection statistics. Takes no lock: the
        counters are read without theirs, so a snapshot may be a pass behind."""
        if self._statistics is None:
            raise ChatError("internal", "statistics are not available in this server")
        return stats_fields(self._statistics())

    def do_exit(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/exit: log out and close the connection. Takes ``sessions``;
        replies itself, so returns None."""
        self.disconnect(conn)
        conn.closed = True
        out.reply(Ok("exit", {}))
        out.add(Close(conn.conn_id, ByeReason.EXIT))
        return None

    def disconnect(self, conn: ConnState) -> None:
        """Log the connection's user out (unless a newer login replaced it).
        `conn.user_id` stays: text-mode acks of bytes already written still
        count for that user."""
        if conn.user is not None and not conn.logged_out:
            with self.locks.hold(SESSIONS):
                self.sessions.unbind(conn.user.lower(), conn.conn_id)
            conn.logged_out = True
            log.info("%s disconnected", conn.user)


class _Answered(ChatError):
    """The handler already put its reply in the outbox."""

    def __init__(self) -> None:
        super().__init__("", "")
