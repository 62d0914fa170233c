"""The terminal client: the completer alone, the REPL driven through a pipe
against a real server, and reconnecting after the server dies."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from client import messages
from client.completion import ChatCompleter, Names
from client.connection import Account, Connection
from client.history import LineHistory, history_for
from client.lines import REPL_COMMANDS
from client.names import names_for
from client.repl import Repl
from tests.support.chatclient import Client, ServerProcess, account, fresh_name, until


def completions(names: Names, text: str) -> list[str]:
    doc = Document(text, len(text))
    return [c.text for c in ChatCompleter(names).get_completions(doc, CompleteEvent())]


@pytest.fixture
def names():
    n = names_for(REPL_COMMANDS)
    n.set_users([{"name": "bob", "online": False}, {"name": "Alice", "online": True},
                 {"name": "bea", "online": True}])  # fmt: skip
    n.set_groups(["os2", "books"])
    return n


def test_completer_commands_end_with_the_separator(names):
    assert completions(names, "/se") == ["/send ", "/sendgroup "]
    assert completions(names, "/q") == ["/query "]
    assert "/help " in completions(names, "/")
    assert "/mode " not in completions(names, "/")  # the client refuses /mode
    assert {"/msg ", "/me ", "/join ", "/part ", "/names ", "/clear "} <= set(
        completions(names, "/")
    )


def test_completer_users_online_first(names):
    assert completions(names, "/send ") == ["Alice ", "bea ", "bob "]
    assert completions(names, "/send b") == ["bea ", "bob "]
    assert completions(names, "/SEND B") == ["bea ", "bob "]
    assert completions(names, "/send bob ") == []  # the text is not completed


def test_completing_then_typing_keeps_the_words_apart(names):
    doc = Document("/send e", 7)
    names.set_users([{"name": "erin", "online": True}])
    (only,) = ChatCompleter(names).get_completions(doc, CompleteEvent())
    line = doc.text[: len(doc.text) + only.start_position] + only.text + "hi"
    assert line == "/send erin hi"


def test_completer_nicks_inside_plain_text(names):
    assert completions(names, "hello a") == ["Alice "]
    assert completions(names, "B") == ["bea ", "bob "]
    assert completions(names, "hello ") == []  # nothing typed yet: no list


def test_completer_groups_and_both(names):
    assert completions(names, "/sendgroup ") == ["books ", "os2 "]
    assert completions(names, "/leave o") == ["os2 "]
    assert completions(names, "/history b") == ["bea ", "bob ", "books "]
    assert completions(names, "/query ") == ["Alice ", "bea ", "bob ", "books ", "os2 "]
    assert completions(names, "/query o") == ["os2 "]
    assert completions(names, "/join ") == ["books ", "os2 "]
    assert completions(names, "/msg a") == ["Alice "]
    assert completions(names, "/group ") == ["books ", "os2 "]
    assert completions(names, "/group os2 ") == ["Alice ", "bea ", "bob "]
    assert completions(names, "/group os2 bob a") == ["Alice "]
    assert completions(names, "/help se") == ["send ", "sendgroup "]
    assert completions(names, "/ping ") == []


@pytest.fixture
def srv(tmp_path):
    server = ServerProcess(tmp_path / "chat.db", "--rate-limit", "0").start()
    yield server
    server.stop()


async def run_repl(srv, name, lines, done=None, then=None):
    """Log `name` in, type `lines` into a REPL through a pipe, run `then()`
    (blocking calls of another client) in a thread, and return the REPL once
    `done(repl)` holds (or after the lines), with /exit."""
    conn = Connection(*srv.addr, Account(name, "pw"))
    await conn.start()
    with create_pipe_input() as pipe:
        repl = Repl(conn, input=pipe, output=DummyOutput())
        task = asyncio.create_task(repl.run())
        for line in lines:
            pipe.send_text(line + "\r")
            await asyncio.sleep(0)  # let the prompt take the line
        if then is not None:
            await asyncio.to_thread(then)
        if done is not None:
            await until(lambda: done(repl))
        pipe.send_text("/exit\r")
        await asyncio.wait_for(task, 10)
    return repl


def test_repl_sends_and_shows_incoming_above_the_prompt(srv):
    bob = account(srv)
    alice_name = fresh_name()
    srv.client().ok(f"/register {alice_name} pw")

    async def scenario():
        conn_lines = [f"/send {bob.name} hello from the repl", f"/query {bob.name}",
                      "a plain line goes to bob", "/whoami"]  # fmt: skip

        def answered(repl):
            return any("back at you" in s for s in repl.shown)

        task = asyncio.create_task(run_repl(srv, alice_name, conn_lines, done=answered))
        # bob answers once he has both lines
        loop = asyncio.get_running_loop()
        got = await loop.run_in_executor(None, bob.messages, 2)
        await loop.run_in_executor(None, bob.ok, f"/send {alice_name} back at you")
        return got, await task

    got, repl = asyncio.run(scenario())
    assert [m["text"] for m in got] == ["hello from the repl", "a plain line goes to bob"]
    assert any(f"[{bob.name}]: back at you" in s for s in repl.shown)
    assert any(f"You are {alice_name}" in s for s in repl.shown)
    assert repl.query == bob.name


def test_repl_errors_are_shown_and_nothing_is_sent(srv):
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    repl = asyncio.run(run_repl(srv, name, ["plain text with no conversation",
                                            "/send nobody_at_all hi", "/nosuch"]))  # fmt: skip
    errors = [s for s in repl.shown if s.startswith("Error")]
    assert len(errors) == 3
    assert "unknown_user" in errors[1] and "unknown_command" in errors[2]


def test_repl_mode_text_is_refused_and_the_client_keeps_answering(srv):
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")

    def answered(repl):
        return any(f"You are {name}" in s for s in repl.shown)

    repl = asyncio.run(run_repl(srv, name, ["/mode text", "/whoami"], done=answered))
    assert any(s.startswith("Error") and "/mode is for nc" in s for s in repl.shown)


def test_repl_irc_habits_reach_the_server_as_its_commands(srv):
    bob = account(srv)
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    g = fresh_name("g")
    bob.ok(f"/group {g} {name}")

    async def scenario():
        lines = [f"/msg {bob.name} via msg", f"/query {bob.name}", "/me waves", "/names",
                 f"/part #{g}", "/msg"]  # fmt: skip

        def done(repl):
            return any(s.startswith("usage: /msg") or "usage: /msg" in s for s in repl.shown)

        task = asyncio.create_task(run_repl(srv, name, lines, done=done))
        loop = asyncio.get_running_loop()
        got = await loop.run_in_executor(None, bob.messages, 2)
        return got, await task

    got, repl = asyncio.run(scenario())
    assert [m["text"] for m in got] == ["via msg", "* waves"]
    assert any(bob.name in s and "online" in s.lower() for s in repl.shown)  # /names: /users
    assert all(grp["name"] != g for grp in bob.ok("/groups")["groups"] if name in grp["members"])


def test_repl_join_makes_an_open_group_others_may_join_and_talks_there(srv):
    bob = account(srv)
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    g = fresh_name("open")

    def joined(repl):
        return repl.query == f"#{g}" and any(f"Joined #{g}" in s for s in repl.shown)

    asyncio.run(run_repl(srv, name, [f"/join #{g}"], done=joined))
    assert bob.ok(f"/join {g}")["members"] == sorted([bob.name, name])  # open: bob may join


def test_repl_never_stores_a_password_and_keeps_history_per_user(srv, tmp_path):
    name, other = fresh_name(), fresh_name("Zed")
    srv.client().ok(f"/register {name} pw")
    path = history_for(tmp_path, name)

    async def scenario():
        conn = Connection(*srv.addr, Account(name, "pw"))
        await conn.start()
        with create_pipe_input() as pipe:
            repl = Repl(conn, history=LineHistory(path), input=pipe, output=DummyOutput())
            task = asyncio.create_task(repl.run())
            pipe.send_text(f"/register {other} topsecret\r  /LOGIN {other} topsecret\r/whoami\r")
            await until(lambda: any(f"You are {name}" in s for s in repl.shown))
            strings = list(repl.session.history.get_strings())
            pipe.send_text("/exit\r")
            await asyncio.wait_for(task, 10)
            return strings

    strings = asyncio.run(scenario())
    assert strings == ["/whoami"]  # nor kept for the up arrow
    stored = path.read_text()
    assert "/whoami" in stored and "topsecret" not in stored
    assert history_for(tmp_path, other) != path
    assert history_for(tmp_path, name.upper()) == path


def test_repl_help_lists_the_client_s_own_commands_and_keys(srv):
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")

    def done(repl):
        return any(s.startswith("System: keys:") for s in repl.shown)

    repl = asyncio.run(run_repl(srv, name, ["/help"], done=done))
    text = "\n".join(repl.shown)
    for usage in ("/query <", "/msg <", "/me <", "/join <", "/part ", "/names", "/clear"):
        assert usage in text
    assert "/sendgroup" in text and "Ctrl-R" in text  # the server's list too


def test_repl_shows_being_added_to_a_group(srv):
    bob = account(srv)
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    g = fresh_name("g")

    def added(repl):
        return any("added you to" in s for s in repl.shown)

    repl = asyncio.run(
        run_repl(srv, name, [], done=added, then=lambda: bob.ok(f"/group {g} {name}"))
    )
    (line,) = [s for s in repl.shown if "added you to" in s]
    assert line.startswith(f"System: {bob.name} added you to #{g} (members: ")


def test_repl_unread_counts_and_query_clears_them(srv):
    bob = account(srv)
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")

    async def scenario():
        conn = Connection(*srv.addr, Account(name, "pw"))
        await conn.start()
        with create_pipe_input() as pipe:
            repl = Repl(conn, input=pipe, output=DummyOutput())
            task = asyncio.create_task(repl.run())
            loop = asyncio.get_running_loop()
            for i in range(3):
                await loop.run_in_executor(None, bob.ok, f"/send {name} n{i}")
            await until(lambda: repl.unread[bob.name] == 3)
            counted = repl.unread[bob.name]
            assert bob.name in repl.toolbar()[0][1]
            pipe.send_text(f"/query {bob.name}\r")
            await until(lambda: repl.query == bob.name)
            pipe.send_text("/exit\r")
            await asyncio.wait_for(task, 10)
            return counted, repl

    counted, repl = asyncio.run(scenario())
    assert counted == 3 and repl.unread[bob.name] == 0


def server_to_kill(tmp_path) -> tuple[Path, ServerProcess, int, Client, str]:
    """A server to kill and start again on its database and port, a logged-in
    bob on it, and the name of a registered user: (db, server, port, bob, name)."""
    db = tmp_path / "chat.db"
    first = ServerProcess(db, "--rate-limit", "0").start()
    bob = account(first)
    name = fresh_name()
    first.client().ok(f"/register {name} pw")
    return db, first, first.addr[1], bob, name


def test_connection_reconnects_and_loses_nothing(tmp_path):
    db, first, port, bob, name = server_to_kill(tmp_path)

    async def scenario():
        seen = []
        conn = Connection(*first.addr, Account(name, "pw"))
        conn.on_event = lambda e: seen.append(e) if e.get("type") == "message" else None
        states = []
        conn.on_state = states.append
        await conn.start()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, bob.ok, f"/send {name} before")
        await until(lambda: seen)
        first.signal(signal.SIGKILL)
        await loop.run_in_executor(None, first.wait)
        await until(lambda: conn.state == "reconnecting")
        second = ServerProcess(db, "--rate-limit", "0", port=port)
        await loop.run_in_executor(None, second.start)
        await until(lambda: conn.state == "connected")
        other = await loop.run_in_executor(None, lambda: account(second))
        await loop.run_in_executor(None, other.ok, f"/send {name} after")
        await until(lambda: len(seen) >= 2)
        await conn.close()
        second.stop()
        return seen, states

    seen, states = asyncio.run(scenario())
    # "before" was shown once (not again when replayed after the restart).
    assert [m["text"] for m in seen] == ["before", "after"]
    assert "reconnecting" in states and states[-1] == "closed"


def test_repl_while_reconnecting_one_status_and_a_typed_line_is_kept(tmp_path):
    db, first, port, bob, name = server_to_kill(tmp_path)

    async def scenario():
        conn = Connection(*first.addr, Account(name, "pw"))
        await conn.start()
        loop = asyncio.get_running_loop()
        with create_pipe_input() as pipe:
            repl = Repl(conn, input=pipe, output=DummyOutput())
            task = asyncio.create_task(repl.run())
            first.signal(signal.SIGKILL)
            await loop.run_in_executor(None, first.wait)
            await until(lambda: conn.attempts >= 3)  # three tries, nobody there
            bar = repl.toolbar()[0][1]
            pipe.send_text(f"/send {bob.name} typed while away\r")
            await until(lambda: any(s.startswith("Error: not connected, so not sent")
                                    for s in repl.shown))  # fmt: skip
            await until(lambda: repl.session.default_buffer.text.startswith("/send"))
            second = ServerProcess(db, "--rate-limit", "0", port=port)
            await loop.run_in_executor(None, second.start)
            await until(lambda: conn.state == "connected")
            receiver = await loop.run_in_executor(None, lambda: second.client())
            await loop.run_in_executor(None, receiver.ok, f"/login {bob.name} pw")
            pipe.send_text("\r")  # the kept line, sent now
            got = await loop.run_in_executor(None, receiver.event, "message")
            pipe.send_text("/exit\r")
            await asyncio.wait_for(task, 10)
            second.stop()
            return repl, bar, got

    repl, bar, got = asyncio.run(scenario())
    assert "reconnecting (try " in bar and "typed lines are kept" in bar
    assert repl.shown.count(messages.LOST) == 1 and repl.shown.count(messages.BACK) == 1
    assert got["text"] == "typed while away"


def test_repl_shows_messages_replayed_at_login_once(srv):
    bob = account(srv)
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    for i in range(3):
        bob.ok(f"/send {name} while you were away {i}")

    async def scenario():
        conn = Connection(*srv.addr, Account(name, "pw"))
        login = await conn.start()  # the replay follows the login reply at once
        with create_pipe_input() as pipe:
            repl = Repl(conn, input=pipe, output=DummyOutput())  # listens only now
            task = asyncio.create_task(repl.run())
            await until(lambda: sum("while you were away" in s for s in repl.shown) == 3)
            pipe.send_text("/exit\r")
            await asyncio.wait_for(task, 10)
        return login, repl

    login, repl = asyncio.run(scenario())
    assert login["unread"] == 3
    shown = [s for s in repl.shown if "while you were away" in s]
    assert [s[-1] for s in shown] == ["0", "1", "2"]
