"""IRC messages, sans-IO: one line in, its parts out; parts in, one line out
(RFC 1459 §2.3, the Modern IRC client protocol, IRCv3 message-tags).

Owns: `IrcLine`, `parse_line`, `line` (formatting, with the trailing
parameter's colon where needed), the byte limits of a line, and cutting a
long text into pieces that fit. Must not: import socket, selectors or
threading, or know what a command means (reactor/protocol/ircsession.py does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: A line's limit without its tags, terminator included (RFC 1459 §2.3).
MAX_LINE = 512
#: The client's tags, with their `@` and the space after them (IRCv3).
MAX_CLIENT_TAGS = 4094
#: What the framer accepts at most before cutting (tags + line).
MAX_FRAME = MAX_LINE + MAX_CLIENT_TAGS

#: Characters IRC cannot carry inside a parameter.
_FORBIDDEN = str.maketrans({"\r": " ", "\n": " ", "\x00": " "})


@dataclass(frozen=True)
class IrcLine:
    """One parsed line: `command` upper-cased, `params` the middle ones and
    the trailing one last (without its colon)."""

    command: str
    params: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    source: str | None = None


class LineTooLong(Exception):
    """The part of a line after its tags is over `MAX_LINE` bytes."""


def parse_line(text: str) -> IrcLine | None:
    """Parse one decoded line (no terminator); None if it has no command.
    Raises `LineTooLong` if it is over the limits."""
    tags: dict[str, str] = {}
    rest = text
    if rest.startswith("@"):
        raw, _, rest = rest.partition(" ")
        if len(raw.encode()) + 1 > MAX_CLIENT_TAGS:
            raise LineTooLong
        for item in raw[1:].split(";"):
            if item:
                key, _, value = item.partition("=")
                tags[key] = _unescape_tag(value)
    if len(rest.encode()) + 2 > MAX_LINE:
        raise LineTooLong
    rest = rest.lstrip(" ")
    source = None
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
    params: list[str] = []
    while rest:
        rest = rest.lstrip(" ")
        if not rest:
            break
        if rest.startswith(":"):
            params.append(rest[1:])
            break
        word, _, rest = rest.partition(" ")
        params.append(word)
    if not params:
        return None
    return IrcLine(params[0].upper(), tuple(params[1:]), tags, source)


def line(source: str | None, command: str, *params: str, tags: str = "") -> str:
    """One line without its terminator; the last parameter gets a colon when
    it is empty, has a space or starts with one; an empty middle one is `*`.
    `tags` is `k=v;k=v`. Past `MAX_LINE` (tags aside), the longest
    parameters are cut until it fits (a client's overlong word echoed back in
    a numeric, a long reason)."""
    head = [f":{source}", command] if source else [command]
    clean = [p.translate(_FORBIDDEN) for p in params]
    clean = [p if p or i == len(clean) - 1 else "*" for i, p in enumerate(clean)]
    over = len(_join(head, clean).encode()) + 2 - MAX_LINE
    while over > 0:
        i = max(range(len(clean)), key=lambda k: len(clean[k].encode()))
        data = clean[i].encode()
        keep = max(len(data) - over, 1)
        cut = data[:keep].decode("utf-8", "ignore") or "*"
        if cut == clean[i]:
            break  # nothing left to cut (cannot happen with this server's sources)
        clean[i] = cut
        over = len(_join(head, clean).encode()) + 2 - MAX_LINE
    text = _join(head, clean)
    return f"@{tags} {text}" if tags else text


def _join(head: list[str], params: list[str]) -> str:
    parts = list(head)
    for i, p in enumerate(params):
        last = i == len(params) - 1
        parts.append(f":{p}" if last and (not p or " " in p or p.startswith(":")) else p)
    return " ".join(parts)


def split_text(text: str, room: int) -> list[str]:
    """`text` cut into pieces of at most `room` bytes of UTF-8, at character
    boundaries (at spaces where one is near), so each fits one line."""
    room = max(room, 16)
    pieces: list[str] = []
    data = text.translate(_FORBIDDEN)
    while len(data.encode()) > room:
        cut = len(data.encode()[:room].decode("utf-8", "ignore"))
        space = data.rfind(" ", cut // 2, cut)
        if space > 0:
            cut = space + 1
        pieces.append(data[:cut])
        data = data[cut:]
    pieces.append(data)
    return pieces


def _unescape_tag(value: str) -> str:
    out = []
    chars = iter(value)
    for c in chars:
        if c == "\\":
            nxt = next(chars, "")
            out.append({":": ";", "s": " ", "r": "\r", "n": "\n"}.get(nxt, nxt))
        else:
            out.append(c)
    return "".join(out)
