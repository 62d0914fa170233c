"""The command table and parsing, sans-IO: a decoded line in, a `Command`
(or a `BadLine` saying why not) out.

Owns: `COMMANDS` (every command's usage, arguments and whether it needs a
login), `parse`, `command_word` and `valid_name` (docs/protocol.md §2-§4).
Must not: import socket, selectors or threading, or know what a command does.
"""

from __future__ import annotations

from dataclasses import dataclass

from reactor import limits


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
    "join": Spec("/join <group>", "join an open group, or make one", ("group",)),
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
    #: The verbatim rest of the line (`/send`, `/sendgroup`); for `/leave`
    #: from IRC, PART's reason (the native `/leave` takes none).
    text: str = ""
    #: `/login` only: refuse (`name_in_use`) instead of replacing a session
    #: of the same user (IRC's nick-in-use rule, under --auth none).
    keep_existing: bool = False
    #: `/groups`: each group's `open` too (IRC's MODE); `/users`: the IRC
    #: sessions' usernames and realnames (WHO, WHOIS). Not in native replies.
    detail: bool = False
    #: `/group` only: refuse `unknown_group` rather than create (IRC's INVITE).
    existing: bool = False
    #: `/groups` only: also `open_groups`, every open group with its members
    #: (for IRC's LIST and NAMES), not in the native reply.
    public: bool = False
    #: `/send` and `/sendgroup` only: the message is an IRC NOTICE.
    notice: bool = False
    #: `/groups` of the IRC welcome only: USER's (username, realname), kept
    #: with the session for WHO and WHOIS (`/users` with `detail`).
    ident: tuple[str, str] | None = None

    @property
    def spec(self) -> Spec:
        """The command's entry in `COMMANDS`."""
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
    """True for 1-32 characters of [A-Za-z0-9_.-] (docs/protocol.md §3)."""
    return 0 < len(name) <= limits.MAX_NAME and all(c in _NAME_CHARS for c in name)


_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
