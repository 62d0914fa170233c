"""The SQLite file's schema (reactor/chat/schema.py): a file from an older
server is brought up to date at start, keeping every row; a file from a
newer one is refused and left as it was."""

from __future__ import annotations

import sqlite3

import pytest

from harness import ServerProcess
from reactor.chat.schema import SCHEMA_VERSION
from reactor.chat.storage import Storage
from tests.support.chatclient import fresh_name

#: What a file of each older schema lacks.
OLDER = {1: (("groups", "open"), ("messages", "notice")), 2: (("messages", "notice"),)}


@pytest.mark.parametrize("version", sorted(OLDER))
def test_an_older_file_is_migrated_and_keeps_its_messages(tmp_path, version):
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
    with sqlite3.connect(db) as old:  # as that schema had it
        for table, column in OLDER[version]:
            old.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        old.execute("UPDATE schema_version SET version = ?", (version,))
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
    with sqlite3.connect(db) as after:  # rolled back: untouched
        assert after.execute("SELECT version FROM schema_version").fetchall() == [
            (SCHEMA_VERSION + 1,)]  # fmt: skip
