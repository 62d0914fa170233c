"""The two encodings of events: one line of text for people, one JSON
object for programs (docs/protocol.md §4, §5).

Owns: `encode(event, mode) -> bytes` and its renderings. Must not: import
socket, selectors or threading; it is a pure function of its arguments.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

from reactor.kinds import Mode
from reactor.protocol.events import Bye, Error, Event, GroupChange, Message, Ok
from reactor.stats import LockStats, ServerStatistics

TEXT, JSON = Mode.TEXT, Mode.JSON


def encode(event: Event, mode: Mode) -> bytes:
    """One event as one line of bytes in `mode` ("text" or "json").

    No control character but the line's own end reaches the peer: text mode
    shows C0 controls and DEL in caret notation (ESC as ``^[``) and a C1
    control as ``^[`` and its 7-bit form (CSI as ``^[[``); JSON escapes C0
    as JSON must, and DEL and C1 as ``\\u007f``... too (docs/protocol.md §2)."""
    if mode == JSON:
        if type(event) is Message:  # the hot path: every delivery
            line = _message_json(event)
        elif type(event) is Ok and _ints_only(event.fields):  # `ok` of /send, /ack...
            line = _ok_json(event)
        else:
            line = _dumps(to_json(event))
        if not line.isascii():
            line = line.translate(_C1_JSON)
        if "\x7f" in line:
            line = line.replace("\x7f", "\\u007f")
        return line.encode() + b"\n"
    text = to_text(event)
    if isinstance(event, Ok) and event.cmd == "stats":  # the one table of lines
        return text.translate(_VISIBLE_KEEP_NL).encode() + b"\n"
    if not text.isprintable():
        text = text.replace("\n", " ").translate(_VISIBLE)
    return text.encode() + b"\n"


#: Text mode: every control character made visible (caret notation).
_VISIBLE = {
    **{c: "^" + chr(c + 0x40) for c in range(0x20)},
    0x7F: "^?",
    **{c: "^[" + chr(c - 0x40) for c in range(0x80, 0xA0)},
}
_VISIBLE_KEEP_NL = {c: v for c, v in _VISIBLE.items() if c != 0x0A}
#: JSON: C1 controls escaped, as JSON allows (C0 is escaped by the encoder).
_C1_JSON = {c: f"\\u{c:04x}" for c in range(0x80, 0xA0)}


def to_json(event: Event) -> dict[str, Any]:
    """The JSON object of an event (docs/protocol.md §4, §5)."""
    if isinstance(event, Message):
        return {"type": "message", **event.as_dict()}
    if isinstance(event, Ok):
        return {"type": "ok", "cmd": event.cmd, **event.fields}
    if isinstance(event, Error):
        return {"type": "error", "cmd": event.cmd, "code": event.code, "message": event.message}
    if isinstance(event, Bye):
        return {"type": "bye", "reason": event.reason}
    if isinstance(event, GroupChange):
        return {"type": "group", "group": event.group, "by": event.by,
                "added": list(event.added), "left": event.left,
                "members": list(event.members)}  # fmt: skip
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
    if isinstance(event, GroupChange):
        return "System: " + group_change_text(event)
    return f"System: {event.text}"


def group_change_text(change: GroupChange) -> str:
    """`alice added bob to #os2 (members: alice, bob).` or `bob left #os2 ...`."""
    what = (f"{change.left} left" if change.left is not None
            else f"{change.by} added {', '.join(change.added)} to")  # fmt: skip
    return f"{what} #{change.group} (members: {', '.join(change.members) or 'none'})."


def message_text(m: Message) -> str:
    """`[alice]: hi` for a private message, `[#os2 alice]: hi` for a group's."""
    where = f"#{m.group} {m.sender}" if m.group else m.sender
    return f"[{where}]: {m.text}"


def _history_text(f: dict[str, Any]) -> str:
    msgs = f["messages"]
    if not msgs:
        return f"No messages with {f['with']} yet."
    today = time.localtime()[:3]
    items = []
    for m in msgs:
        when = time.localtime(m["ts"])
        clock = time.strftime("%H:%M" if when[:3] == today else "%Y-%m-%d %H:%M", when)
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


_OK_TEXT: dict[str, Callable[[dict[str, Any]], str]] = {
    "register": lambda f: f"Registered {f['user']}. Now /login {f['user']} <password>.",
    "login": _login_text,
    "send": lambda f: f"Sent (id {f['id']}).",
    "group": lambda f: f"Group #{f['group']}: {', '.join(f['members'])}.",
    "sendgroup": lambda f: f"Sent (id {f['id']}).",
    "join": lambda f: f"Joined #{f['group']}: {', '.join(f['members'])}.",
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


def stats_fields(s: ServerStatistics) -> dict[str, Any]:
    """The `ok` fields of `/stats` (times in µs), from the snapshot record."""
    pool, conns = s.pool, s.connections
    fields: dict[str, Any] = {
        "node": s.node or None,
        "locking": s.locking,
        "locks": [_lock_fields(x) for x in s.locks],
        "classes": [_lock_fields(x) for x in s.classes],
        "model": s.model,
        "pool": {"workers": pool.workers, "busy": pool.busy, "queued": pool.queued},
        "connections": {
            "open": conns.open,
            "accepted": conns.accepted,
            "slow_consumers": conns.slow_consumers,
            "rejected_full": conns.rejected_full,
            "queued_bytes": conns.queued_bytes,
            "irc_open": conns.irc_open,
            "irc_accepted": conns.irc_accepted,
        },
        "order_violations": s.order_violations,
    }
    if s.cluster is not None:
        c = s.cluster
        fields["cluster"] = {
            "node": c.node, "watermark": c.watermark, "bus_connected": c.bus_connected,
            "published": c.published, "received": c.received,
            "bus_reconnects": c.bus_reconnects, "polls": c.polls,
            "catch_up_reads": c.catch_up_reads, "caught_up": c.caught_up,
        }  # fmt: skip
    return fields


def _lock_fields(s: LockStats) -> dict[str, Any]:
    return {
        "name": s.name, "class": s.cls, "acquisitions": s.acquisitions,
        "contended": s.contended, "wait_total_us": s.wait_total // 1000,
        "wait_max_us": s.wait_max // 1000, "hold_total_us": s.hold_total // 1000,
        "hold_max_us": s.hold_max // 1000,
    }  # fmt: skip
