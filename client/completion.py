"""Completion of commands, user names and group names for the chat prompt.

Owns: `ChatCompleter` and the name lists it completes from (`Names`),
refreshed from `/users` and `/groups` by client/names.py. Must not: do I/O.

prompt_toolkit's `NestedCompleter` splits on spaces and treats `/` oddly,
so this completer reads the line itself: the first word completes command
names; then, by command and argument position, users (online first),
the caller's groups, or both; in a plain line, the word being typed
completes user names. Every completion ends with the space that separates
it from what comes next, as shells and IRC clients do.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

#: What each argument position completes: "users", "groups", "both" or None.
ARGUMENTS: dict[str, list[str | None]] = {
    "send": ["users"],
    "sendgroup": ["groups"],
    "group": ["groups", "users"],  # the group, then any number of users
    "leave": ["groups"],
    "history": ["both"],
    "query": ["both"],
    "msg": ["both"],
    "join": ["groups"],
    "part": ["groups"],
    "help": ["commands"],
}


class Names:
    """What the completer knows; replaced as the server tells (client/names.py
    makes one with the commands and keeps it fresh)."""

    def __init__(self) -> None:
        self.users: list[tuple[str, bool]] = []  # (name, online), online first
        self.groups: list[str] = []
        self.commands: dict[str, str] = {}  # command word -> its usage

    def set_users(self, users: Iterable[dict[str, Any]]) -> None:
        """Take `/users`' list: online users first, then by name."""
        self.users = sorted(((u["name"], bool(u["online"])) for u in users),
                            key=lambda u: (not u[1], u[0].lower()))  # fmt: skip

    def set_groups(self, groups: Iterable[dict[str, Any] | str]) -> None:
        """Take `/groups`' list (records with a name, or plain names), sorted."""
        self.groups = sorted((g["name"] if isinstance(g, dict) else g) for g in groups)


class ChatCompleter(Completer):
    """Completes the chat line from `names` (read anew at every completion)."""

    def __init__(self, names: Names) -> None:
        self.names = names

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        """Command words, then each argument by the command's ARGUMENTS."""
        text = document.text_before_cursor
        words = text.split(" ")
        if not text.startswith("/"):  # a nick inside plain text
            current = words[-1]
            if current:
                yield from self._matching(current, self._candidates("users"))
            return
        if len(words) == 1:  # completing the command word itself
            word = words[0][1:].lower()
            for name in sorted(self.names.commands):
                if name.startswith(word):
                    yield Completion("/" + name + " ", start_position=-len(words[0]),
                                     display="/" + name,
                                     display_meta=self.names.commands[name])  # fmt: skip
            return
        cmd = words[0][1:].lower()
        kinds = ARGUMENTS.get(cmd)
        if not kinds:
            return
        position = len([w for w in words[1:-1] if w])  # arguments already typed
        kind = kinds[min(position, len(kinds) - 1)] if cmd == "group" else (
            kinds[position] if position < len(kinds) else None)  # fmt: skip
        yield from self._matching(words[-1], self._candidates(kind))

    @staticmethod
    def _matching(current: str, candidates: Iterator[tuple[str, str]]) -> Iterator[Completion]:
        for name, meta in candidates:
            if name.lower().startswith(current.lower()):
                yield Completion(name + " ", start_position=-len(current), display=name,
                                 display_meta=meta)  # fmt: skip

    def _candidates(self, kind: str | None) -> Iterator[tuple[str, str]]:
        if kind in ("users", "both"):
            for name, online in self.names.users:
                yield name, "online" if online else "user"
        if kind in ("groups", "both"):
            for name in self.names.groups:
                yield name, "group"
        if kind == "commands":
            for name in sorted(self.names.commands):
                yield name, ""
