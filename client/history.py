"""The typed lines the client remembers: one file per account, secrets never.

Owns: `history_for` (where a user's history lives) and `LineHistory`, a
prompt_toolkit `FileHistory` that drops every line carrying a password.
Must not: know about the connection or the UI.

Each account has its own file (`history-<name>` in the state folder), so
people sharing a machine account (a lab PC) never see each other's lines
with the up arrow. A `/register` or `/login` line holds a password in
plain text; it is neither written to the file nor kept for the up arrow.
"""

from __future__ import annotations

from pathlib import Path

from prompt_toolkit.history import FileHistory

#: Command words whose lines carry a password.
SECRET_COMMANDS = ("/register", "/login")


def is_secret(line: str) -> bool:
    """True if `line` is a command that carries a password."""
    return line.lstrip(" ").split(" ", 1)[0].lower() in SECRET_COMMANDS


def history_for(folder: Path, user: str) -> Path:
    """The history file of `user` (any case) in the state `folder`."""
    return folder / f"history-{user.lower()}"


class LineHistory(FileHistory):
    """A history file that never stores a line carrying a password."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(str(path))

    def append_string(self, string: str) -> None:
        """Remember `string`, unless it carries a password."""
        if not is_secret(string):
            super().append_string(string)
