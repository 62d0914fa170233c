"""The REPL: a prompt_toolkit prompt with incoming messages above it.

Owns: the prompt session, the current conversation and its unread counts,
and showing events and replies above the prompt. Must not: touch sockets
(client/connection.py does) or decide what a line means (client/lines.py
does, for the full-screen client too); the toolbar, colours and message
format come from client/toolbar.py, client/style.py and client/messages.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import FormattedText, fragment_list_to_text
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.shortcuts import print_formatted_text

from client import messages
from client.completion import ChatCompleter
from client.connection import ChatError, Connection, Disconnected
from client.keys import quick_escape
from client.lines import (
    REPL_COMMANDS,
    Blank,
    Clear,
    Command,
    Leave,
    NoConversation,
    Query,
    Refused,
    read_line,
)
from client.names import NamesFeed, names_for
from client.style import style_factory
from client.toolbar import repl_toolbar

NO_CONVERSATION = "Error: no conversation; use /query <name> first, or /help"


class Repl:
    """One user's prompt. `run()` until /exit or Ctrl-D."""

    def __init__(self, conn: Connection, history: History | None = None,
                 input: Input | None = None, output: Output | None = None) -> None:  # fmt: skip
        self.conn = conn
        self.names = names_for(REPL_COMMANDS)
        self.feed = NamesFeed(conn, self.names)
        self.query: str | None = None  # current conversation: a user or "#group"
        self.unread: Counter[str] = Counter()
        self.shown: list[str] = []  # every line shown, as plain text (tests read it)
        self._last_state = conn.state
        self._keep = ""  # a line refused while disconnected: back on the prompt
        self.style = style_factory()
        self.toolbar = repl_toolbar(conn, lambda: self.query, self.unread)
        self.session: PromptSession[str] = PromptSession(
            completer=ChatCompleter(self.names), history=history or InMemoryHistory(),
            bottom_toolbar=self.toolbar, style=self.style, complete_while_typing=False,
            input=input, output=output, enable_history_search=True,
        )  # fmt: skip
        quick_escape(self.session.app)
        conn.on_event = self.on_event
        conn.on_state = self.on_state

    # --- showing ------------------------------------------------------------------------

    def show(self, parts: FormattedText | str, style: str = "") -> None:
        """Print a line above the prompt (a plain string in `style`)."""
        if isinstance(parts, str):
            parts = FormattedText([(style, parts)])
        self.shown.append(fragment_list_to_text(parts))
        print_formatted_text(parts, style=self.style, output=self.session.output)

    def on_event(self, event: dict[str, Any]) -> None:
        """Show a message (counting it unread unless it is for the current
        conversation, or our own) or the server's goodbye."""
        kind = event.get("type")
        if kind == "message":
            self.show(messages.prompt_line(event, self.conn.user))
            where = messages.conversation_of(event, self.conn.user)
            if where != self.query and event["from"] != self.conn.user:
                self.unread[where] += 1
            self.feed.notice(event)
        elif kind == "group":
            self.show(messages.group_text(event, self.conn.user), "class:system")
            self.feed.want()
        elif kind == "bye":
            self.show(messages.bye_text(event), "class:error")
        self.session.app.invalidate()

    def on_state(self, state: str) -> None:
        """Say once when the connection is lost and once when it is back;
        the toolbar counts the tries in between."""
        if state == "reconnecting" and self._last_state != state:
            self.show(messages.LOST, "class:error")
        elif state == "connected" and self._last_state == "reconnecting":
            self.show(messages.BACK, "class:system")
        self._last_state = state
        with contextlib.suppress(Exception):
            self.session.app.invalidate()

    def prompt_message(self) -> str:
        """`[bob]> ` while talking to bob, else `> `."""
        return f"[{self.query}]> " if self.query else "> "

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Prompt for lines and run them until /exit, /quit or Ctrl-D; then close."""
        with patch_stdout(raw=True):
            await self.feed.refresh()
            refresher = asyncio.create_task(self.feed.keep())
            try:
                while True:
                    try:
                        keep, self._keep = self._keep, ""
                        line = await self.session.prompt_async(self.prompt_message, default=keep)
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
        match read_line(line, self.query, self.names.groups, REPL_COMMANDS):
            case Blank():
                pass
            case Leave():
                return False
            case Query(name=name):
                self._set_query(name)
            case Clear():
                self.session.output.erase_screen()
                self.session.output.cursor_goto(0, 0)
                self.session.output.flush()
            case Refused(message=message):
                self.show(message, "class:error")
            case NoConversation():
                self.show(NO_CONVERSATION, "class:error")
            case Command(line=command):
                await self._command(command)
        return True

    async def _command(self, line: str) -> None:
        try:
            reply = await self.conn.call(line)
        except Disconnected as exc:
            if self.conn.state != "reconnecting":  # over for good (replaced, closed)
                self.show(messages.failure_text(exc), "class:error")
                return
            self._keep = line  # not lost: back on the prompt, to send once reconnected
            self.show(messages.KEPT, "class:error")
            return
        except ChatError as exc:
            self.show(messages.failure_text(exc), "class:error")
            return
        if reply["cmd"] not in messages.QUIET_REPLIES:
            self.show(messages.reply_text(reply), "class:system")
        if reply["cmd"] == "help" and line.split() == ["/help"]:
            for text in messages.client_help(REPL_COMMANDS, messages.REPL_KEYS):
                self.show(text, "class:system")
        if reply["cmd"] in messages.CHANGES_NAMES:
            await self.feed.refresh()
        if reply["cmd"] == "join":  # a group one joins is where one talks next
            self._set_query(f"#{reply['group']}")

    def _set_query(self, name: str | None) -> None:
        self.query = name
        if name is None:
            self.show("System: no current conversation.", "class:system")
            return
        self.unread.pop(name, None)
        self.show(f"System: talking to {name}; plain lines go there.", "class:system")
