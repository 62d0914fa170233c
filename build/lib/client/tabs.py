"""One conversation's tab in the full-screen client.

Owns: `Tab` (lines, unread count, draft, scroll, history-loading state)
and what keeping its lines means (a bounded list; a reader scrolled up
stays on the lines they read). Must not: do I/O, style or format a message
(client/messages.py does), or know the layout (client/tui.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prompt_toolkit.formatted_text import StyleAndTextTuples

SYSTEM = "System"
#: Lines kept per tab; older ones are dropped (the server keeps the history).
MAX_LINES = 5000
#: The height assumed for the lines window until its first render measured it.
PAGE = 10


@dataclass
class Tab:
    """A conversation (a user or "#group") or the System tab, as shown."""

    name: str
    lines: list[StyleAndTextTuples] = field(default_factory=list)
    unread: int = 0  # messages from others that arrived while another tab was shown
    mentioned: bool = False  # one of them names us
    draft: str = ""  # the input line, kept while another tab is shown
    # Invariant: 0 <= scroll; 0 follows new lines.
    scroll: int = 0  # lines scrolled up from the bottom
    # Invariant: until `loaded`, live messages wait in `pending` (history first).
    loaded: bool = False
    pending: list[dict[str, Any]] = field(default_factory=list)
    history_upto: int = 0  # the newest id the history showed
    seen: set[int] = field(default_factory=set)  # every message id shown here

    def append(self, line: StyleAndTextTuples) -> None:
        """Add `line` at the bottom, dropping the oldest beyond MAX_LINES."""
        self.lines.append(line)
        del self.lines[:-MAX_LINES]
        if self.scroll:
            self.scroll += 1  # keep the lines a reader scrolled to in place

    def scroll_by(self, pages: int, height: int) -> None:
        """Scroll up (positive) or down by whole pages of a window `height`
        lines high, stopping at the first line and at the bottom."""
        top = max(0, len(self.lines) - height)  # the first line at the top: stop there
        self.scroll = min(max(0, self.scroll + pages * max(1, height - 1)), top)

    def visible(self) -> StyleAndTextTuples:
        """The lines down to the scroll position, one per row (the window
        shows the end of this, so scrolling moves whole pages)."""
        out: StyleAndTextTuples = []
        for i, line in enumerate(self.lines[: len(self.lines) - self.scroll]):
            if i:
                out.append(("", "\n"))
            out.extend(line)
        return out

    def last_visible_row(self) -> int:
        """The row of the last line `visible()` shows (where the cursor goes)."""
        return max(0, len(self.lines) - self.scroll - 1)
