"""The full-screen client driven through a pipe against a real server: tabs
open on messages with unread counts, Alt keys move between tabs, a tab's
history is shown once, drafts stay with their tab, and leaving ends run()."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import pytest
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput

from client.connection import Account, Connection
from client.tui import SYSTEM, Tui
from tests.support.chatclient import ServerProcess, account, fresh_name, until

ALT_1, ALT_2, ALT_A, ALT_S = "\x1b1", "\x1b2", "\x1ba", "\x1bs"
ALT_LEFT, ALT_RIGHT = "\x1b[1;3D", "\x1b[1;3C"  # what xterm sends
PAGE_UP, PAGE_DOWN = "\x1b[5~", "\x1b[6~"
CTRL_C, CTRL_D = "\x03", "\x04"


def errors(tui: Tui) -> int:
    """How many error lines the System tab shows."""
    return sum("Error" in line or "usage: " in line for line in tui.lines(SYSTEM))


def messages(tui: Tui, tab: str) -> list[str]:
    """The texts of the message lines of a tab (`12:01 <bob> hi` -> `hi`)."""
    return [line.split("> ", 1)[1] for line in tui.lines(tab) if "> " in line]


@pytest.fixture
def srv(tmp_path):
    server = ServerProcess(tmp_path / "chat.db", "--rate-limit", "0").start()
    yield server
    server.stop()


@dataclass
class Session:
    tui: Tui
    pipe: PipeInput
    me: str
    task: asyncio.Task


@contextlib.asynccontextmanager
async def running_tui(srv, me: str | None = None, login_first: bool = True, **options):
    """User `me` (a new one by default) logged in, their Tui running on a
    pipe; /exit at the end (unless the test ended it), wait for run()."""
    if me is None:
        me = fresh_name()
        srv.client().ok(f"/register {me} pw")
    conn = Connection(*srv.addr, Account(me, "pw"))
    if login_first:
        await conn.start()
    with create_pipe_input() as pipe:
        tui = Tui(conn, input=pipe, output=DummyOutput(), **options)
        if not login_first:
            await conn.start()
        session = Session(tui, pipe, me, asyncio.create_task(tui.run()))
        try:
            yield session
        finally:
            if not session.task.done():
                pipe.send_text(CTRL_C + "/exit\r")
            await asyncio.wait_for(session.task, 10)


def test_tui_private_message_opens_a_tab_that_counts_unread_and_replies(srv):
    bob = account(srv)

    async def scenario():
        async with running_tui(srv) as s:
            await asyncio.to_thread(bob.ok, f"/send {s.me} hi there")
            await until(lambda: bob.name in s.tui.tabs and messages(s.tui, bob.name))
            assert s.tui.tabs == [SYSTEM, bob.name]
            assert s.tui.unread[bob.name] == 1 and s.tui.current == SYSTEM
            assert messages(s.tui, bob.name) == ["hi there"]  # history and live: once

            s.pipe.send_text(ALT_2)
            await until(lambda: s.tui.current == bob.name)
            assert s.tui.unread[bob.name] == 0

            s.pipe.send_text("hello bob\r")
            got = await asyncio.to_thread(bob.event, "message")
            assert (got["from"], got["text"]) == (s.me, "hello bob")
            await until(lambda: len(messages(s.tui, bob.name)) == 2)
            assert messages(s.tui, bob.name) == ["hi there", "hello bob"]
            assert f"<{s.me}> hello bob" in s.tui.lines(bob.name)[-1]

    asyncio.run(scenario())


def test_tui_made_before_login_shows_the_replayed_messages_once(srv):
    bob = account(srv)
    me = fresh_name()
    srv.client().ok(f"/register {me} pw")
    bob.ok(f"/send {me} sent while you were away")

    async def scenario():
        async with running_tui(srv, me, login_first=False) as s:
            await until(lambda: bob.name in s.tui.tabs and messages(s.tui, bob.name))
            assert messages(s.tui, bob.name) == ["sent while you were away"]
            assert s.tui.unread[bob.name] == 1

    asyncio.run(scenario())


def test_tui_group_tab_shows_its_history_once_then_live_messages(srv):
    bob = account(srv)
    bob.ok("/group g")
    bob.ok("/sendgroup g said before you joined")

    async def scenario():
        async with running_tui(srv) as s:
            await asyncio.to_thread(bob.ok, f"/group g {s.me}")
            # Being added opens the tab; once its history is in, the rest is live.
            await until(lambda: "#g" in s.tui.tabs and s.tui._tab("#g").loaded)
            await asyncio.to_thread(bob.ok, f"/sendgroup g welcome {s.me}")
            await until(lambda: len(messages(s.tui, "#g")) == 2)
            await asyncio.to_thread(bob.ok, "/sendgroup g and a live one")
            await until(lambda: len(messages(s.tui, "#g")) == 3)
            assert messages(s.tui, "#g") == [
                "said before you joined", f"welcome {s.me}", "and a live one"]  # fmt: skip
            assert s.tui.unread["#g"] == 2  # the live ones, not the history
            tab_style = next(style for style, text in s.tui.tab_bar() if "#g" in text)
            assert "mention" in tab_style  # "welcome <me>" names us

    asyncio.run(scenario())


def test_tui_own_group_message_is_shown_once(srv):
    bob = account(srv)

    async def scenario():
        async with running_tui(srv) as s:
            await asyncio.to_thread(bob.ok, f"/group g {s.me}")
            s.pipe.send_text("/query #g\r")
            await until(lambda: s.tui.current == "#g")
            s.pipe.send_text("hello group\r")
            got = await asyncio.to_thread(bob.event, "message")
            assert (got["group"], got["text"]) == ("g", "hello group")
            await until(lambda: messages(s.tui, "#g") == ["hello group"])
            s.pipe.send_text("/whoami\r")  # runs after the line above: its echo is in
            await until(lambda: s.tui.unread[SYSTEM] == 1)
            assert messages(s.tui, "#g") == ["hello group"]

    asyncio.run(scenario())


def test_tui_draft_stays_with_its_tab(srv):
    bob = account(srv)

    async def scenario():
        async with running_tui(srv) as s:
            s.pipe.send_text(f"/query {bob.name}\r")
            await until(lambda: s.tui.current == bob.name)
            s.pipe.send_text("half typed")
            await until(lambda: s.tui.input.text == "half typed")
            s.pipe.send_text(ALT_1)
            await until(lambda: s.tui.current == SYSTEM)
            assert s.tui.input.text == ""
            s.pipe.send_text("/who")
            await until(lambda: s.tui.input.text == "/who")
            s.pipe.send_text(ALT_2)
            await until(lambda: s.tui.current == bob.name)
            assert s.tui.input.text == "half typed"
            s.pipe.send_text(ALT_1)
            await until(lambda: s.tui.current == SYSTEM)
            assert s.tui.input.text == "/who"

    asyncio.run(scenario())


def test_tui_auto_switch_never_moves_a_half_typed_line(srv):
    bob = account(srv)

    async def scenario():
        async with running_tui(srv, auto_switch=True) as s:
            s.pipe.send_text("/whoami is not for bob")
            await until(lambda: s.tui.input.text == "/whoami is not for bob")
            await asyncio.to_thread(bob.ok, f"/send {s.me} ping")
            await until(lambda: s.tui.current == bob.name)
            assert s.tui.input.text == "" and s.tui.unread[bob.name] == 0
            s.pipe.send_text(ALT_LEFT)
            await until(lambda: s.tui.current == SYSTEM)
            assert s.tui.input.text == "/whoami is not for bob"

    asyncio.run(scenario())


def test_tui_alt_a_visits_tabs_with_activity(srv):
    bob, carol = account(srv), account(srv)

    async def scenario():
        async with running_tui(srv) as s:
            await asyncio.to_thread(bob.ok, f"/send {s.me} one")
            await until(lambda: bob.name in s.tui.tabs)
            await asyncio.to_thread(carol.ok, f"/send {s.me} two")
            await until(lambda: carol.name in s.tui.tabs)
            s.pipe.send_text(ALT_A)
            await until(lambda: s.tui.current == bob.name)
            s.pipe.send_text(ALT_A)
            await until(lambda: s.tui.current == carol.name)
            assert s.tui.unread == {SYSTEM: 0, bob.name: 0, carol.name: 0}
            s.pipe.send_text(ALT_RIGHT)  # wraps around to the first tab
            await until(lambda: s.tui.current == SYSTEM)

    asyncio.run(scenario())


def test_tui_alt_a_prefers_private_messages(srv):
    bob = account(srv)
    lab = fresh_name("lab")

    async def scenario():
        async with running_tui(srv) as s:
            await asyncio.to_thread(bob.ok, f"/group {lab} {s.me}")
            await until(lambda: f"#{lab}" in s.tui.tabs and s.tui._tab(f"#{lab}").loaded)
            await asyncio.to_thread(bob.ok, f"/sendgroup {lab} to the group")
            await until(lambda: s.tui.unread.get(f"#{lab}") == 1)
            await asyncio.to_thread(bob.ok, f"/send {s.me} to you")
            await until(lambda: s.tui.unread.get(bob.name) == 1)
            s.pipe.send_text(ALT_A)  # the group's tab comes first, the private one wins
            await until(lambda: s.tui.current == bob.name)
            s.pipe.send_text(ALT_A)
            await until(lambda: s.tui.current == f"#{lab}")

    asyncio.run(scenario())


def test_tui_auto_switch_is_offered_and_alt_s_toggles_it(srv):
    bob, carol = account(srv), account(srv)

    async def scenario():
        async with running_tui(srv) as s:
            assert "auto-switch" not in s.tui.status_line()[0][1]
            s.pipe.send_text(ALT_S)
            await until(lambda: s.tui.auto_switch)
            assert "auto-switch" in s.tui.status_line()[0][1]
            s.pipe.send_text("half typed")
            await until(lambda: s.tui.input.text == "half typed")
            await asyncio.to_thread(bob.ok, f"/send {s.me} ping")
            await until(lambda: s.tui.current == bob.name)
            assert s.tui.input.text == ""
            s.pipe.send_text(ALT_S)
            await until(lambda: not s.tui.auto_switch)
            await asyncio.to_thread(carol.ok, f"/send {s.me} pong")
            await until(lambda: s.tui.unread.get(carol.name) == 1)
            assert s.tui.current == bob.name
            s.tui.switch(SYSTEM)
            assert s.tui.input.text == "half typed"  # it stayed where it was typed
            assert any("auto-switch on" in x for x in s.tui.lines(SYSTEM))
            assert any("auto-switch off" in x for x in s.tui.lines(SYSTEM))

    asyncio.run(scenario())


def test_tui_help_lists_its_commands_and_keys_where_typed(srv):
    bob = account(srv)

    async def scenario():
        async with running_tui(srv) as s:
            s.pipe.send_text(f"/query {bob.name}\r")
            await until(lambda: s.tui.current == bob.name)
            s.pipe.send_text("/help\r")
            await until(lambda: any("keys:" in x for x in s.tui.lines(bob.name)))
            text = "\n".join(s.tui.lines(bob.name))
            assert "/close" in text and "Alt+S" in text and "/sendgroup" in text

    asyncio.run(scenario())


def test_tui_shows_membership_changes_in_system_and_the_group_tab(srv):
    bob, carol = account(srv), account(srv)
    lab = fresh_name("lab")

    async def scenario():
        async with running_tui(srv) as s:
            await asyncio.to_thread(bob.ok, f"/group {lab} {s.me}")
            await until(lambda: any("added you to" in x for x in s.tui.lines(SYSTEM)))
            await until(lambda: f"#{lab}" in s.tui.tabs)  # a tab for the new group
            assert s.tui.current == SYSTEM
            s.pipe.send_text(f"/query #{lab}\r")
            await until(lambda: s.tui.current == f"#{lab}")
            await asyncio.to_thread(bob.ok, f"/group {lab} {carol.name}")
            await until(lambda: any(f"added {carol.name} to" in x for x in s.tui.lines(f"#{lab}")))

    asyncio.run(scenario())


def test_tui_join_opens_the_group_s_tab_and_plain_lines_go_there(srv):
    bob = account(srv)
    g = fresh_name("open")

    async def scenario():
        async with running_tui(srv) as s:
            await asyncio.to_thread(bob.ok, f"/join {g}")  # bob makes an open group
            s.pipe.send_text(f"/join {g}\r")
            await until(lambda: s.tui.current == f"#{g}")
            s.pipe.send_text("hello, open group\r")
            await until(lambda: "hello, open group" in messages(s.tui, f"#{g}"))
            return s.me

    me = asyncio.run(scenario())
    got = bob.messages(1)[0]
    assert (got["from"], got["group"], got["text"]) == (me, g, "hello, open group")


def test_tui_opens_a_tab_for_each_group_at_login(srv):
    me, bob = fresh_name(), account(srv)
    srv.client().ok(f"/register {me} pw")
    groups = [fresh_name("ga"), fresh_name("gb")]
    for g in groups:
        bob.ok(f"/group {g} {me}")
    gid = bob.ok(f"/sendgroup {groups[0]} before you came")["id"]

    async def scenario():
        async with running_tui(srv, me=me) as s:
            await until(lambda: s.tui.tabs == [SYSTEM, *(f"#{g}" for g in groups)])
            await until(lambda: "before you came" in messages(s.tui, f"#{groups[0]}"))
            assert s.tui.current == SYSTEM
            return gid

    asyncio.run(scenario())


def test_tui_scrollback_pages_up_and_down(srv):
    bob = account(srv)

    async def scenario():
        async with running_tui(srv) as s:
            for i in range(45):  # more than the 40 lines of DummyOutput
                await asyncio.to_thread(bob.ok, f"/send {s.me} line {i}")
            s.pipe.send_text(f"/query {bob.name}\r")
            await until(lambda: len(messages(s.tui, bob.name)) == 45)
            s.pipe.send_text(PAGE_UP)
            await until(lambda: "below" in s.tui.status_line()[0][1])
            s.pipe.send_text(PAGE_DOWN)
            await until(lambda: "below" not in s.tui.status_line()[0][1])

    asyncio.run(scenario())


def test_tui_system_tab_shows_replies_and_errors(srv):
    async def scenario():
        async with running_tui(srv) as s:
            s.pipe.send_text("plain text here\r/nosuch\r/whoami\r/send nobody_here hi\r")
            await until(lambda: any("unknown_user" in line for line in s.tui.lines(SYSTEM)))
            shown = [line for line in s.tui.lines(SYSTEM) if "Error" in line or "You are" in line]
            assert "System tab takes /commands" in shown[0]
            assert "unknown_command" in shown[1]
            assert f"You are {s.me}" in shown[2]
            assert "unknown_user" in shown[3]
            assert s.tui.tabs == [SYSTEM]

    asyncio.run(scenario())


def test_tui_query_of_nobody_opens_no_tab(srv):
    async def scenario():
        async with running_tui(srv) as s:
            s.pipe.send_text("/query nobody_here\r")
            await until(lambda: any("unknown_user" in line for line in s.tui.lines(SYSTEM)))
            await until(lambda: s.tui.tabs == [SYSTEM] and s.tui.current == SYSTEM)

    asyncio.run(scenario())


def test_tui_a_reply_shows_in_the_tab_it_was_typed_in_and_in_system(srv):
    bob = account(srv)

    async def scenario():
        async with running_tui(srv) as s:
            s.pipe.send_text(f"/query {bob.name}\r")
            await until(lambda: s.tui.current == bob.name)
            s.pipe.send_text("/whoami\r/send nobody_here hi\r/mode text\r")
            await until(lambda: any("/mode is for nc" in line for line in s.tui.lines(bob.name)))
            here = s.tui.lines(bob.name)
            assert any(f"You are {s.me}" in line for line in here)
            assert any("unknown_user" in line for line in here)
            system = s.tui.lines(SYSTEM)
            assert any(f"You are {s.me}" in line for line in system)
            assert any("unknown_user" in line for line in system)
            s.pipe.send_text("/clear\r")
            await until(lambda: s.tui.lines(bob.name) == [])
            assert s.tui.lines(SYSTEM) == system  # /clear clears where it was typed

    asyncio.run(scenario())


@pytest.mark.parametrize("typo", ["/query nobody2", "/join no!such", "/close", "/part"])
def test_tui_a_failed_tab_command_never_changes_where_plain_lines_go(srv, typo):
    bob = account(srv)
    lab = fresh_name("lab")

    async def scenario():
        async with running_tui(srv) as s:
            bob.ok(f"/group {lab} {s.me}")
            await until(lambda: s.tui.tabs == [SYSTEM, f"#{lab}"])  # being added opens it
            s.pipe.send_text(f"/query {bob.name}\r")
            await until(lambda: s.tui.tabs == [SYSTEM, f"#{lab}", bob.name])
            # /close in a conversation's tab works: it can fail only on System
            for where in (SYSTEM,) if typo == "/close" else (SYSTEM, bob.name):
                s.tui.switch(where)
                before = errors(s.tui)
                s.pipe.send_text(typo + "\r")
                await until(lambda b=before: errors(s.tui) > b)
                await until(lambda: s.tui.tabs == [SYSTEM, f"#{lab}", bob.name])
                assert s.tui.current == where
            s.tui.switch(SYSTEM)
            s.pipe.send_text("hello?\r")
            await until(lambda: any("System tab takes /commands" in x for x in s.tui.lines(SYSTEM)))
            s.tui.switch(bob.name)
            s.pipe.send_text("still to bob\r")
            await until(lambda: "still to bob" in messages(s.tui, bob.name))
        assert [m["text"] for m in bob.ok(f"/history {lab}")["messages"]] == []
        assert bob.messages(1)[0]["text"] == "still to bob"

    asyncio.run(scenario())


@pytest.mark.parametrize("keys", ["/exit\r", "/quit\r", CTRL_D])
def test_tui_run_ends_and_closes_the_connection(srv, keys):
    async def scenario():
        async with running_tui(srv) as s:
            s.pipe.send_text(keys)
            await asyncio.wait_for(s.task, 10)
            assert s.tui.conn.state == "closed"

    asyncio.run(scenario())
