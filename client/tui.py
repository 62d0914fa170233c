"""The full-screen client (`chat-client --tui`): one tab per conversation.

Owns: the full-screen layout (tab bar, the current tab's lines, status line,
input line) and keeping the tabs (client/tabs.py) up to date: unread
counts, drafts, scroll position, loading each tab's history once.
Must not: touch sockets (client/connection.py does) or decide what a line
means (client/lines.py does, for the REPL too); keys, bars, colours and
message formats come from client/keys.py, client/toolbar.py, client/style.py
and client/messages.py.

A tab shows its `/history` once, oldest first, then live messages. While
the history loads, live messages wait in the tab; afterwards a live message
is dropped when its id is at most the newest id the history showed (or the
tab showed that id already), so nothing appears twice. Typed lines go
through one queue and run in order, each bound to the tab it was typed in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Point
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.layout import Float, FloatContainer, HSplit, Layout, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.layout.menus import CompletionsMenu
from prompt_toolkit.layout.processors import BeforeInput
from prompt_toolkit.output import Output

from client import messages
from client.completion import ChatCompleter
from client.connection import ChatError, Connection, Disconnected
from client.keys import quick_escape, tab_bindings
from client.lines import (
    TUI_COMMANDS,
    Blank,
    Clear,
    Close,
    Command,
    Leave,
    NoConversation,
    Query,
    Refused,
    private_message,
    read_line,
)
from client.names import NamesFeed, names_for
from client.style import style_factory
from client.tabs import PAGE, SYSTEM, Tab
from client.toolbar import status_line, tab_bar

log = logging.getLogger("client.tui")

NO_CONVERSATION = ("Error: the System tab takes /commands; open a conversation with "
                   "/query <name> or Alt+<number>")  # fmt: skip


class Tui:
    """The full-screen client. `await run()` until /exit, /quit, Ctrl-D or
    Ctrl-Q; then the connection is closed. With `auto_switch`, a tab that a
    new conversation opens is shown at once (the half-typed line stays with
    the tab it was typed in)."""

    def __init__(self, conn: Connection, history: History | None = None,
                 input: Input | None = None, output: Output | None = None,
                 auto_switch: bool = False) -> None:  # fmt: skip
        self.conn = conn
        self.auto_switch = auto_switch
        self.names = names_for(TUI_COMMANDS)
        self.feed = NamesFeed(conn, self.names)
        self._tabs = [Tab(SYSTEM, loaded=True)]
        self._current = self._tabs[0]
        self._last_state = conn.state
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()  # (line, tab)
        self._tasks: set[asyncio.Task[None]] = set()
        self.input = Buffer(completer=ChatCompleter(self.names),
                            history=history or InMemoryHistory(), multiline=False,
                            accept_handler=self._accept, complete_while_typing=False)  # fmt: skip
        self.tab_bar = tab_bar(lambda: self._tabs, lambda: self._current)
        self.status_line = status_line(conn, lambda: self._current, lambda: self.auto_switch)
        self._body = Window(FormattedTextControl(self._body_text, show_cursor=False,
                                                 get_cursor_position=self._body_cursor),
                            wrap_lines=True)  # fmt: skip
        self.app: Application[None] = Application(
            layout=self._layout(), key_bindings=tab_bindings(self),
            style=style_factory(full_screen=True), full_screen=True, input=input,
            output=output, enable_page_navigation_bindings=False,
        )  # fmt: skip
        quick_escape(self.app)
        conn.on_event = self.on_event
        conn.on_state = self.on_state

    # --- what tests (and the layout) read ------------------------------------------------

    @property
    def tabs(self) -> list[str]:
        """The tabs' names, in order (the System tab first)."""
        return [t.name for t in self._tabs]

    @property
    def current(self) -> str:
        """The name of the tab shown."""
        return self._current.name

    @property
    def unread(self) -> dict[str, int]:
        """Each tab's count of messages that came while it was not shown."""
        return {t.name: t.unread for t in self._tabs}

    def lines(self, name: str) -> list[str]:
        """The lines of tab `name` as plain text (raises KeyError if none)."""
        return ["".join(f[1] for f in line) for line in self._tab(name).lines]

    # --- moving between tabs ---------------------------------------------------------------

    def switch(self, name: str) -> None:
        """Show tab `name`: the input line's text stays with the tab it was
        typed in, and the new tab's draft comes back. Clears its unread count."""
        tab = self._tab(name)
        if tab is not self._current:
            self._current.draft = self.input.text
            self._current = tab
            self.input.reset(Document(tab.draft, len(tab.draft)))
        tab.unread, tab.mentioned = 0, False
        self.app.invalidate()

    def switch_to_index(self, index: int) -> None:
        """Show the tab at `index` (0 is the System tab), if there is one."""
        if 0 <= index < len(self._tabs):
            self.switch(self._tabs[index].name)

    def step(self, delta: int) -> None:
        """The previous (-1) or next (+1) tab, wrapping around."""
        here = self._tabs.index(self._current)
        self.switch(self._tabs[(here + delta) % len(self._tabs)].name)

    def next_active(self) -> None:
        """The next tab (after the current one) with unread lines, if any:
        first a private conversation's, then a group's or System's."""
        here = self._tabs.index(self._current)
        around = self._tabs[here + 1 :] + self._tabs[: here + 1]
        private = [t for t in around if t.unread and t is not self._tabs[0]
                   and not t.name.startswith("#")]  # fmt: skip
        candidates = private or [t for t in around if t.unread]
        if candidates:
            self.switch(candidates[0].name)

    def toggle_auto_switch(self) -> None:
        """Turn auto-switch on or off (said in the System tab and the status line)."""
        self.auto_switch = not self.auto_switch
        state = "on: a new conversation's tab is shown at once" if self.auto_switch else "off"
        self.system(f"System: auto-switch {state}.")

    def scroll(self, pages: int) -> None:
        """Scroll the current tab up (positive) or down by whole pages."""
        info = self._body.render_info
        self._current.scroll_by(pages, info.window_height if info else PAGE)
        self.app.invalidate()

    def quit(self) -> None:
        """End run() (if it is running)."""
        if self.app.is_running and not self.app.is_done:
            self.app.exit()

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the full-screen application until the user leaves; then close."""
        self.system(f"System: you are {self.conn.user}. /query <name> opens a conversation, "
                    "/help lists the commands.")  # fmt: skip
        for group in self.conn.groups:  # a tab for each of the user's groups
            if self._find("#" + group) is None:
                self._open("#" + group)
        workers = [asyncio.create_task(self._work()), asyncio.create_task(self.feed.keep())]
        try:
            await self.app.run_async()
        finally:
            for task in [*workers, *self._tasks]:
                task.cancel()
            await asyncio.gather(*workers, *self._tasks, return_exceptions=True)
            await self.conn.close()

    def _accept(self, buffer: Buffer) -> bool:
        self._queue.put_nowait((buffer.text, self._current.name))
        return False  # clear the line (it went to the history)

    async def _work(self) -> None:
        while True:
            line, where = await self._queue.get()
            try:
                if not await self.handle(line, where):
                    return self.quit()
            except Exception:  # a bug must not leave the input line dead
                log.exception("while handling %r", line)
                self.system("Error: the client failed on that line (see its log)", "class:error")

    async def handle(self, line: str, where: str = SYSTEM) -> bool:
        """Run one line typed in tab `where`; False when the user leaves.
        Replies and errors show in `where` as well as in the System tab."""
        groups = [*self.names.groups, *self.conn.groups]
        current = None if where == SYSTEM else where
        match read_line(line, current, groups, TUI_COMMANDS):
            case Blank():
                pass
            case Leave():
                return False
            case Query(name=None):
                self.switch(SYSTEM)
            case Query(name=str(name)):
                self.switch((self._find(name) or self._open(name, back=where)).name)
            case Close():
                self._close(self._find(where))
            case Clear():
                self._tab_or_system(where).lines.clear()
                self.app.invalidate()
            case Refused(message=message):
                self._say(where, message, "class:error")
            case NoConversation():
                self.system(NO_CONVERSATION, "class:error")
            case Command(line=command):
                await self._command(command, where)
        return True

    async def _command(self, line: str, where: str) -> None:
        try:
            reply = await self.conn.call(line)
        except Disconnected as exc:
            if self.conn.state != "reconnecting":  # over for good (replaced, closed)
                self._say(where, messages.failure_text(exc), "class:error")
                return
            self._say(where, messages.KEPT, "class:error")
            self._restore(line, where)
            return
        except ChatError as exc:
            self._say(where, messages.failure_text(exc), "class:error")
            return
        cmd, private = reply["cmd"], private_message(line)
        if cmd == "send" and private:  # the sender gets no event for a private message
            (to, text), me = private, self.conn.user
            self._live({"id": reply["id"], "from": me, "to": to, "group": None, "text": text,
                        "ts": time.time()}, own=True)  # fmt: skip
        elif cmd != "sendgroup":  # group messages come back to the sender as events
            self._say(where, messages.reply_text(reply))
        if cmd == "help" and line.split() == ["/help"]:
            for text in messages.client_help(TUI_COMMANDS, messages.TUI_KEYS):
                self._say(where, text)
        if cmd in messages.CHANGES_NAMES:
            self.feed.want()
        if cmd == "join":  # a group one joins is where one talks next
            name = f"#{reply['group']}"
            self.switch((self._find(name) or self._open(name, back=where)).name)

    def _restore(self, line: str, where: str) -> None:
        """Put a line that could not be sent back where it was typed (the
        input line, or that tab's draft), unless something new is there."""
        tab = self._find(where)
        if tab is self._current and not self.input.text:
            self.input.reset(Document(line, len(line)))
        elif tab is not None and tab is not self._current and not tab.draft:
            tab.draft = line
        self.app.invalidate()

    def _say(self, where: str, text: str, style: str = "class:system") -> None:
        """`text` in the System tab and, if the line was typed in another
        tab that is still open, there too: where the user is looking."""
        self.system(text, style)
        tab = self._find(where)
        if tab is not None and tab is not self._tabs[0]:
            clock = time.strftime("%H:%M")
            self._append(tab, [("class:clock", f"{clock} "), (style, text)])

    def _tab_or_system(self, name: str) -> Tab:
        return self._find(name) or self._tabs[0]

    # --- what the server says ---------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """A message goes to its tab; a bye or a notice to the System tab."""
        kind = event.get("type")
        if kind == "message":
            self._live(event)
        elif kind == "group":
            text = messages.group_text(event, self.conn.user)
            self.system(text)
            name = "#" + str(event.get("group"))
            tab = self._find(name)
            me = (self.conn.user or "").lower()
            if tab is None and me in (a.lower() for a in event.get("added", [])):
                self._open(name)  # its history shows this line's context
            elif tab is not None:
                self._append(tab, [("class:clock", f"{time.strftime('%H:%M')} "),
                                   ("class:system", text)])  # fmt: skip
            self.feed.want()
        elif kind == "bye":
            self.system(messages.bye_text(event), "class:error")
        elif kind == "notice":
            self.system(f"System: {event.get('text')}")

    def on_state(self, state: str) -> None:
        """Say in the System tab when the connection is lost and back."""
        if state == "reconnecting" and self._last_state != state:
            self.system(messages.LOST, "class:error")
        elif state == "connected" and self._last_state == "reconnecting":
            self.system(messages.BACK)
        self._last_state = state
        self.app.invalidate()

    def system(self, text: str, style: str = "class:system") -> None:
        """Add a line to the System tab."""
        clock = time.strftime("%H:%M")
        self._append(self._tabs[0], [("class:clock", f"{clock} "), (style, text)])
        if self._current is not self._tabs[0]:
            self._tabs[0].unread += 1

    def _live(self, event: dict[str, Any], own: bool = False) -> None:
        me = self.conn.user
        own = own or messages.is_own(event, me)
        name = messages.conversation_of(event, me)
        tab = self._find(name)
        if tab is None:
            tab = self._open(name)
            if self.auto_switch and not own:
                self.switch(tab.name)
        if event["id"] in tab.seen:
            return
        if not own and tab is not self._current:
            tab.unread += 1
            tab.mentioned = tab.mentioned or messages.mentions(event, me)
        self.feed.notice(event)
        if not tab.loaded:
            tab.pending.append(event)
        elif event["id"] > tab.history_upto:
            self._show(tab, event)

    def _show(self, tab: Tab, event: dict[str, Any]) -> None:
        if event["id"] not in tab.seen:
            tab.seen.add(event["id"])
            self._append(tab, messages.tab_line(event, self.conn.user))

    def _append(self, tab: Tab, line: StyleAndTextTuples) -> None:
        tab.append(line)
        self.app.invalidate()

    # --- tabs -------------------------------------------------------------------------------

    def _find(self, name: str) -> Tab | None:
        return next((t for t in self._tabs if t.name.lower() == name.lower()), None)

    def _tab(self, name: str) -> Tab:
        tab = self._find(name)
        if tab is None:
            raise KeyError(f"no tab named {name!r}; the tabs are {self.tabs}")
        return tab

    def _open(self, name: str, back: str = SYSTEM) -> Tab:
        """A new tab for `name`, its history loading; if there is nobody by
        that name the tab closes and the view goes `back` where it was."""
        tab = Tab(name)
        self._tabs.append(tab)
        task = asyncio.create_task(self._load_history(tab, back))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.app.invalidate()
        return tab

    def _close(self, tab: Tab | None, back: str | None = None) -> None:
        if tab is None or tab is self._tabs[0]:
            return self.system("Error: /close closes a conversation's tab", "class:error")
        if tab is self._current:
            there = self._find(back) if back else None
            if there is not None and there is not tab:
                self.switch(there.name)
            else:
                self.step(-1)
        self._tabs.remove(tab)
        self.app.invalidate()

    async def _load_history(self, tab: Tab, back: str = SYSTEM) -> None:
        history: list[dict[str, Any]] = []
        try:
            reply = await self.conn.call(f"/history {tab.name.lstrip('#')}")
        except ChatError as exc:
            self.system(messages.failure_text(exc), "class:error")
            if not tab.pending:  # nobody by that name (a /query typo): no tab
                return self._close(tab, back)
        except Disconnected:
            self.system("Error: not connected; no history for " + tab.name, "class:error")
        else:
            history = reply["messages"]
            group = tab.name.startswith("#") or any(m.get("group") for m in history)
            tab.name = ("#" if group else "") + reply["with"]  # as the server spells it
        for m in history:
            self._show(tab, m)
        tab.history_upto = max((m["id"] for m in history), default=0)
        tab.loaded = True
        pending, tab.pending = tab.pending, []
        for m in pending:
            if m["id"] > tab.history_upto:
                self._show(tab, m)

    # --- layout -------------------------------------------------------------------------------

    def _layout(self) -> Layout:
        prompt = BufferControl(self.input, input_processors=[
            BeforeInput(lambda: f"[{self.current}] ", style="class:prompt")])  # fmt: skip
        root = HSplit([
            Window(FormattedTextControl(self.tab_bar), height=1, style="class:tabbar"),
            self._body,
            Window(FormattedTextControl(self.status_line), height=1, style="class:status"),
            Window(prompt, height=1),
        ])  # fmt: skip
        menu = Float(xcursor=True, ycursor=True, content=CompletionsMenu(max_height=8))
        return Layout(FloatContainer(root, floats=[menu]), focused_element=prompt)

    def _body_text(self) -> StyleAndTextTuples:
        return self._current.visible()

    def _body_cursor(self) -> Point:
        return Point(0, self._current.last_visible_row())
