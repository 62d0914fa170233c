"""One conversation's tab in the full-screen client, and how a message
becomes a styled line there.

Owns: `Tab` (lines, unread count, draft, scroll, history-loading state),
the tab colours and the message line format. Must not: do I/O or know the
layout (client/tui.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.styles import Style, merge_styles

from client.repl import STYLE as REPL_STYLE

SYSTEM = "System"
#: Lines kept per tab; older ones are dropped (the server keeps the history).
MAX_LINES = 5000
#: The height assumed for the lines window until its first render measured it.
PAGE = 10

STYLE = merge_styles([REPL_STYLE, Style.from_dict({
    "tabbar": "bg:#303030 #bbbbbb", "tab.current": "bg:#5f87ff #ffffff bold",
    "tab.unread": "bg:#303030 #ffd75f bold", "tab.mention": "bg:#aa0000 #ffffff bold",
    "status": "bg:#303030 #dddddd", "clock": "#888888", "prompt": "bold",
})])  # fmt: skip


@dataclass
class Tab:
    """A conversation (a user or "#group") or the System tab, as shown."""

    name: str
    lines: list[StyleAndTextTuples] = field(default_factory=list)
    unread: int = 0  # messages from others that arrived while another tab was shown
    mentioned: bool = False  # one of them names us
    draft: str = ""  # the input line, kept while another tab is shown
    scroll: int = 0  # lines scrolled up from the bottom; 0 follows new lines
    # Invariant: until `loaded`, live messages wait in `pending` (history first).
    loaded: bool = False
    pending: list[dict[str, Any]] = field(default_factory=list)
    history_upto: int = 0  # the newest id the history showed
    seen: set[int] = field(default_factory=set)  # every message id shown here


def mentions(event: dict[str, Any], me: str | None) -> bool:
    """A message from someone else that contains our name."""
    if me is None or event["from"].lower() == me.lower():
        return False
    return me.lower() in event["text"].lower()


def message_line(event: dict[str, Any], me: str | None) -> StyleAndTextTuples:
    """`12:01 <alice> hi`: own messages dimmed, mentions of `me` highlighted."""
    clock = time.strftime("%H:%M", time.localtime(event.get("ts", time.time())))
    own = me is not None and event["from"].lower() == me.lower()
    style = "class:mention" if mentions(event, me) else ("class:own" if own else "")
    return [("class:clock", f"{clock} "), ("class:own" if own else "class:from",
            f"<{event['from']}>"), ("", " "), (style, event["text"])]  # fmt: skip
