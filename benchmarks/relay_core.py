"""The benchmark's reference relay itself: chat state in memory and the
coroutine that serves one connection, in plain asyncio streams.

Owns: `Relay`, an in-memory relay that speaks the subset of PROTOCOL.md a
load generator uses (register, login, private and group messages, acks,
lists, mode, ping, help, exit): its users, groups and sessions, the
per-connection coroutine (`Relay.handle`, the `asyncio.start_server`
callback), the commands, delivery with its slow-consumer drop, and the
`bye shutdown` to every connection (`Relay.shutdown`).

Design: the most ordinary asyncio server there is. One coroutine per
connection reads with `readuntil(b"\\n")` under the 4096-byte line limit and
answers with `write` + `drain` (backpressure: a client that does not read
its replies is not read either). Framing, parsing and encoding are the
project's sans-IO `reactor.protocol`, so every byte on the wire is what the
real server would send. The loop is single-threaded: a message's id is
assigned and its bytes are written to every recipient in one step, so ids
reach each recipient in order with no lock at all.

Must not: store anything (no database, no durability, no history, no replay:
`unread` is always 0); check passwords (`/login` claims any free name, like
the real server's `--auth none`); rate-limit or time out logins; import the
real server's machinery (loop, workers, locks, storage), which it is
measured against; bind a socket or handle signals (benchmarks/relay.py does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from reactor import limits
from reactor.errors import ChatError
from reactor.kinds import ByeReason, Mode
from reactor.protocol import (
    COMMANDS,
    JSON,
    TEXT,
    BadLine,
    Bye,
    Command,
    Error,
    Event,
    FrameError,
    Framer,
    Message,
    Notice,
    Ok,
    encode,
    parse,
    valid_name,
)

log = logging.getLogger("benchmarks.relay_core")

#: The real server's banner (reactor/net/loop.py), so clients see the same first line.
WELCOME = Notice("Welcome to the chat server! Type /help for commands.")

#: The commands a load generator uses. The others need what the relay leaves
#: out on purpose: stored history (/history, and /leave, whose group outlives
#: it there) or the real server's locks (/stats).
SUBSET = (
    "register", "login", "send", "group", "sendgroup", "ack", "users", "groups",
    "whoami", "mode", "ping", "help", "exit",
)  # fmt: skip
NOT_IMPLEMENTED = frozenset(COMMANDS) - frozenset(SUBSET)

_BAD_NAME = "names are 1-32 characters of A-Z a-z 0-9 _ . -"

Fields = dict[str, Any]


@dataclass
class Group:
    """A group: its name as first written and its members."""

    name: str
    # Invariant: user key -> user name as first written, one entry per member.
    members: dict[str, str] = field(default_factory=dict)

    def member_names(self) -> list[str]:
        """Member names in the real server's order (by lower-case name)."""
        return [self.members[key] for key in sorted(self.members)]


class Conn:
    """One client connection: its writer, output mode and logged-in user."""

    __slots__ = ("closed", "key", "mode", "user", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.mode = TEXT
        self.user: str | None = None  # name as first written, once logged in
        self.key: str | None = None  # user.lower()
        # Invariant: once closed, a `bye` was written and nothing more is.
        self.closed = False

    def send(self, event: Event) -> None:
        """Queue one event, encoded in this connection's mode."""
        self.writer.write(encode(event, self.mode))


class Relay:
    """The whole chat state, in memory, and the per-connection coroutine.

    Everything here runs on the event loop's one thread, between awaits, so
    no state needs a lock; a command runs to completion without awaiting.
    """

    def __init__(self) -> None:
        self.users: dict[str, str] = {}  # user key -> name as first written
        self.groups: dict[str, Group] = {}  # group key -> group
        # Invariant: user key -> keys of the groups that user is a member of.
        self.memberships: dict[str, set[str]] = {}
        # Invariant: user key -> its one open, logged-in connection.
        self.sessions: dict[str, Conn] = {}
        self.conns: dict[Conn, asyncio.Task] = {}  # open connections -> handler
        self.last_id = 0  # id of the newest message; ids only grow
        self.stopping = False  # set once by `shutdown`
        self._handlers: dict[str, Callable[[Conn, Command], Fields | None]] = {
            name: getattr(self, "_do_" + name) for name in SUBSET
        }

    # --- connections -------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until its EOF, `/exit` or any `bye` (the
        `asyncio.start_server` callback)."""
        conn = Conn(writer)
        self.conns[conn] = asyncio.current_task()  # type: ignore[assignment]
        framer = Framer()
        try:
            conn.send(WELCOME)
            if self.stopping:  # accepted just before the listener closed
                self._bye(conn, "shutdown", limits.SHUTDOWN_LINGER_SECONDS)
            while not conn.closed:
                try:
                    data = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError as exc:
                    # Over the limit: the framer gets the line's head, answers
                    # line_too_long once and drops the rest up to its "\n".
                    data = await reader.readexactly(exc.consumed)
                except asyncio.IncompleteReadError:
                    break  # EOF; an unterminated last line is dropped
                for frame in framer.feed(data):
                    if not conn.closed:
                        self.run(conn, frame)
                await writer.drain()
        except OSError:
            pass  # the peer reset the connection: nothing to answer
        finally:
            del self.conns[conn]
            self._log_out(conn)
            await self._close(conn, reader)

    async def _close(self, conn: Conn, reader: asyncio.StreamReader) -> None:
        if conn.closed:
            # Our `bye` is queued behind a FIN: let the peer read it and hang
            # up first, since closing with its unread input here would send
            # RST. The linger timer of `_bye` aborts a peer that never does.
            try:
                while await reader.read(limits.RECV_SIZE):
                    pass
            except OSError:
                pass
        conn.writer.close()

    def _bye(self, conn: Conn, reason: str, linger: float = limits.CLOSE_LINGER_SECONDS) -> None:
        """Write `bye` as `conn`'s last line and close once it is flushed."""
        if conn.closed:
            return
        conn.send(Bye(ByeReason(reason)))
        conn.closed = True
        self._log_out(conn)
        transport = conn.writer.transport
        if conn.writer.can_write_eof():
            conn.writer.write_eof()  # FIN once the buffer is flushed
        asyncio.get_running_loop().call_later(linger, transport.abort)

    def _log_out(self, conn: Conn) -> None:
        if conn.key is not None and self.sessions.get(conn.key) is conn:
            del self.sessions[conn.key]
            log.debug("%s disconnected", conn.user)

    async def shutdown(self) -> None:
        """Say `bye shutdown` to every connection and wait for them to end."""
        self.stopping = True
        for conn in list(self.conns):
            self._bye(conn, "shutdown", limits.SHUTDOWN_LINGER_SECONDS)
        if self.conns:
            await asyncio.wait(set(self.conns.values()), timeout=limits.SHUTDOWN_GRACE_SECONDS)

    # --- commands ---------------------------------------------------------------

    def run(self, conn: Conn, frame: str | FrameError) -> None:
        """Answer one frame with exactly one reply, then make its deliveries."""
        if isinstance(frame, FrameError):
            conn.send(Error(None, frame.code, frame.message))
            return
        cmd = parse(frame)
        name = cmd.cmd if isinstance(cmd, BadLine) else cmd.name
        if name in NOT_IMPLEMENTED:  # whatever its arguments
            message = f"the benchmark relay does not implement /{name}"
            conn.send(Error(name, "unknown_command", message))
            return
        if isinstance(cmd, BadLine):
            conn.send(Error(cmd.cmd, cmd.code, cmd.message))
            return
        if cmd.spec.needs_login and conn.user is None:
            conn.send(Error(cmd.name, "not_logged_in", f"log in first: {cmd.spec.usage}"))
            return
        try:
            fields = self._handlers[cmd.name](conn, cmd)
        except ChatError as exc:
            conn.send(Error(cmd.name, exc.code, exc.message))
            return
        if fields is not None:
            conn.send(Ok(cmd.name, fields))

    # Each handler checks everything before it changes anything, so a failed
    # command changes nothing. It returns its `ok` fields, or None when it
    # sent its reply itself (to deliver after it).

    def _do_register(self, conn: Conn, cmd: Command) -> Fields:
        name = cmd.args[0]
        self._check_free(name)
        self.users[name.lower()] = name
        return {"user": name}

    def _do_login(self, conn: Conn, cmd: Command) -> Fields:
        if conn.user is not None:
            raise ChatError("already_logged_in", f"already logged in as {conn.user}")
        name = cmd.args[0]
        key = name.lower()
        if key not in self.users:
            self._check_free(name)
            self.users[key] = name
        old = self.sessions.get(key)
        if old is not None:
            self._bye(old, "replaced")
        self.sessions[key] = conn
        conn.user, conn.key = self.users[key], key
        log.debug("%s logged in", conn.user)
        groups = [self.groups[g].name for g in sorted(self.memberships.get(key, ()))]
        return {"user": conn.user, "groups": groups, "unread": 0}

    def _do_send(self, conn: Conn, cmd: Command) -> None:
        to = self._user_key(cmd.args[0])
        msg = self._message(conn, cmd.text, to=self.users[to])
        conn.send(Ok("send", {"id": msg.id}))
        self._deliver(msg, (to,))

    def _do_group(self, conn: Conn, cmd: Command) -> Fields:
        name = cmd.args[0]
        if not valid_name(name):
            raise ChatError("bad_name", _BAD_NAME)
        added = [self._user_key(n) for n in cmd.args[1:]]
        key = name.lower()
        group = self.groups.get(key)
        if group is None:
            if key in self.users:
                raise ChatError("name_taken", f"{name} is a user's name")
            group = self.groups[key] = Group(name)
            added.insert(0, conn.key)  # type: ignore[arg-type]
        elif conn.key not in group.members:
            raise ChatError("not_member", f"only members can add to #{group.name}")
        for user in added:
            group.members[user] = self.users[user]
            self.memberships.setdefault(user, set()).add(key)
        return {"group": group.name, "members": group.member_names()}

    def _do_sendgroup(self, conn: Conn, cmd: Command) -> None:
        name = cmd.args[0]
        group = self.groups.get(name.lower())
        if group is None:
            raise ChatError("unknown_group", f"no group named {name}")
        if conn.key not in group.members:
            raise ChatError("not_member", f"you are not in #{group.name}")
        msg = self._message(conn, cmd.text, group=group.name)
        conn.send(Ok("sendgroup", {"id": msg.id}))
        self._deliver(msg, group.members)

    def _do_ack(self, conn: Conn, cmd: Command) -> Fields:
        text = cmd.args[0]
        try:
            upto = int(text)
        except ValueError:
            upto = -1
        if not text.isdigit() or upto < 0:
            raise ChatError("bad_args", "id must be a whole number, 0 or more")
        if upto > self.last_id:
            raise ChatError("bad_args", f"no message with id {upto} yet")
        return {"id": upto}

    def _do_users(self, conn: Conn, cmd: Command) -> Fields:
        online = [(n, k in self.sessions) for k, n in self.users.items()]
        online.sort(key=lambda u: (not u[1], u[0].lower()))
        return {"users": [{"name": n, "online": on} for n, on in online]}

    def _do_groups(self, conn: Conn, cmd: Command) -> Fields:
        mine = sorted(self.memberships.get(conn.key, ()))  # type: ignore[arg-type]
        groups = [self.groups[g] for g in mine]
        return {"groups": [{"name": g.name, "members": g.member_names()} for g in groups]}

    def _do_whoami(self, conn: Conn, cmd: Command) -> Fields:
        return {"user": conn.user}

    def _do_mode(self, conn: Conn, cmd: Command) -> Fields:
        mode = cmd.args[0].lower()
        if mode not in (JSON, TEXT):
            raise ChatError("bad_args", "usage: /mode json|text")
        conn.mode = Mode(mode)  # the reply is already in the new mode
        return {"mode": mode}

    def _do_ping(self, conn: Conn, cmd: Command) -> Fields:
        return {"token": cmd.args[0] if cmd.args else None}

    def _do_help(self, conn: Conn, cmd: Command) -> Fields:
        if cmd.args:
            word = cmd.args[0].lstrip("/").lower()
            if word not in SUBSET:
                raise ChatError("bad_args", f"no command {cmd.args[0]} in this relay; try /help")
            return {"usage": COMMANDS[word].usage, "summary": COMMANDS[word].summary}
        entries = [(n, COMMANDS[n].usage, COMMANDS[n].summary) for n in SUBSET]
        return {"commands": [{"command": n, "usage": u, "summary": s} for n, u, s in entries]}

    def _do_exit(self, conn: Conn, cmd: Command) -> None:
        conn.send(Ok("exit", {}))
        self._bye(conn, "exit")

    # --- helpers ------------------------------------------------------------------

    def _check_free(self, name: str) -> None:
        if not valid_name(name):
            raise ChatError("bad_name", _BAD_NAME)
        key = name.lower()
        if key in self.users or key in self.groups:
            raise ChatError("name_taken", f"{name} is already taken")

    def _user_key(self, name: str) -> str:
        key = name.lower()
        if key not in self.users:
            hint = " (a group: use /sendgroup)" if key in self.groups else ""
            raise ChatError("unknown_user", f"no user named {name}{hint}")
        return key

    def _message(
        self, conn: Conn, text: str, *, to: str | None = None, group: str | None = None
    ) -> Message:
        self.last_id += 1
        return Message(self.last_id, conn.user, to, group, text, time.time())  # type: ignore[arg-type]

    def _deliver(self, msg: Message, keys: Iterable[str]) -> None:
        """Write `msg` to every online user in `keys`, encoded once per mode.
        A recipient whose unread output passes --max-outbuf's default is
        dropped with `bye slow_consumer`, as the real server would."""
        encoded: dict[str, bytes] = {}
        for key in keys:
            peer = self.sessions.get(key)
            if peer is None:
                continue
            transport = peer.writer.transport
            if transport.is_closing():
                continue  # lost; its handler has not logged it out yet
            data = encoded.get(peer.mode)
            if data is None:
                data = encoded[peer.mode] = encode(msg, peer.mode)
            peer.writer.write(data)
            if transport.get_write_buffer_size() > limits.MAX_OUTBUF:
                log.warning("%s is not reading: dropped as slow consumer", peer.user)
                self._bye(peer, "slow_consumer")
