"""Worker batches in process, without sockets: a real SQLite file, real locks,
and a storage fault made real with `PRAGMA max_page_count` (disk full)."""

from __future__ import annotations

import sqlite3

import pytest

from reactor.actions import Deliver, Disconnect, Done, Emit, LoggedIn, TextAck
from reactor.chat.commands import Chat
from reactor.chat.commit import Committer
from reactor.chat.engine import Engine
from reactor.chat.outbox import Outbox
from reactor.chat.sessions import ConnState, Sessions
from reactor.chat.storage import Storage
from reactor.protocol import GroupChange, parse
from reactor.sync.locks import make_locking
from reactor.tracing.hooks import NULL_TRACE


class World:
    def __init__(self, path, locking):
        self.posted = []
        self.locks = make_locking(locking)
        self.storage = Storage(str(path))
        self.sessions = Sessions()
        self.committer = Committer(self.locks, self.storage, self.sessions, self.posted.extend)
        self.chat = Chat(self.locks, self.storage, self.sessions, self.committer, auth="none")
        self.engine = Engine(self.chat, self.posted.extend, NULL_TRACE)  # batches run here

    def batch(self, conn, *lines):
        self.posted.clear()
        self.engine.run(conn, [parse(x) for x in lines])
        return list(self.posted)

    def disk_full(self, full: bool) -> None:
        pages = 1 if full else 1 << 30  # SQLite clamps 1 to the current size
        self.storage._db.execute(f"PRAGMA max_page_count = {pages}")


@pytest.fixture
def world(tmp_path, locking):
    w = World(tmp_path / "chat.db", locking)
    yield w
    w.storage.close()


def replies(actions):
    return [(a.event.cmd, getattr(a.event, "code", "ok")) for a in actions if isinstance(a, Emit)]


def test_batch_replies_in_order_then_done(world):
    alice = ConnState(1)
    out = world.batch(alice, "/login alice", "/ping", "/nosuch", "/whoami")
    assert replies(out) == [
        ("login", "ok"), ("ping", "ok"), ("nosuch", "unknown_command"), ("whoami", "ok"),
    ]  # fmt: skip
    assert isinstance(out[0], LoggedIn) and isinstance(out[-1], Done)


def test_batch_ok_only_after_commit_and_message_routed(world):
    alice, bob = ConnState(1), ConnState(2)
    world.batch(alice, "/login alice")
    world.batch(bob, "/login bob")
    out = world.batch(alice, "/send bob hi")
    deliver = [a for a in out if isinstance(a, Deliver)]
    assert deliver and deliver[0].conns == (2,)
    assert out.index(deliver[0]) < next(i for i, a in enumerate(out) if isinstance(a, Emit))
    assert world.storage.committed_max_id == deliver[0].message.id


def test_batch_write_lost_by_another_commands_failure_is_not_acknowledged(world):
    alice, bob = ConnState(1), ConnState(2)
    world.batch(alice, "/login alice")
    world.batch(bob, "/login bob")
    mine = Outbox(alice.conn_id, world.posted.extend)
    world.chat.run(alice, parse("/send bob first"), mine)
    # Another worker's write fails in the same open transaction: all of it
    # is rolled back, "first" included.
    world.disk_full(True)
    theirs = Outbox(bob.conn_id, world.posted.extend)
    world.chat.run(bob, parse("/send alice " + "x" * 100_000), theirs)
    assert replies(theirs.actions) == [("send", "internal")]
    world.disk_full(False)
    world.chat.run(alice, parse("/send bob second"), mine)
    mine.settle(world.committer.commit_through(mine.epochs))
    assert replies(mine.actions) == [("send", "internal"), ("send", "ok")]
    with world.locks.hold("storage"):
        me = world.storage.user("alice")
        stored = world.storage.private_history(me, world.storage.user("bob"), 10)
    assert [m.text for m in stored] == ["second"]


def test_batch_membership_news_goes_out_only_with_its_commit(world):
    alice, bob = ConnState(1), ConnState(2)
    world.batch(alice, "/login alice")
    world.batch(bob, "/login bob")
    out = world.batch(alice, "/group lab bob")
    told = [a for a in out if isinstance(a, Emit) and isinstance(a.event, GroupChange)]
    assert told == [Emit(2, GroupChange("lab", "alice", ("alice", "bob"), ("bob",)))]
    # The same command whose write is rolled back by another's failure tells nobody.
    mine = Outbox(alice.conn_id, world.posted.extend)
    world.batch(ConnState(3), "/login carol")
    world.chat.run(alice, parse("/group lab carol"), mine)
    world.disk_full(True)
    theirs = Outbox(bob.conn_id, world.posted.extend)
    world.chat.run(bob, parse("/send alice " + "x" * 100_000), theirs)
    world.disk_full(False)
    mine.settle(world.committer.commit_through(mine.epochs))
    assert replies(mine.actions) == [("group", "internal")]
    assert not any(isinstance(a.event, GroupChange) for a in mine.actions if isinstance(a, Emit))


def test_batch_storage_fault_answers_internal_and_recovers(world):
    alice, bob = ConnState(1), ConnState(2)
    world.batch(alice, "/login alice")
    world.batch(bob, "/login bob")
    big = "y" * 100_000
    world.disk_full(True)
    out = world.batch(alice, f"/send bob {big}", "/ping")
    assert replies(out) == [("send", "internal"), ("ping", "ok")]
    assert not any(isinstance(a, Deliver) for a in out)
    world.disk_full(False)
    out = world.batch(alice, f"/send bob {big}")
    assert replies(out) == [("send", "ok")]
    with world.locks.hold("storage"):
        me = world.storage.user("alice")
        stored = world.storage.private_history(me, world.storage.user("bob"), 10)
    assert len(stored) == 1


def test_batch_goes_on_after_a_failed_text_ack(world, monkeypatch):
    alice = ConnState(1)
    world.batch(alice, "/login alice")

    def locked(*args):
        raise sqlite3.OperationalError("injected: database is locked")

    monkeypatch.setattr(world.storage, "set_cursor", locked)
    world.posted.clear()
    world.engine.run(alice, [TextAck(1), parse("/ping after"), Disconnect(), parse("/whoami")])
    # The ack failed (logged); the commands around it still get their reply.
    assert replies(world.posted) == [("ping", "ok"), ("whoami", "ok")]
    assert isinstance(world.posted[-1], Done)


def test_outbox_after_commit_runs_only_for_a_committed_write(world):
    alice, bob = ConnState(1), ConnState(2)
    world.batch(alice, "/login alice")
    world.batch(bob, "/login bob")
    ran = []
    kept = Outbox(alice.conn_id, world.posted.extend)
    world.chat.run(alice, parse("/send bob kept"), kept)
    kept.after_commit(lambda: ran.append("kept"))
    assert ran == []  # not before the commit
    kept.settle(world.committer.commit_through(kept.epochs))
    assert ran == ["kept"]
    lost = Outbox(alice.conn_id, world.posted.extend)
    world.chat.run(alice, parse("/send bob lost"), lost)
    lost.after_commit(lambda: ran.append("lost"))
    world.disk_full(True)
    theirs = Outbox(bob.conn_id, world.posted.extend)
    world.chat.run(bob, parse("/send alice " + "x" * 100_000), theirs)
    world.disk_full(False)
    lost.settle(world.committer.commit_through(lost.epochs))
    assert ran == ["kept"]
    idle = Outbox(alice.conn_id, world.posted.extend)
    world.chat.run(alice, parse("/ping"), idle)
    idle.after_commit(lambda: ran.append("no write"))
    assert ran == ["kept", "no write"]  # nothing to wait for: at once
