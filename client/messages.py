"""What the server says, as this user reads it: whose conversation a
message belongs to, whether it is our own or names us, how a message looks
in the REPL and in a tab, and the texts for replies, errors and the
connection's ups and downs.

Owns: those rules and texts, shared by the REPL and the full-screen client.
Must not: show anything, do I/O or keep state; the style classes named
here are defined in client/style.py.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prompt_toolkit.formatted_text import FormattedText, StyleAndTextTuples

from client.connection import ChatError, Disconnected
from reactor.protocol import Ok, to_text

#: Replies after which the user and group names are worth asking for again.
CHANGES_NAMES = frozenset({"group", "join", "leave", "users", "groups"})
#: Replies that say nothing worth showing: the message itself is the news.
QUIET_REPLIES = frozenset({"send", "sendgroup"})

LOST = "System: connection lost; reconnecting..."
BACK = "System: reconnected."
KEPT = "Error: not connected, so not sent; the line is back on the prompt: Enter to send it"


def is_own(event: dict[str, Any], me: str | None) -> bool:
    """The message was sent by `me` (names match in any case)."""
    return me is not None and str(event["from"]).lower() == me.lower()


def mentions(event: dict[str, Any], me: str | None) -> bool:
    """A message from someone else that contains our name."""
    if me is None or is_own(event, me):
        return False
    return me.lower() in str(event["text"]).lower()


def conversation_of(event: dict[str, Any], me: str | None) -> str:
    """The conversation a message belongs to: `#group` or the other user."""
    if event.get("group"):
        return "#" + str(event["group"])
    if is_own(event, me):
        return str(event.get("to") or event["from"])
    return str(event["from"])


def _clock(event: dict[str, Any]) -> str:
    return time.strftime("%H:%M", time.localtime(event.get("ts", time.time())))


def prompt_line(event: dict[str, Any], me: str | None) -> FormattedText:
    """`12:01 [#os2 alice]: hi` / `12:01 [alice]: hi` for the REPL: own
    messages dimmed, mentions of `me` marked."""
    where = f"#{event['group']} {event['from']}" if event.get("group") else event["from"]
    own = "class:own" if is_own(event, me) else ""
    sender = own or ("class:group" if event.get("group") else "class:from")
    text = "class:mention" if mentions(event, me) else own
    return FormattedText([(own, f"{_clock(event)} "), (sender, f"[{where}]"), (own, ": "),
                          (text, event["text"])])  # fmt: skip


def tab_line(event: dict[str, Any], me: str | None) -> StyleAndTextTuples:
    """`12:01 <alice> hi` for a tab: own messages dimmed, mentions of `me`
    highlighted."""
    own = is_own(event, me)
    text = "class:mention" if mentions(event, me) else ("class:own" if own else "")
    return [("class:clock", f"{_clock(event)} "),
            ("class:own" if own else "class:from", f"<{event['from']}>"), ("", " "),
            (text, event["text"])]  # fmt: skip


def reply_text(reply: dict[str, Any]) -> str:
    """An `ok` reply as the text protocol would say it."""
    fields = {k: v for k, v in reply.items() if k not in ("type", "cmd")}
    return to_text(Ok(reply["cmd"], fields))


def failure_text(exc: ChatError | Disconnected) -> str:
    """Why a typed command got no `ok`: the server's error, or no connection."""
    if isinstance(exc, ChatError):
        return f"Error [{exc.code}]: {exc.reply.get('message')}"
    return "Error: not connected; your line was not sent"


def group_text(event: dict[str, Any], me: str | None) -> str:
    """A `group` event: `System: alice added you to #os2 (members: alice, bob).`"""

    def who(name: str) -> str:
        return "you" if me is not None and name.lower() == me.lower() else name

    members = ", ".join(event.get("members") or []) or "none"
    if event.get("left"):
        what = f"{who(event['left'])} left"
    else:
        what = f"{who(event.get('by', '?'))} added {', '.join(map(who, event.get('added', [])))} to"
    return f"System: {what} #{event.get('group')} (members: {members})."


def bye_text(event: dict[str, Any]) -> str:
    """The server ended this session (a `bye` event)."""
    return f"System: the server closed this session ({event.get('reason')})."


#: The REPL's keys (prompt_toolkit's own), for /help.
REPL_KEYS = ("Tab completes; Up/Down and Ctrl-R search your history; "
             "Ctrl-C clears the line; Ctrl-D leaves")  # fmt: skip
#: The full-screen client's keys (client/keys.py), for /help.
TUI_KEYS = ("Tab completes; Alt+1..9 pick a tab, Alt+Left/Right step, Alt+A the next tab "
            "with activity (private first), Alt+S auto-switch on/off; PgUp/PgDn scroll; "
            "Ctrl-C clears the line; Ctrl-Q or Ctrl-D leaves")  # fmt: skip


def client_help(commands: Mapping[str, str], keys: str) -> list[str]:
    """What `/help` adds to the server's list: the client's own commands
    (`commands`: word -> usage) and its `keys`."""
    lines = ["System: this client's own commands:"]
    lines += [f"  {usage}" for usage in commands.values()]
    return [*lines, f"System: keys: {keys}"]
