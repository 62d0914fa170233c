"""The completer's names kept fresh (client/names.py), against a recorded
fake connection: no terminal, no server."""

from __future__ import annotations

import asyncio

from client.connection import Account, Connection, Disconnected
from client.lines import TUI_COMMANDS
from client.names import NamesFeed, names_for


class FakeConnection:
    """Answers /users and /groups, and records every call in order."""

    def __init__(self, down: bool = False) -> None:
        self.calls: list[str] = []
        self.down = down
        self.asked: asyncio.Queue[str] | None = None  # each call, for a test to wait on

    async def call(self, line: str) -> dict:
        self.calls.append(line)
        if self.asked is not None:
            self.asked.put_nowait(line)
        if self.down:
            raise Disconnected("down")
        if line == "/users":
            return {"users": [{"name": "bob", "online": False}, {"name": "amy", "online": True}]}
        return {"groups": [{"name": "os2"}]}


def test_names_for_has_the_server_s_and_the_ui_s_commands():
    names = names_for(TUI_COMMANDS)
    assert {"send", "sendgroup", "help", "query", "close"} <= set(names.commands)


def test_names_feed_refresh_asks_users_then_groups():
    conn = FakeConnection()
    feed = NamesFeed(conn, names_for({}))
    asyncio.run(feed.refresh())
    assert conn.calls == ["/users", "/groups"]
    assert feed.names.users == [("amy", True), ("bob", False)]
    assert feed.names.groups == ["os2"]


def test_names_feed_refresh_when_down_keeps_the_names():
    feed = NamesFeed(FakeConnection(down=True), names_for({}))
    feed.names.groups = ["old"]
    asyncio.run(feed.refresh())
    assert feed.names.groups == ["old"]


def test_names_feed_notice_wants_a_refresh_for_someone_new():
    feed = NamesFeed(FakeConnection(), names_for({}))
    assert feed.due  # nothing known yet
    asyncio.run(feed.refresh())
    feed.notice({"from": "amy", "group": "os2"})
    assert not feed.due
    feed.notice({"from": "zoe", "group": None})
    assert feed.due
    asyncio.run(feed.refresh())
    feed.notice({"from": "bob", "group": "new"})
    assert feed.due


def test_names_feed_keep_refreshes_at_once_and_when_wanted():
    async def scenario():
        conn = FakeConnection()
        conn.asked = asyncio.Queue()
        feed = NamesFeed(conn, names_for({}))
        keeper = asyncio.create_task(feed.keep())
        first = [await conn.asked.get() for _ in range(2)]
        feed.want()
        second = [await conn.asked.get() for _ in range(2)]
        keeper.cancel()
        return first, second

    first, second = asyncio.run(scenario())
    assert first == second == ["/users", "/groups"]


def test_names_feed_ends_when_cancelled_just_as_names_change():
    """A UI that stops while a refresh is wanted must not wait for the next
    periodic refresh (asyncio.wait_for could swallow that cancellation)."""

    async def scenario():
        conn = Connection("127.0.0.1", 9, Account("alice", "pw"))  # never connected
        feed = NamesFeed(conn, names_for({}))
        for _ in range(20):
            task = asyncio.create_task(feed.keep())
            for _ in range(3):
                await asyncio.sleep(0)  # into its wait for the next refresh
            feed.want()
            await asyncio.sleep(0)  # the wait is over ...
            task.cancel()  # ... and the UI stops at that very step
            done, _ = await asyncio.wait({task}, timeout=2)
            assert done, "keep() went on after it was cancelled"

    asyncio.run(scenario())
