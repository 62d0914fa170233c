"""The full-screen client (`chat-client --tui`): one tab per conversation.

Owns: the full-screen layout (tab bar, the current tab's lines, status line,
input line), keeping the tabs (client/tabs.py) up to date (unread counts,
drafts, scroll position, loading each tab's history once) and the keys
that move between tabs.
Must not: touch sockets (client/connection.py does). Lines become commands
by the REPL's rules (`/query`, `/exit`, plain text to the current
conversation); message routing reuses `conversation_of` from client/repl.py.

A tab shows its `/history` once, oldest first, then live messages. While
the history loads, live messages wait in the tab; afterwards a live message
is dropped when its id is at most the newest id the history showed (or the
tab showed that id already), so nothing appears twice. Typed lines go
through one queue and run in order, each bound to the tab it was typed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from pathlib import Path
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Point
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.layout import Float, FloatContainer, HSplit, Layout, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.layout.menus import CompletionsMenu
from prompt_toolkit.layout.processors import BeforeInput

from client.completion import ChatCompleter, Names
from client.connection import ChatError, Connection, Disconnected
from client.repl import NAMES_REFRESH_SECONDS, conversation_of
from client.tabs import MAX_LINES, PAGE, STYLE, SYSTEM, Tab, mentions, message_line
from reactor.protocol import COMMANDS, Ok, to_text

log = logging.getLogger("client.tui")


def tab_bindings(tui: Tui) -> KeyBindings:
    """Alt+1..9 select a tab, Alt+Left/Right step, Alt+A jumps to activity,
    PgUp/PgDn scroll, Ctrl-C clears the line, Ctrl-Q (or Ctrl-D on an empty
    line) quits."""
    kb = KeyBindings()
    for n in range(1, 10):
        kb.add("escape", str(n))(lambda e, n=n: tui.switch_to_index(n - 1))
    kb.add("escape", "left")(lambda e: tui.step(-1))
    kb.add("escape", "right")(lambda e: tui.step(+1))
    kb.add("escape", "a")(lambda e: tui.next_active())
    kb.add("pageup")(lambda e: tui.scroll(+1))
    kb.add("pagedown")(lambda e: tui.scroll(-1))
    kb.add("c-c")(lambda e: tui.input.reset())
    kb.add("c-q")(lambda e: tui.quit())
    kb.add("c-d", filter=Condition(lambda: not tui.input.text))(lambda e: tui.quit())
    return kb


class Tui:
    """The full-screen client. `await run()` until /exit, /quit, Ctrl-D or
    Ctrl-Q; then the connection is closed. With `auto_switch`, a tab that a
    new conversation opens is shown at once (the half-typed line stays with
    the tab it was typed in)."""

    def __init__(self, conn: Connection, history_path: Path | None = None, input=None,
                 output=None, auto_switch: bool = False) -> None:  # fmt: skip
        self.conn = conn
        self.auto_switch = auto_switch
        self.names = Names()
        self.names.commands.update({n: s.usage for n, s in COMMANDS.items()})
        self.names.commands["close"] = "/close: close the current conversation's tab"
        self._tabs = [Tab(SYSTEM, loaded=True)]
        self._current = self._tabs[0]
        self._last_state = conn.state
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()  # (line, tab)
        self._names_wanted = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        history = InMemoryHistory()
        if history_path is not None:
            history_path.parent.mkdir(parents=True, exist_ok=True)
            history = FileHistory(str(history_path))
        self.input = Buffer(completer=ChatCompleter(self.names), history=history,
                            multiline=False, accept_handler=self._accept,
                            complete_while_typing=False)  # fmt: skip
        self._body = Window(FormattedTextControl(self._body_text, show_cursor=False,
                                                 get_cursor_position=self._body_cursor),
                            wrap_lines=True)  # fmt: skip
        self.app: Application = Application(
            layout=self._layout(), key_bindings=tab_bindings(self), style=STYLE,
            full_screen=True, input=input, output=output, enable_page_navigation_bindings=False,
        )  # fmt: skip
        self.app.ttimeoutlen = 0.05  # Escape and Alt+key react at once (as in the REPL)
        conn.on_event = self.on_event
        conn.on_state = self.on_state

    # --- what tests (and the layout) read ------------------------------------------------

    @property
    def tabs(self) -> list[str]:
        return [t.name for t in self._tabs]

    @property
    def current(self) -> str:
        return self._current.name

    @property
    def unread(self) -> dict[str, int]:
        return {t.name: t.unread for t in self._tabs}

    def lines(self, name: str) -> list[str]:
        """The lines of tab `name` as plain text (raises KeyError if none)."""
        return ["".join(f[1] for f in line) for line in self._tab(name).lines]

    def tab_bar(self) -> StyleAndTextTuples:
        out: StyleAndTextTuples = []
        for i, tab in enumerate(self._tabs, 1):
            style = ("class:tab.current" if tab is self._current else "class:tab.mention"
                     if tab.mentioned else "class:tab.unread" if tab.unread else "")  # fmt: skip
            count = f" ({tab.unread})" if tab.unread else ""
            out += [(style, f" {i}:{tab.name}{count} "), ("", "|")]
        return out

    def status_line(self) -> StyleAndTextTuples:
        tab = self._current
        below = f" | {tab.scroll} lines below (PgDn)" if tab.scroll else ""
        return [("", f" {self.conn.state} | {self.conn.user or '-'} | {tab.name}{below}"
                     " | Alt+1..9 tab, Alt+A activity, Ctrl-Q quit")]  # fmt: skip

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
        if 0 <= index < len(self._tabs):
            self.switch(self._tabs[index].name)

    def step(self, delta: int) -> None:
        """The previous (-1) or next (+1) tab, wrapping around."""
        here = self._tabs.index(self._current)
        self.switch(self._tabs[(here + delta) % len(self._tabs)].name)

    def next_active(self) -> None:
        """The next tab (after the current one) with unread lines, if any."""
        here = self._tabs.index(self._current)
        for tab in self._tabs[here + 1 :] + self._tabs[: here + 1]:
            if tab.unread:
                return self.switch(tab.name)

    def scroll(self, pages: int) -> None:
        """Scroll the current tab up (positive) or down by whole pages."""
        tab, info = self._current, self._body.render_info
        height = info.window_height if info else PAGE
        top = max(0, len(tab.lines) - height)  # the first line at the top: stop there
        tab.scroll = min(max(0, tab.scroll + pages * max(1, height - 1)), top)
        self.app.invalidate()

    def quit(self) -> None:
        if self.app.is_running and not self.app.is_done:
            self.app.exit()

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the full-screen application until the user leaves; then close."""
        self.system(f"System: you are {self.conn.user}. /query <name> opens a conversation, "
                    "/help lists the commands.")  # fmt: skip
        workers = [asyncio.create_task(self._work()), asyncio.create_task(self._keep_names())]
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
        """Run one line typed in tab `where`; False when the user leaves."""
        if not line.strip():
            return True
        word = line.split(" ", 1)[0].lower()
        if word in ("/exit", "/quit"):
            return False
        if word == "/query":
            self._query(line.split())
        elif word == "/close":
            self._close(self._find(where))
        elif line.startswith("/"):
            await self._command(line)
        elif where == SYSTEM:
            self.system("Error: the System tab takes /commands; open a conversation with "
                        "/query <name> or Alt+<number>", "class:error")  # fmt: skip
        elif where.startswith("#"):
            await self._command(f"/sendgroup {where[1:]} {line}", where)
        else:
            await self._command(f"/send {where} {line}", where)
        return True

    async def _command(self, line: str, where: str = SYSTEM) -> None:
        try:
            reply = await self.conn.call(line)
        except (ChatError, Disconnected) as exc:
            text = (f"Error [{exc.code}]: {exc.reply.get('message')}" if isinstance(exc, ChatError)
                    else "Error: not connected; your line was not sent")  # fmt: skip
            self.system(text, "class:error")
            if where != SYSTEM and self._find(where):
                self._append(self._find(where), [("class:error", text)])
            return
        cmd = reply["cmd"]
        sent = re.match(r"/send\s+(\S+)\s+(.*)", line, re.IGNORECASE)
        if cmd == "send" and sent:  # the sender gets no event for a private message
            self._live({"id": reply["id"], "from": self.conn.user, "to": sent[1],
                        "group": None, "text": sent[2], "ts": time.time()}, own=True)  # fmt: skip
        elif cmd != "sendgroup":  # group messages come back to the sender as events
            fields = {k: v for k, v in reply.items() if k not in ("type", "cmd")}
            self.system(to_text(Ok(cmd, fields)))
        if cmd in ("group", "leave", "users", "groups"):
            self._names_wanted.set()

    def _query(self, words: list[str]) -> None:
        if len(words) != 2:
            return self.switch(SYSTEM)
        name = words[1]
        groups = {g.lower() for g in [*self.names.groups, *self.conn.groups]}
        if name.startswith("#") or name.lower() in groups:
            name = "#" + name.lstrip("#")
        self.switch((self._find(name) or self._open(name)).name)

    # --- what the server says ---------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message":
            self._live(event)
        elif kind == "bye":
            self.system(f"System: the server closed this session ({event.get('reason')}).",
                        "class:error")  # fmt: skip
        elif kind == "notice":
            self.system(f"System: {event.get('text')}")

    def on_state(self, state: str) -> None:
        if state == "reconnecting" and self._last_state != state:
            self.system("System: connection lost; reconnecting...", "class:error")
        elif state == "connected" and self._last_state == "reconnecting":
            self.system("System: reconnected.")
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
        own = own or (me is not None and event["from"].lower() == me.lower())
        name = conversation_of(event, me)
        tab = self._find(name)
        if tab is None:
            tab = self._open(name)
            if self.auto_switch and not own:
                self.switch(tab.name)
        if event["id"] in tab.seen:
            return
        if not own and tab is not self._current:
            tab.unread += 1
            tab.mentioned = tab.mentioned or mentions(event, me)
        known = event["from"] in {u for u, _ in self.names.users}
        if not known or event.get("group") not in (None, *self.names.groups):
            self._names_wanted.set()  # someone new, or a new group: refresh soon
        if not tab.loaded:
            tab.pending.append(event)
        elif event["id"] > tab.history_upto:
            self._show(tab, event)

    def _show(self, tab: Tab, event: dict[str, Any]) -> None:
        if event["id"] not in tab.seen:
            tab.seen.add(event["id"])
            self._append(tab, message_line(event, self.conn.user))

    def _append(self, tab: Tab, line: StyleAndTextTuples) -> None:
        tab.lines.append(line)
        del tab.lines[:-MAX_LINES]
        if tab.scroll:
            tab.scroll += 1  # keep the lines a reader scrolled to in place
        self.app.invalidate()

    # --- tabs -------------------------------------------------------------------------------

    def _find(self, name: str) -> Tab | None:
        return next((t for t in self._tabs if t.name.lower() == name.lower()), None)

    def _tab(self, name: str) -> Tab:
        tab = self._find(name)
        if tab is None:
            raise KeyError(f"no tab named {name!r}; the tabs are {self.tabs}")
        return tab

    def _open(self, name: str) -> Tab:
        tab = Tab(name)
        self._tabs.append(tab)
        task = asyncio.create_task(self._load_history(tab))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.app.invalidate()
        return tab

    def _close(self, tab: Tab | None) -> None:
        if tab is None or tab is self._tabs[0]:
            return self.system("Error: /close closes a conversation's tab", "class:error")
        if tab is self._current:
            self.step(-1)
        self._tabs.remove(tab)
        self.app.invalidate()

    async def _load_history(self, tab: Tab) -> None:
        messages: list[dict[str, Any]] = []
        try:
            reply = await self.conn.call(f"/history {tab.name.lstrip('#')}")
        except ChatError as exc:
            self.system(f"Error [{exc.code}]: {exc.reply.get('message')}", "class:error")
            if not tab.pending:  # nobody by that name (a /query typo): no tab
                return self._close(tab)
        except Disconnected:
            self.system("Error: not connected; no history for " + tab.name, "class:error")
        else:
            messages = reply["messages"]
            group = tab.name.startswith("#") or any(m.get("group") for m in messages)
            tab.name = ("#" if group else "") + reply["with"]  # as the server spells it
        for m in messages:
            self._show(tab, m)
        tab.history_upto = max((m["id"] for m in messages), default=0)
        tab.loaded = True
        pending, tab.pending = tab.pending, []
        for m in pending:
            if m["id"] > tab.history_upto:
                self._show(tab, m)

    # --- names for the completer ----------------------------------------------------------

    async def refresh_names(self) -> None:
        """Ask the server who exists and which groups we are in."""
        with contextlib.suppress(ChatError, Disconnected):
            self.names.set_users((await self.conn.call("/users"))["users"])
            self.names.set_groups((await self.conn.call("/groups"))["groups"])

    async def _keep_names(self) -> None:
        while True:
            self._names_wanted.clear()
            await self.refresh_names()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._names_wanted.wait(), NAMES_REFRESH_SECONDS)

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
        """The current tab's lines down to the scroll position (the window
        shows the end of this, so PgUp/PgDn move whole pages)."""
        tab = self._current
        out: StyleAndTextTuples = []
        for i, line in enumerate(tab.lines[: len(tab.lines) - tab.scroll]):
            if i:
                out.append(("", "\n"))
            out.extend(line)
        return out

    def _body_cursor(self) -> Point:
        tab = self._current
        return Point(0, max(0, len(tab.lines) - tab.scroll - 1))
