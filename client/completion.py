"""Completion of commands, user names and group names for the chat prompt.

Owns: `ChatCompleter` and the name lists it completes from (`Names`),
refreshed by the UI from `/users` and `/groups`. Must not: do I/O.

prompt_toolkit's `NestedCompleter` splits on spaces and treats `/` oddly,
so this completer reads the line itself: the first word completes command
names; then, by command and argument position, users (online first),
the caller's groups, or both.
"""

from __future__ import annotations

from collections.abc import Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

#: Client-side commands, besides the server's.
LOCAL_COMMANDS = {"query": "/query <user-or-group>: talk to them with plain lines"}

#: What each argument position completes: "users", "groups", "both" or None.
ARGUMENTS: dict[str, list[str | None]] = {
    "send": ["users"],
    "sendgroup": ["groups"],
    "group": ["groups", "users"],  # the group, then any number of users
    "leave": ["groups"],
    "history": ["both"],
    "query": ["both"],
    "help": ["commands"],
    "mode": ["modes"],
}


class Names:
    """What the completer knows; the UI replaces these as the server tells."""

    def __init__(self) -> None:
        self.users: list[tuple[str, bool]] = []  # (name, online)
        self.groups: list[str] = []
        self.commands: dict[str, str] = dict(LOCAL_COMMANDS)

    def set_users(self, users: Iterable[dict]) -> None:
        self.users = sorted(((u["name"], bool(u["online"])) for u in users),
                            key=lambda u: (not u[1], u[0].lower()))  # fmt: skip

    def set_groups(self, groups: Iterable[dict | str]) -> None:
        self.groups = sorted((g["name"] if isinstance(g, dict) else g) for g in groups)


class ChatCompleter(Completer):
    def __init__(self, names: Names) -> None:
        self.names = names

    def get_completions(self, document: Document, complete_event: CompleteEvent):
        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        words = text.split(" ")
        if len(words) == 1:  # completing the command word itself
            word = words[0][1:].lower()
            for name in sorted(self.names.commands):
                if name.startswith(word):
                    yield Completion("/" + name, start_position=-len(words[0]),
                                     display_meta=self.names.commands[name])  # fmt: skip
            return
        cmd = words[0][1:].lower()
        kinds = ARGUMENTS.get(cmd)
        if not kinds:
            return
        position = len([w for w in words[1:-1] if w])  # arguments already typed
        kind = kinds[min(position, len(kinds) - 1)] if cmd == "group" else (
            kinds[position] if position < len(kinds) else None)  # fmt: skip
        current = words[-1]
        for name, meta in self._candidates(kind):
            if name.lower().startswith(current.lower()):
                yield Completion(name, start_position=-len(current), display_meta=meta)

    def _candidates(self, kind: str | None):
        if kind in ("users", "both"):
            for name, online in self.names.users:
                yield name, "online" if online else "user"
        if kind in ("groups", "both"):
            for name in self.names.groups:
                yield name, "group"
        if kind == "commands":
            for name in sorted(self.names.commands):
                yield name, ""
        if kind == "modes":
            yield from (("json", ""), ("text", ""))
