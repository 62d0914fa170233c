"""How messages, replies and errors read (client/messages.py), the bars
(client/toolbar.py) and a tab's lines (client/tabs.py): no terminal, no server."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from prompt_toolkit.formatted_text import fragment_list_to_text

from client import messages
from client.connection import ChatError, Disconnected
from client.tabs import MAX_LINES, Tab
from client.toolbar import repl_toolbar, status_line, tab_bar

TS = 1_700_000_000.0


def message(sender, text, to=None, group=None):
    return {"type": "message", "id": 1, "from": sender, "to": to, "group": group,
            "text": text, "ts": TS}  # fmt: skip


def test_conversation_of_is_the_group_or_the_other_user():
    assert messages.conversation_of(message("bob", "hi", group="os2"), "me") == "#os2"
    assert messages.conversation_of(message("bob", "hi", to="me"), "me") == "bob"
    assert messages.conversation_of(message("Me", "hi", to="bob"), "me") == "bob"


def test_mentions_only_of_others_in_any_case():
    assert messages.mentions(message("bob", "hey ALICE"), "alice")
    assert not messages.mentions(message("alice", "I am alice"), "alice")
    assert not messages.mentions(message("bob", "hey"), "alice")
    assert not messages.mentions(message("bob", "hey alice"), None)


def test_prompt_line_names_the_group_and_marks_mentions():
    line = messages.prompt_line(message("bob", "hi alice", group="os2"), "alice")
    assert fragment_list_to_text(line).endswith("[#os2 bob]: hi alice")
    assert line[1][0] == "class:group" and line[-1][0] == "class:mention"


def test_prompt_line_dims_own_messages():
    line = messages.prompt_line(message("alice", "hi", to="bob"), "alice")
    assert fragment_list_to_text(line).endswith("[alice]: hi")
    assert {style for style, *_ in line} == {"class:own"}


def test_tab_line_format():
    line = messages.tab_line(message("bob", "hi alice"), "alice")
    assert fragment_list_to_text(line).endswith("<bob> hi alice")
    assert line[0][0] == "class:clock" and line[-1][0] == "class:mention"


def test_failure_text_says_whose_fault():
    error = ChatError({"type": "error", "code": "unknown_user", "message": "no such user"})
    assert messages.failure_text(error) == "Error [unknown_user]: no such user"
    assert "not connected" in messages.failure_text(Disconnected("down"))


def test_reply_text_is_the_text_protocol_s_line():
    reply = {"type": "ok", "cmd": "whoami", "user": "alice"}
    assert messages.reply_text(reply) == "System: You are alice."


def test_bye_text_gives_the_reason():
    assert "(replaced)" in messages.bye_text({"type": "bye", "reason": "replaced"})


def test_repl_toolbar_shows_the_conversation_and_unread():
    conn = SimpleNamespace(state="connected", user="alice")
    unread = Counter({"bob": 2})
    query = ["carol"]
    toolbar = repl_toolbar(conn, lambda: query[0], unread)
    assert toolbar()[0][1] == " connected | alice | talking to carol | unread: bob 2 "
    unread.clear()
    query[0] = None
    assert toolbar()[0][1] == " connected | alice | talking to - | unread: none "


def test_tab_bar_and_status_line():
    tabs = [Tab("System"), Tab("bob", unread=2), Tab("#g", unread=1, mentioned=True)]
    bar = tab_bar(lambda: tabs, lambda: tabs[0])()
    assert fragment_list_to_text(bar) == " 1:System | 2:bob (2) | 3:#g (1) |"
    assert [style for style, _ in bar[::2]] == [
        "class:tab.current", "class:tab.unread", "class:tab.mention"]  # fmt: skip
    tabs[1].scroll = 5
    conn = SimpleNamespace(state="reconnecting", user=None, attempts=0)
    status = status_line(conn, lambda: tabs[1])()[0][1]
    assert status.startswith(" reconnecting | - | bob | 5 lines below (PgDn) | Alt+1..9")
    conn.attempts = 3
    status = status_line(conn, lambda: tabs[1], lambda: True)()[0][1]
    assert status.startswith(" reconnecting (try 3; typed lines are kept) | - | bob | 5 lines")
    assert "| auto-switch |" in status


def test_tab_append_keeps_a_scrolled_reader_in_place_and_drops_old_lines():
    tab = Tab("bob")
    for i in range(MAX_LINES + 3):
        tab.append([("", f"line {i}")])
    assert len(tab.lines) == MAX_LINES and tab.lines[0] == [("", "line 3")]
    tab.scroll = 2
    tab.append([("", "new")])
    assert tab.scroll == 3


def test_tab_scroll_stops_at_the_top_and_the_bottom():
    tab = Tab("bob", lines=[[("", str(i))] for i in range(25)])
    tab.scroll_by(+1, height=10)
    assert tab.scroll == 9 and tab.last_visible_row() == 15
    tab.scroll_by(+5, height=10)
    assert tab.scroll == 15  # the first line is at the top
    tab.scroll_by(-9, height=10)
    assert tab.scroll == 0
    assert fragment_list_to_text(tab.visible()).splitlines()[-1] == "24"
