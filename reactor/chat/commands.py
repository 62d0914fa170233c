"""The chat commands: one handler per command, each declaring its locks.

Owns: what every command means (PROTOCOL.md §4, §6, §7) and the `Outbox`
that collects a batch's replies and actions. Must not: touch sockets, the
selector or the reactor's connection objects: a handler sees a `ConnState`
and speaks through its outbox. Storage and session calls are made inside
`with self.locks.hold(...)` naming the keys of reactor/sync/locks.py.

A handler returns the fields of its `ok` reply or raises `ChatError`.
Checks come before writes, so a failed command changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from reactor import limits
from reactor.actions import Action, Close, Emit, LoggedIn, Replay, SetMode
from reactor.chat.commit import Committer
from reactor.chat.passwords import hash_password, verify_password
from reactor.chat.sessions import ConnState, Sessions
from reactor.chat.storage import Storage, User
from reactor.errors import ChatError, LockTimeout
from reactor.protocol import COMMANDS, JSON, TEXT, Command, Error, Event, Ok, valid_name
from reactor.sync.locks import DELIVERY, GROUPS, SESSIONS, STORAGE, Locking, group_key

log = logging.getLogger("reactor.chat.commands")


class Outbox:
    """A batch's actions, posted to the reactor in order when the batch ends
    (or earlier by a login, see `flush_held`). Each reply of a command that
    wrote remembers its epoch: if that epoch fails to commit, the reply
    becomes `internal` (`settle`), so no `ok` is ever sent for a lost write."""

    def __init__(self, conn_id: int, post: Callable[[Sequence[Action]], None]) -> None:
        self.conn_id = conn_id
        self.actions: list[Action] = []
        self.epochs: set[int] = set()  # epochs written into and not yet settled
        self._post = post
        self._cmd_epoch = 0  # epoch the current command wrote into, 0 if none
        self._write_replies: list[tuple[int, int]] = []  # (index in actions, epoch)

    def start_command(self) -> None:
        self._cmd_epoch = 0

    def wrote(self, epoch: int) -> None:
        self._cmd_epoch = epoch
        self.epochs.add(epoch)

    def reply(self, event: Event) -> None:
        if self._cmd_epoch:
            self._write_replies.append((len(self.actions), self._cmd_epoch))
        self.actions.append(Emit(self.conn_id, event))

    def add(self, action: Action) -> None:
        self.actions.append(action)

    def settle(self, lost: set[int]) -> None:
        """After the commit: turn replies of writes in `lost` epochs into `internal`."""
        for i, epoch in self._write_replies:
            if epoch in lost:
                cmd = self.actions[i].event.cmd  # type: ignore[union-attr]
                msg = "the server could not store this; nothing was changed"
                self.actions[i] = Emit(self.conn_id, Error(cmd, "internal", msg))
        self._write_replies = []
        self.epochs = set()
        self._cmd_epoch = 0

    def flush_held(self, committer: Committer) -> set[int]:
        """Commit and post everything so far; caller holds ``delivery``.
        Returns the epochs whose writes were lost."""
        lost = committer.commit_held(self.epochs) if self.epochs else set()
        self.settle(lost)
        self.post_now()
        return lost

    def post_now(self) -> None:
        """Post the actions so far; only after `settle` if anything was written."""
        assert not self._write_replies, "posting replies of uncommitted writes"
        if self.actions:
            self._post(self.actions)
            self.actions = []


class Chat:
    """Runs commands against the shared chat state."""

    def __init__(
        self,
        locks: Locking,
        storage: Storage,
        sessions: Sessions,
        committer: Committer,
        *,
        auth: str = "password",
        max_login_failures: int = limits.MAX_LOGIN_FAILURES,
    ) -> None:
        self.locks = locks
        self.storage = storage
        self.sessions = sessions
        self.committer = committer
        self.auth = auth
        self.max_login_failures = max_login_failures
        # Set by the server once the pool exists: () -> the /stats fields.
        self.stats_source: Callable[[], dict] | None = None

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
        except Exception:
            log.exception("/%s from %s failed", cmd.name, conn.user or conn.peer)
            out.reply(Error(cmd.name, "internal", "internal server error; nothing was changed"))
            return
        if fields is not None:
            out.reply(Ok(cmd.name, fields))

    # --- accounts ------------------------------------------------------------------

    def do_register(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
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

    def do_login(self, conn: ConnState, cmd: Command, out: Outbox) -> None:
        if conn.user is not None:
            raise ChatError("already_logged_in", f"already logged in as {conn.user}")
        name = cmd.args[0]
        password = cmd.args[1] if len(cmd.args) > 1 else None
        claimed = 0
        if self.auth == "none":
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
                replaced = self.sessions.bind(user.name.lower(), conn.conn_id)
                unread = self.storage.unread(user, self.storage.committed_max_id)
                groups = [g for g, _ in self.storage.user_groups(user.id)]
            conn.user, conn.user_id = user.name, user.id
            if replaced is not None:
                out.add(Close(replaced, "replaced"))
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

    def do_whoami(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        return {"user": conn.user}

    def do_users(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        with self.locks.hold(SESSIONS, STORAGE):
            names = self.storage.user_names()
            online = self.sessions.online()
        users = [{"name": n, "online": n.lower() in online} for n in names]
        users.sort(key=lambda u: (not u["online"], u["name"].lower()))
        return {"users": users}

    # --- messages --------------------------------------------------------------------

    def do_send(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        with self.locks.hold(STORAGE):
            to = self._user(cmd.args[0])
            msg, epoch = self.storage.add_message(
                self._me(conn), cmd.text, to=to, recipients=(to.name.lower(),)
            )
        out.wrote(epoch)
        return {"id": msg.id}

    def do_sendgroup(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        name = _group_name(cmd.args[0])
        with self.locks.hold(group_key(name), STORAGE):
            group = self._member_group(conn, name)
            members = tuple(n.lower() for _, n in self.storage.members(group))
            msg, epoch = self.storage.add_message(
                self._me(conn), cmd.text, group=group, recipients=members
            )
        out.wrote(epoch)
        return {"id": msg.id}

    def do_history(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        limit = limits.HISTORY_DEFAULT
        if len(cmd.args) > 1:
            limit = _positive_int(cmd.args[1], "limit")
        limit = min(limit, limits.HISTORY_MAX)
        target = cmd.args[0]
        with self.locks.hold(STORAGE):
            other = self.storage.user(target)
            if other is not None:
                shown = other.name
                msgs = self.storage.private_history(self._me(conn), other, limit)
            else:
                group = self.storage.group(target)
                if group is None:
                    raise ChatError("unknown_user", f"no user or group named {target}")
                if not self.storage.is_member(group, conn.user_id):
                    raise ChatError("not_member", f"you are not in #{group.name}")
                shown = group.name
                msgs = self.storage.group_history(group, limit)
        return {"with": shown, "messages": [m.as_dict() for m in msgs]}

    def do_ack(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        upto = _positive_int(cmd.args[0], "id", allow_zero=True)
        with self.locks.hold(STORAGE):
            if upto > self.storage.committed_max_id:
                raise ChatError("bad_args", f"no message with id {upto} yet")
            out.wrote(self.storage.set_cursor(conn.user_id, upto))
        return {"id": upto}

    def text_ack(self, conn: ConnState, upto: int, out: Outbox) -> None:
        """Text mode: messages up to `upto` reached the socket; count them seen."""
        if conn.user_id is not None:
            with self.locks.hold(STORAGE):
                out.wrote(self.storage.set_cursor(conn.user_id, upto))

    # --- groups ---------------------------------------------------------------------

    def do_group(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        name, invitees = cmd.args[0], cmd.args[1:]
        if not valid_name(name):
            raise ChatError("bad_name", "names are 1-32 characters of A-Z a-z 0-9 _ . -")
        with self.locks.hold(GROUPS, group_key(name), STORAGE):
            users = [self._user(n) for n in invitees]
            group = self.storage.group(name)
            if group is None:
                if self.storage.name_taken(name):
                    raise ChatError("name_taken", f"{name} is a user's name")
                group, epoch = self.storage.create_group(name)
                out.wrote(epoch)
                users.insert(0, self._me(conn))
            elif not self.storage.is_member(group, conn.user_id):
                raise ChatError("not_member", f"only members can add to #{group.name}")
            for user in users:
                out.wrote(self.storage.add_member(group, user.id))
            members = [n for _, n in self.storage.members(group)]
        return {"group": group.name, "members": members}

    def do_leave(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        name = _group_name(cmd.args[0])
        with self.locks.hold(GROUPS, group_key(name), STORAGE):
            group = self._member_group(conn, name)
            out.wrote(self.storage.remove_member(group, conn.user_id))
            if not self.storage.members(group):
                out.wrote(self.storage.delete_group(group))
        return {"group": group.name}

    def do_groups(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        with self.locks.hold(STORAGE):
            groups = self.storage.user_groups(conn.user_id)
        return {"groups": [{"name": g, "members": m} for g, m in groups]}

    # --- connection --------------------------------------------------------------------

    def do_mode(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        mode = cmd.args[0].lower()
        if mode not in (JSON, TEXT):
            raise ChatError("bad_args", "usage: /mode json|text")
        out.add(SetMode(conn.conn_id, mode))  # the reactor encodes, so it keeps the mode
        return {"mode": mode}

    def do_ping(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        return {"token": cmd.args[0] if cmd.args else None}

    def do_help(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        if cmd.args:
            spec = COMMANDS.get(cmd.args[0].lstrip("/").lower())
            if spec is None:
                raise ChatError("bad_args", f"no command {cmd.args[0]}; try /help")
            return {"usage": spec.usage, "summary": spec.summary}
        return {
            "commands": [
                {"command": n, "usage": s.usage, "summary": s.summary} for n, s in COMMANDS.items()
            ]
        }

    def do_stats(self, conn: ConnState, cmd: Command, out: Outbox) -> dict:
        # Reads counters without their locks (a snapshot may be a pass behind).
        return self.stats_source() if self.stats_source else {}

    def do_exit(self, conn: ConnState, cmd: Command, out: Outbox) -> None:
        self.disconnect(conn)
        conn.closed = True
        out.reply(Ok("exit", {}))
        out.add(Close(conn.conn_id, "exit"))
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

    # --- lookups (caller holds ``storage``) ------------------------------------------------

    def _me(self, conn: ConnState) -> User:
        return User(conn.user_id, conn.user, None, 0)

    def _user(self, name: str) -> User:
        user = self.storage.user(name)
        if user is None:
            hint = " (a group: use /sendgroup)" if self.storage.group(name) else ""
            raise ChatError("unknown_user", f"no user named {name}{hint}")
        return user

    def _member_group(self, conn: ConnState, name: str):
        group = self.storage.group(name)
        if group is None:
            raise ChatError("unknown_group", f"no group named {name}")
        if not self.storage.is_member(group, conn.user_id):
            raise ChatError("not_member", f"you are not in #{group.name}")
        return group


class _Answered(ChatError):
    """The handler already put its reply in the outbox."""

    def __init__(self) -> None:
        super().__init__("", "")


def _group_name(name: str) -> str:
    """`name` if it could be a group's; checked before its lock is made, so
    made-up names cannot grow the lock table (reactor/sync/locks.py)."""
    if not valid_name(name):
        raise ChatError("unknown_group", f"no group named {name}")
    return name


def _positive_int(text: str, what: str, allow_zero: bool = False) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not text.isdigit() or value < (0 if allow_zero else 1):
        least = "0 or more" if allow_zero else "1 or more"
        raise ChatError("bad_args", f"{what} must be a whole number, {least}")
    return value
