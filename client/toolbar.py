"""The bars around the input line, as small factories: the REPL's bottom
toolbar, and the full-screen client's tab bar and status line.

Owns: what the bars say. Must not: change what they show (each factory
gets read-only views of the state it reports) or do I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from prompt_toolkit.formatted_text import FormattedText, StyleAndTextTuples

from client.connection import Connection
from client.tabs import Tab

#: How many conversations with unread messages the REPL's toolbar names.
UNREAD_SHOWN = 4
TAB_KEYS = "Alt+1..9 tab, Alt+A activity, Alt+S auto, Ctrl-Q quit"


def _session(conn: Connection) -> str:
    state = conn.state
    if state == "reconnecting" and conn.attempts:
        state = f"reconnecting (try {conn.attempts}; typed lines are kept)"
    return f" {state} | {conn.user or '-'} | "


def repl_toolbar(
    conn: Connection, conversation: Callable[[], str | None], unread: Counter[str]
) -> Callable[[], FormattedText]:
    """The REPL's bottom toolbar: connection state, who we are, the current
    conversation and the conversations with unread messages."""

    def toolbar() -> FormattedText:
        waiting = ", ".join(f"{k} {n}" for k, n in unread.most_common(UNREAD_SHOWN))
        text = (f"{_session(conn)}talking to {conversation() or '-'} | "
                f"unread: {waiting or 'none'} ")  # fmt: skip
        return FormattedText([("class:bottom-toolbar", text)])

    return toolbar


def tab_bar(
    tabs: Callable[[], Sequence[Tab]], current: Callable[[], Tab]
) -> Callable[[], StyleAndTextTuples]:
    """The full-screen client's tab bar: `1:System|2:bob (3)|`, the current
    tab, tabs with unread lines and tabs that mention us each coloured."""

    def bar() -> StyleAndTextTuples:
        out: StyleAndTextTuples = []
        for i, tab in enumerate(tabs(), 1):
            style = ("class:tab.current" if tab is current() else "class:tab.mention"
                     if tab.mentioned else "class:tab.unread" if tab.unread else "")  # fmt: skip
            count = f" ({tab.unread})" if tab.unread else ""
            out += [(style, f" {i}:{tab.name}{count} "), ("", "|")]
        return out

    return bar


def status_line(
    conn: Connection, current: Callable[[], Tab], auto: Callable[[], bool] = lambda: False
) -> Callable[[], StyleAndTextTuples]:
    """The full-screen client's status line: connection state, who we are,
    the current tab (and how far it is scrolled up), whether auto-switch is
    on, and the tab keys."""

    def status() -> StyleAndTextTuples:
        tab = current()
        below = f" | {tab.scroll} lines below (PgDn)" if tab.scroll else ""
        switching = " | auto-switch" if auto() else ""
        return [("", f"{_session(conn)}{tab.name}{below}{switching} | {TAB_KEYS}")]

    return status
