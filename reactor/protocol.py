"""Wire protocol v1, sans-IO: bytes in, frames and commands out; events in,
bytes out (PROTOCOL.md).

Owns: line framing, command parsing and the command table, the event model
(frozen dataclasses) and its two encodings, text and JSON.
Must not: import socket, selectors or threading, or know about users,
storage or locks. Everything here is a pure function or a small state machine
fed by its caller, so it is tested without sockets.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

from reactor import limits

# --- framing ----------------------------------------------------------------


@dataclass(frozen=True)
class FrameError:
    """A line the peer sent that cannot become a command (its fault)."""

    code: str  # "line_too_long" or "bad_encoding"
    message: str


Frame = str | FrameError


class Framer:
    """Cuts a byte stream into lines (PROTOCOL §1).

    `feed(data)` returns the complete frames found so far: each a decoded line
    without its terminator (`\\r\\n` or `\\n`), or a `FrameError`. Empty lines
    are skipped (a line of spaces is not empty: it is an unknown command).
    A line longer than `max_line` bytes (terminator included) yields one
    `line_too_long` and is discarded up to its `\\n`.
    """

    def __init__(self, max_line: int = limits.MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        # Invariant: while _discarding, the bytes since the last "\n" belong to
        # an overlong line that was already reported; they are dropped.
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        buf = self._buf
        buf += data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            if self._discarding:
                self._discarding = False
            elif nl + 1 - start > self.max_line:
                frames.append(_too_long(self.max_line))
            else:
                frames.extend(_decode(buf, start, nl))
            start = nl + 1
        del buf[:start]
        if not self._discarding and len(buf) >= self.max_line:
            # No terminator within the limit: report now, drop until "\n".
            frames.append(_too_long(self.max_line))
            self._discarding = True
        if self._discarding:
            buf.clear()
        return frames

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete line held, for tests and statistics."""
        return len(self._buf)


def _too_long(max_line: int) -> FrameError:
    return FrameError("line_too_long", f"line longer than {max_line} bytes, discarded")


def _decode(buf: bytearray, start: int, nl: int) -> list[Frame]:
    end = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl
    try:
        line = buf[start:end].decode("utf-8")
    except UnicodeDecodeError:
        return [FrameError("bad_encoding", "line is not valid UTF-8, discarded")]
    return [line] if line else []


# --- commands -----------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """How one command is written: its fixed arguments, optional ones, and
    whether the rest of the line is verbatim text or more arguments."""

    usage: str
    summary: str
    args: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    rest: str = ""  # "" (nothing more), "text" (verbatim), "names" (0+ words)
    needs_login: bool = True


COMMANDS: dict[str, Spec] = {
    "register": Spec(
        "/register <name> <password>",
        "create an account",
        ("name", "password"),
        needs_login=False,
    ),
    "login": Spec(
        "/login <name> <password>",
        "log in (replays unread messages)",
        ("name",),
        ("password",),
        needs_login=False,
    ),
    "send": Spec("/send <user> <text>", "private message", ("user",), rest="text"),
    "group": Spec(
        "/group <group> <user>...",
        "create a group, or add users to yours",
        ("group",),
        rest="names",
    ),
    "sendgroup": Spec("/sendgroup <group> <text>", "message to a group", ("group",), rest="text"),
    "leave": Spec("/leave <group>", "leave a group", ("group",)),
    "users": Spec("/users", "every user, and who is online"),
    "groups": Spec("/groups", "your groups and their members"),
    "whoami": Spec("/whoami", "who you are logged in as"),
    "history": Spec(
        "/history <user-or-group> [<limit>]",
        "last messages of a conversation",
        ("with",),
        ("limit",),
    ),
    "ack": Spec("/ack <id>", "you have seen every message up to id", ("id",)),
    "mode": Spec("/mode json|text", "switch output encoding", ("mode",), needs_login=False),
    "ping": Spec("/ping [<token>]", "liveness check", (), ("token",), needs_login=False),
    "help": Spec("/help [<command>]", "this list", (), ("command",), needs_login=False),
    "stats": Spec("/stats", "lock statistics and the worker pool"),
    "exit": Spec("/exit", "leave", needs_login=False),
}


@dataclass(frozen=True)
class Command:
    """A parsed command line: `name` is the lower-case word without `/`."""

    name: str
    args: tuple[str, ...] = ()
    text: str = ""

    @property
    def spec(self) -> Spec:
        return COMMANDS[self.name]


@dataclass(frozen=True)
class BadLine:
    """A line that is not a valid command; answered with `code` (peer's fault)."""

    cmd: str | None
    code: str
    message: str


def command_word(line: str) -> str | None:
    """The lower-case command word of `line`, or None if it has none."""
    word = line.lstrip(" ").split(" ", 1)[0]
    if len(word) < 2 or not word.startswith("/"):
        return None
    return word[1:].lower()


def parse(line: str) -> Command | BadLine:
    """Parse one decoded line into a `Command`, or a `BadLine` saying why not."""
    body = line.lstrip(" ")
    head, _, tail = body.partition(" ")
    if not head.startswith("/") or len(head) < 2:
        return BadLine(None, "unknown_command", "commands start with /; try /help")
    name = head[1:].lower()
    spec = COMMANDS.get(name)
    if spec is None:
        return BadLine(name, "unknown_command", f"unknown command /{name}; try /help")
    args: list[str] = []
    tail = tail.lstrip(" ")
    for _ in spec.args:
        if not tail:
            return BadLine(name, "bad_args", f"usage: {spec.usage}")
        word, _, tail = tail.partition(" ")
        args.append(word)
        tail = tail.lstrip(" ")
    if spec.rest == "text":
        if not tail:
            return BadLine(name, "bad_args", f"usage: {spec.usage}")
        return Command(name, tuple(args), tail)
    words = [w for w in tail.split(" ") if w]  # spaces only, like the fixed args
    if spec.rest == "names":
        return Command(name, tuple(args) + tuple(words))
    if len(words) > len(spec.optional):
        return BadLine(name, "bad_args", f"usage: {spec.usage}")
    return Command(name, tuple(args) + tuple(words))


def valid_name(name: str) -> bool:
    """True for 1-32 characters of [A-Za-z0-9_.-] (PROTOCOL §3)."""
    return 0 < len(name) <= limits.MAX_NAME and all(c in _NAME_CHARS for c in name)


_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


# --- events -------------------------------------------------------------------


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

    def as_dict(self) -> dict[str, Any]:
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

    reason: str  # exit | replaced | slow_consumer | idle | shutdown | server_full


@dataclass(frozen=True)
class Notice:
    """Unasked information for people (welcome banner); type `notice` in JSON."""

    text: str


Event = Ok | Error | Message | Bye | Notice

TEXT, JSON = "text", "json"


def encode(event: Event, mode: str) -> bytes:
    """One event as one line of bytes in `mode` ("text" or "json")."""
    if mode == JSON:
        if type(event) is Message:  # the hot path: every delivery
            return _message_json(event).encode() + b"\n"
        if type(event) is Ok and _ints_only(event.fields):  # `ok` of /send, /ack...
            return _ok_json(event).encode() + b"\n"
        return _dumps(to_json(event)).encode() + b"\n"
    text = to_text(event)
    if not (isinstance(event, Ok) and event.cmd == "stats"):  # the one table
        text = text.replace("\n", " ")
    return text.encode() + b"\n"


def to_json(event: Event) -> dict[str, Any]:
    """The JSON object of an event (PROTOCOL §4, §5)."""
    if isinstance(event, Message):
        return {"type": "message", **event.as_dict()}
    if isinstance(event, Ok):
        return {"type": "ok", "cmd": event.cmd, **event.fields}
    if isinstance(event, Error):
        return {"type": "error", "cmd": event.cmd, "code": event.code, "message": event.message}
    if isinstance(event, Bye):
        return {"type": "bye", "reason": event.reason}
    return {"type": "notice", "text": event.text}


# One encoder for every line: `json.dumps` with these options would build a
# new JSONEncoder per call (a quarter of the reactor's time, measured).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dumps(obj: dict[str, Any]) -> str:
    return _ENCODER.encode(obj)


def _ints_only(fields: dict[str, Any]) -> bool:
    """Fields the fast path renders exactly as `to_json` would."""
    return (
        "type" not in fields
        and "cmd" not in fields
        and all(type(v) is int for v in fields.values())
    )


def _ok_json(ok: Ok) -> str:
    """`_dumps(to_json(ok))` for an `ok` whose fields are all ints."""
    fields = "".join(f",{encode_basestring(k)}:{v!r}" for k, v in ok.fields.items())
    return f'{{"type":"ok","cmd":{encode_basestring(ok.cmd)}{fields}}}'


def _message_json(m: Message) -> str:
    """`_dumps(to_json(m))`, written out: the same bytes at a third of the
    cost (tests/reactor/test_protocol.py checks they are equal)."""
    to = "null" if m.to is None else encode_basestring(m.to)
    group = "null" if m.group is None else encode_basestring(m.group)
    return (
        f'{{"type":"message","id":{m.id!r},"from":{encode_basestring(m.sender)},"to":{to},'
        f'"group":{group},"text":{encode_basestring(m.text)},"ts":{m.ts!r}}}'
    )


def to_text(event: Event) -> str:
    """The human line of an event (documented in docs/protocol.md)."""
    if isinstance(event, Message):
        return message_text(event)
    if isinstance(event, Ok):
        render = _OK_TEXT.get(event.cmd)
        return "System: " + (render(event.fields) if render else "ok")
    if isinstance(event, Error):
        return f"Error [{event.code}]: {event.message}"
    if isinstance(event, Bye):
        return f"System: Goodbye ({event.reason})."
    return f"System: {event.text}"


def message_text(m: Message) -> str:
    """`[alice]: hi` for a private message, `[#os2 alice]: hi` for a group's."""
    where = f"#{m.group} {m.sender}" if m.group else m.sender
    return f"[{where}]: {m.text}"


def _history_text(f: dict[str, Any]) -> str:
    msgs = f["messages"]
    if not msgs:
        return f"No messages with {f['with']} yet."
    items = []
    for m in msgs:
        clock = time.strftime("%H:%M", time.localtime(m["ts"]))
        items.append(f"{clock} {m['from']}: {m['text']}")
    return f"History with {f['with']} ({len(msgs)}): " + " | ".join(items)


def _users_text(f: dict[str, Any]) -> str:
    users = [u["name"] + (" (online)" if u["online"] else "") for u in f["users"]]
    return f"Users ({len(users)}): " + ", ".join(users)


def _groups_text(f: dict[str, Any]) -> str:
    if not f["groups"]:
        return "You are in no group."
    parts = [f"#{g['name']} ({', '.join(g['members'])})" for g in f["groups"]]
    return "Your groups: " + "; ".join(parts)


def _help_text(f: dict[str, Any]) -> str:
    if "usage" in f:
        return f"usage: {f['usage']}"
    return "Commands: " + " | ".join(f"{c['usage']}: {c['summary']}" for c in f["commands"])


_STAT_COLUMNS = (
    ("acquisitions", "acq"), ("contended", "contended"), ("wait_total_us", "wait-total"),
    ("wait_max_us", "wait-max"), ("hold_total_us", "hold-total"), ("hold_max_us", "hold-max"),
)  # fmt: skip


def stats_table(f: dict[str, Any]) -> str:
    """`/stats` as an aligned table in the style of /proc/lock_stat (µs)."""
    rows = [("lock", *(title for _, title in _STAT_COLUMNS))]
    for section in ("classes", "locks"):
        for s in f[section]:
            name = s["name"] if section == "locks" else s["name"] + " (class)"
            rows.append((name, *(str(s[key]) for key, _ in _STAT_COLUMNS)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    pool = f["pool"]
    lines.append(
        f"locking {f['locking']}: {pool['workers']} workers, {pool['busy']} busy,"
        f" {pool['queued']} batches queued; {f['order_violations']} lock-order reports"
    )
    return "Lock statistics (times in µs)\n" + "\n".join(lines)


def _login_text(f: dict[str, Any]) -> str:
    groups = ", ".join(f["groups"]) or "none"
    return f"Logged in as {f['user']}. Groups: {groups}. Unread: {f['unread']}."


_OK_TEXT = {
    "register": lambda f: f"Registered {f['user']}. Now /login {f['user']} <password>.",
    "login": _login_text,
    "send": lambda f: f"Sent (id {f['id']}).",
    "group": lambda f: f"Group #{f['group']}: {', '.join(f['members'])}.",
    "sendgroup": lambda f: f"Sent (id {f['id']}).",
    "leave": lambda f: f"You left #{f['group']}.",
    "users": _users_text,
    "groups": _groups_text,
    "whoami": lambda f: f"You are {f['user']}.",
    "history": _history_text,
    "ack": lambda f: f"Acknowledged up to {f['id']}.",
    "mode": lambda f: f"Output mode is {f['mode']}.",
    "ping": lambda f: "pong" + (f" {f['token']}" if f.get("token") is not None else ""),
    "help": _help_text,
    "stats": lambda f: stats_table(f),
    "exit": lambda f: "Bye!",
}
