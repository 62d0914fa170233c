"""Key bindings of the client, as small factories.

Owns: which key does what, and how quickly Escape reacts. Must not: know
the layout or the connection; a binding calls a method of the UI (the
`TabKeys` interface), never reaches into it.

The REPL keeps prompt_toolkit's own bindings (Ctrl-C clears the line,
Ctrl-D on an empty line leaves, Up/Down and Ctrl-R search the history);
the full-screen client gets the same Ctrl-C and Ctrl-D plus its tab keys.
"""

from __future__ import annotations

from typing import Any, Protocol

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings

#: Seconds to wait after Escape for the rest of an Alt+key sequence:
#: prompt_toolkit's default half second makes Escape and Alt+key feel stuck.
ESCAPE_TIMEOUT = 0.05


class TabKeys(Protocol):
    """What the tab keys act on (client/tui.py's `Tui`)."""

    input: Buffer

    def switch_to_index(self, index: int) -> None:
        """Show the tab at `index` (0 is the first), if there is one."""

    def step(self, delta: int) -> None:
        """Show the previous (-1) or next (+1) tab, wrapping around."""

    def next_active(self) -> None:
        """Show the next tab with unread lines, if any (private ones first)."""

    def toggle_auto_switch(self) -> None:
        """Turn showing a new conversation's tab at once on or off."""

    def scroll(self, pages: int) -> None:
        """Scroll the current tab up (positive) or down by whole pages."""

    def quit(self) -> None:
        """Leave the client."""


def quick_escape(app: Application[Any]) -> None:
    """Make Escape and Alt+key react at once in `app`."""
    app.ttimeoutlen = ESCAPE_TIMEOUT


def tab_bindings(ui: TabKeys) -> KeyBindings:
    """Alt+1..9 select a tab, Alt+Left/Right step, Alt+A jumps to activity,
    Alt+S turns auto-switch on or off, PgUp/PgDn scroll, Ctrl-C clears the
    line, Ctrl-Q (or Ctrl-D on an empty line) quits."""
    kb = KeyBindings()
    for n in range(1, 10):
        kb.add("escape", str(n))(lambda e, n=n: ui.switch_to_index(n - 1))
    kb.add("escape", "left")(lambda e: ui.step(-1))
    kb.add("escape", "right")(lambda e: ui.step(+1))
    kb.add("escape", "a")(lambda e: ui.next_active())
    kb.add("escape", "s")(lambda e: ui.toggle_auto_switch())
    kb.add("pageup")(lambda e: ui.scroll(+1))
    kb.add("pagedown")(lambda e: ui.scroll(-1))
    kb.add("c-c")(lambda e: ui.input.reset())
    kb.add("c-q")(lambda e: ui.quit())
    kb.add("c-d", filter=Condition(lambda: not ui.input.text))(lambda e: ui.quit())
    return kb
