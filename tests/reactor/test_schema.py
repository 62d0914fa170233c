"""The SQLite file's schema: a file from an older server is brought up to
date at start, keeping every row; a file from a newer one is refused."""

from __future__ import annotations

import sqlite3

import pytest

from harness import ServerProcess
from reactor.chat.storage import SCHEMA_VERSION, Storage
from tests.support.chatclient import fresh_name


def test_a_schema_1_file_is_migrated_and_keeps_its_messages(tmp_path):
    db = tmp_path / "old.db"
    alice, bob = fresh_name(), fresh_name()
    srv = ServerProcess(db).start()
    c = srv.client()
    for name in (alice, bob):
        c.ok(f"/register {name} pw")
    c.ok(f"/login {alice} pw")
    sent = c.ok(f"/send {bob} from the old days")["id"]
    c.ok(f"/group g_{alice} {bob}")
    assert srv.stop() == 0
    with sqlite3.connect(db) as old:  # as schema 1 had it: no groups.open, no messages.notice
        old.execute("ALTER TABLE groups DROP COLUMN open")
        old.execute("ALTER TABLE messages DROP COLUMN notice")
        old.execute("UPDATE schema_version SET version = 1")
    srv = ServerProcess(db).start()
    try:
        reader = srv.client()
        login = reader.ok(f"/login {bob} pw")
        assert login["unread"] == 1 and reader.event()["id"] == sent
        assert reader.ok(f"/history {alice}")["messages"][0]["text"] == "from the old days"
        assert reader.ok("/groups")["groups"] == [{"name": f"g_{alice}", "members": sorted(
            [alice, bob], key=str.lower)}]  # fmt: skip
    finally:
        assert srv.stop() == 0
    with sqlite3.connect(db) as now:
        assert now.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert now.execute("SELECT open FROM groups").fetchall() == [(0,)]  # invite-only
        assert now.execute("SELECT notice FROM messages").fetchall() == [(0,)]


def test_a_file_from_a_newer_server_is_refused(tmp_path):
    db = tmp_path / "new.db"
    Storage(str(db)).close()
    with sqlite3.connect(db) as newer:
        newer.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(RuntimeError, match="newer than this server"):
        Storage(str(db))
