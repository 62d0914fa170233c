"""The REPL: a prompt_toolkit prompt with incoming messages above it.

Owns: the prompt session (completion, history, toolbar, key bindings), how
lines become commands (`/query` and plain text), and how events and
replies are shown. Must not: touch sockets (client/connection.py does).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.shortcuts import print_formatted_text
from prompt_toolkit.styles import Style

from client.completion import ChatCompleter, Names
from client.connection import ChatError, Connection, Disconnected
from reactor.protocol import COMMANDS, Ok, to_text

STYLE = Style.from_dict({
    "error": "#ff5555 bold", "own": "#888888", "system": "#00aa88", "from": "bold",
    "group": "#5f87ff bold", "bottom-toolbar": "bg:#222222 #dddddd", "mention": "reverse",
})  # fmt: skip

#: Refresh the user list (who is online) at most this often.
NAMES_REFRESH_SECONDS = 30.0


def message_parts(event: dict[str, Any], me: str | None) -> FormattedText:
    """`[#os2 alice]: hi` / `[alice]: hi`, own messages dimmed, mentions marked."""
    where = f"#{event['group']} {event['from']}" if event.get("group") else event["from"]
    clock = time.strftime("%H:%M", time.localtime(event.get("ts", time.time())))
    own = me is not None and event["from"].lower() == me.lower()
    parts = [("class:own" if own else "", f"{clock} "),
             ("class:own" if own else ("class:group" if event.get("group") else "class:from"),
              f"[{where}]"), ("class:own" if own else "", ": ")]  # fmt: skip
    text = event["text"]
    if me and not own and me.lower() in text.lower():
        parts.append(("class:mention", text))
    else:
        parts.append(("class:own" if own else "", text))
    return FormattedText(parts)


def conversation_of(event: dict[str, Any], me: str | None) -> str:
    """The conversation a message belongs to: `#group` or the other user."""
    if event.get("group"):
        return "#" + event["group"]
    if me is not None and event["from"].lower() == me.lower():
        return event.get("to") or event["from"]
    return event["from"]


class Repl:
    """One user's prompt. `run()` until /exit or Ctrl-D."""

    def __init__(
        self, conn: Connection, history: History | None = None, input=None, output=None
    ) -> None:
        self.conn = conn
        self.names = Names()
        self.names.commands.update({n: s.usage for n, s in COMMANDS.items()})
        self.query: str | None = None  # current conversation: a user or "#group"
        self.unread: Counter[str] = Counter()
        self.shown: list[str] = []  # every line shown, as plain text (tests read it)
        self._names_at = 0.0
        self.session: PromptSession = PromptSession(
            completer=ChatCompleter(self.names), history=history or InMemoryHistory(),
            bottom_toolbar=self.toolbar, style=STYLE, complete_while_typing=False,
            input=input, output=output, enable_history_search=True,
        )  # fmt: skip
        # Escape and Alt+key must react at once, not after half a second.
        self.session.app.ttimeoutlen = 0.05
        conn.on_event = self.on_event
        conn.on_state = self.on_state

    # --- showing ------------------------------------------------------------------------

    def show(self, parts: FormattedText | str, style: str = "") -> None:
        if isinstance(parts, str):
            parts = FormattedText([(style, parts)])
        self.shown.append("".join(text for _, text in parts))
        print_formatted_text(parts, style=STYLE, output=self.session.output)

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message":
            self.show(message_parts(event, self.conn.user))
            where = conversation_of(event, self.conn.user)
            if where != self.query and event["from"] != self.conn.user:
                self.unread[where] += 1
            if event["from"] not in {u for u, _ in self.names.users}:
                self._names_at = 0  # someone new: refresh the names soon
        elif kind == "bye":
            self.show(f"System: the server closed this session ({event.get('reason')}).",
                      "class:error")  # fmt: skip
        self.session.app.invalidate()

    def on_state(self, state: str) -> None:
        if state == "reconnecting":
            self.show("System: connection lost; reconnecting...", "class:error")
        elif state == "connected" and self.shown:
            self.show("System: reconnected.", "class:system")
        with contextlib.suppress(Exception):
            self.session.app.invalidate()

    def toolbar(self) -> FormattedText:
        unread = ", ".join(f"{k} {n}" for k, n in self.unread.most_common(4))
        text = (f" {self.conn.state} | {self.conn.user or '-'} | talking to "
                f"{self.query or '-'} | unread: {unread or 'none'} ")  # fmt: skip
        return FormattedText([("class:bottom-toolbar", text)])

    def prompt_message(self) -> str:
        return f"[{self.query}]> " if self.query else "> "

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        with patch_stdout(raw=True):
            await self.refresh_names()
            refresher = asyncio.create_task(self.refresh_names_forever())
            try:
                while True:
                    try:
                        line = await self.session.prompt_async(self.prompt_message)
                    except KeyboardInterrupt:
                        continue  # Ctrl-C clears the line
                    except EOFError:
                        break  # Ctrl-D
                    if not await self.handle(line):
                        break
            finally:
                refresher.cancel()
        await self.conn.close()

    async def handle(self, line: str) -> bool:
        """Run one input line; False when the user leaves."""
        if not line.strip():
            return True
        word = line.split(" ", 1)[0].lower()
        if word in ("/exit", "/quit"):
            return False
        if word == "/query":
            return self._set_query(line)
        if not line.startswith("/"):
            if self.query is None:
                self.show("Error: no conversation; use /query <name> first, or /help",
                          "class:error")  # fmt: skip
                return True
            target = self.query
            line = (f"/sendgroup {target[1:]} {line}" if target.startswith("#")
                    else f"/send {target} {line}")  # fmt: skip
        try:
            reply = await self.conn.call(line)
        except ChatError as exc:
            self.show(f"Error [{exc.code}]: {exc.reply.get('message')}", "class:error")
            return True
        except Disconnected:
            self.show("Error: not connected; your line was not sent", "class:error")
            return True
        fields = {k: v for k, v in reply.items() if k not in ("type", "cmd")}
        if reply["cmd"] not in ("send", "sendgroup"):
            self.show(to_text(Ok(reply["cmd"], fields)), "class:system")
        if reply["cmd"] in ("group", "leave", "users", "groups"):
            await self.refresh_names()
        return True

    def _set_query(self, line: str) -> bool:
        parts = line.split()
        if len(parts) != 2:
            self.query = None
            self.show("System: no current conversation.", "class:system")
            return True
        name = parts[1]
        groups = {g.lower() for g in self.names.groups}
        if name.startswith("#") or name.lower() in groups:
            self.query = "#" + name.lstrip("#")
        else:
            self.query = name
        self.unread.pop(self.query, None)
        self.show(f"System: talking to {self.query}; plain lines go there.", "class:system")
        return True

    async def refresh_names(self) -> None:
        """Ask the server who exists and which groups we are in."""
        self._names_at = time.monotonic()
        with contextlib.suppress(ChatError, Disconnected):
            self.names.set_users((await self.conn.call("/users"))["users"])
            self.names.set_groups((await self.conn.call("/groups"))["groups"])

    async def refresh_names_forever(self) -> None:
        """Keep the completer's names fresh while the prompt runs."""
        while True:
            await asyncio.sleep(1.0)  # a cheap check; the refresh itself is rarer
            if time.monotonic() - self._names_at > NAMES_REFRESH_SECONDS:
                await self.refresh_names()


def file_history(path) -> History:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileHistory(str(path))
