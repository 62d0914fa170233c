"""The client's colours, as one small factory shared by the REPL and the
full-screen client.

Owns: every style class the client uses and what it looks like. Must not:
know where a class is used (client/messages.py, client/toolbar.py and the
layouts name the classes).
"""

from __future__ import annotations

from prompt_toolkit.styles import BaseStyle, Style, merge_styles

#: Messages, replies and errors: every UI shows these.
MESSAGE_CLASSES = {
    "error": "#ff5555 bold", "own": "#888888", "system": "#00aa88", "from": "bold",
    "group": "#5f87ff bold", "bottom-toolbar": "bg:#222222 #dddddd", "mention": "reverse",
}  # fmt: skip
#: The full-screen client's tab bar, status line, clock and prompt.
TAB_CLASSES = {
    "tabbar": "bg:#303030 #bbbbbb", "tab.current": "bg:#5f87ff #ffffff bold",
    "tab.unread": "bg:#303030 #ffd75f bold", "tab.mention": "bg:#aa0000 #ffffff bold",
    "status": "bg:#303030 #dddddd", "clock": "#888888", "prompt": "bold",
}  # fmt: skip


def style_factory(full_screen: bool = False) -> BaseStyle:
    """The style of the REPL, or with `full_screen` of the tabbed client
    (the REPL's classes plus those of the tabs)."""
    style = Style.from_dict(MESSAGE_CLASSES)
    if not full_screen:
        return style
    return merge_styles([style, Style.from_dict(TAB_CLASSES)])
