"""How a typed line becomes something to do, for every UI of the client.

Owns: the client-side commands (`/query`, `/close`, `/clear`, `/exit`,
`/quit`), the IRC habits it maps onto the server's commands (`/msg`, `/me`,
`/join`, `/part`, `/names`), the server commands it refuses (`/mode`: the
client owns its connection's encoding), how a plain line becomes a `/send`
or `/sendgroup` to the current conversation, and reading a `/send` line
back. Must not: import prompt_toolkit, touch the connection or show
anything: a line and the current conversation go in, one frozen action
comes out, and the UI carries it out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: The commands the REPL runs itself, with the usage the completer shows.
REPL_COMMANDS: Mapping[str, str] = {
    "query": "/query <user-or-group>: talk to them with plain lines",
    "clear": "/clear: clear the screen",
    "msg": "/msg <user-or-#group> <text>: send one message (IRC's /msg)",
    "me": "/me <action>: '* action' to the current conversation",
    "join": "/join <group>: join an open group, or make one, and talk in it",
    "part": "/part [<group>]: leave a group (the current one by default)",
    "names": "/names: every user, and who is online (as /users)",
}
#: The full-screen client also closes tabs.
TUI_COMMANDS: Mapping[str, str] = {
    **REPL_COMMANDS,
    "close": "/close: close the current conversation's tab",
}
#: Words that end the client (the connection then says /exit to the server).
LEAVE_WORDS = ("/exit", "/quit")

_PRIVATE = re.compile(r"/send\s+(\S+)\s+(.*)", re.IGNORECASE)
#: Why the client does not pass these on to the server.
REFUSED: Mapping[str, str] = {
    "/mode": "Error: this client speaks json with the server and shows it as text; "
    "/mode is for nc sessions",
}


@dataclass(frozen=True)
class Blank:
    """A line with nothing on it: nothing to do."""


@dataclass(frozen=True)
class Leave:
    """`/exit` or `/quit`: the user leaves."""


@dataclass(frozen=True)
class Query:
    """`/query <name>`: talk to `name` (a user, or "#group") with plain lines.

    `name` is None when the line did not name exactly one: no conversation.
    """

    name: str | None


@dataclass(frozen=True)
class Close:
    """`/close`: close the conversation the line was typed in."""


@dataclass(frozen=True)
class Clear:
    """`/clear`: clear the screen (the REPL) or the current tab (the TUI)."""


@dataclass(frozen=True)
class Refused:
    """A line the client will not run, and why (shown as an error)."""

    message: str


@dataclass(frozen=True)
class NoConversation:
    """A plain line typed with no conversation to send it to."""

    text: str


@dataclass(frozen=True)
class Command:
    """A line for the server.

    `conversation` is the conversation a plain line was addressed to (its
    errors belong there too), or None for a `/command` typed as such.
    """

    line: str
    conversation: str | None = None


Action = Blank | Leave | Query | Close | Clear | Refused | NoConversation | Command


def read_line(
    line: str,
    current: str | None,
    groups: Iterable[str] = (),
    commands: Mapping[str, str] = REPL_COMMANDS,
) -> Action:
    """What typing `line` means.

    Args:
        line: the line as typed.
        current: the current conversation (a user or "#group"), or None.
        groups: the group names the user knows of, so that `/query os2`
            means the group when there is one by that name.
        commands: the client-side commands this UI runs itself
            (REPL_COMMANDS or TUI_COMMANDS); other `/words` go to the server.
    """
    if not line.strip():
        return Blank()
    word = line.split(" ", 1)[0].lower()
    if word in LEAVE_WORDS:
        return Leave()
    if word == "/query" and "query" in commands:
        words = line.split()
        return Query(conversation_name(words[1], groups) if len(words) == 2 else None)
    if word == "/close" and "close" in commands:
        return Close()
    if word == "/clear":
        return Clear()
    if word in REFUSED:
        return Refused(REFUSED[word])
    if word in _ALIASES:
        return _alias(word, line, current, groups)
    if line.startswith("/"):
        return Command(line)
    return _to_conversation(line, current)


def _to_conversation(text: str, current: str | None) -> Action:
    if current is None:
        return NoConversation(text)
    if current.startswith("#"):
        return Command(f"/sendgroup {current[1:]} {text}", current)
    return Command(f"/send {current} {text}", current)


_ALIASES = ("/msg", "/me", "/join", "/part", "/names")


def _alias(word: str, line: str, current: str | None, groups: Iterable[str]) -> Action:
    """An IRC habit as what it means here (REPL_COMMANDS says each)."""
    rest = line.split(" ", 1)[1].strip() if " " in line else ""
    usage = REPL_COMMANDS[word[1:]].split(":", 1)[0]
    if word == "/names":
        return Command("/users")
    if word == "/me":
        return _to_conversation(f"* {rest}", current) if rest else Refused(f"usage: {usage}")
    if word == "/join":
        names = rest.split()
        if len(names) != 1:
            return Refused(f"usage: {usage}")
        joined = names[0].lstrip("#")
        return Command(f"/join {joined}", f"#{joined}")
    if word == "/part":
        group = rest.split()[0] if rest else current
        if group is None or not (rest or group.startswith("#")):
            return Refused(f"usage: {usage}")
        return Command(f"/leave {group.lstrip('#')}", group if group.startswith("#") else None)
    to, _, text = rest.partition(" ")  # /msg
    if not to or not text.strip():
        return Refused(f"usage: {usage}")
    where = conversation_name(to, groups)
    if where.startswith("#"):
        return Command(f"/sendgroup {where[1:]} {text}", where)
    return Command(f"/send {to} {text}", to)


def conversation_name(name: str, groups: Iterable[str]) -> str:
    """`name` as a conversation: "#group" for a group (named with or
    without its "#"; groups match in any case), else the user's name."""
    if name.startswith("#") or name.lower() in {g.lower() for g in groups}:
        return "#" + name.lstrip("#")
    return name


def private_message(line: str) -> tuple[str, str] | None:
    """(to, text) when `line` is `/send <to> <text>`, else None."""
    sent = _PRIVATE.match(line)
    return (sent[1], sent[2]) if sent else None
