"""Fault injection: the database fails (disk full, locked by another
process), a handler raises an unexpected exception, SIGTERM under load.
Senders get `internal`, never an `ok` for an unstored message; the server
keeps serving and recovers when the fault goes."""

from __future__ import annotations

import signal
import sqlite3
import threading

import pytest

from reactor.config import Config
from reactor.sync.locks import STORAGE
from tests.support.chatclient import Client, account, fresh_name, in_process


@pytest.fixture
def inproc(tmp_path, locking, model):
    """A real server in this process (so a test can break its storage),
    talked to over real sockets."""
    config = Config(port=0, db=str(tmp_path / "chat.db"), locking=locking, rate_limit=0,
                    max_line=1 << 20, model=model)  # fmt: skip
    with in_process(config) as server:
        yield server


def pair(server):
    alice, bob = Client(server.address), Client(server.address)
    for c in (alice, bob):
        c.name = fresh_name()
        c.ok(f"/register {c.name} pw")
        c.ok(f"/login {c.name} pw")
    return alice, bob


def test_fault_disk_full_answers_internal_serves_reads_and_recovers(inproc):
    alice, bob = pair(inproc)
    first = alice.ok(f"/send {bob.name} before the fault")["id"]
    with inproc.locks.hold(STORAGE):
        inproc.storage._db.execute("PRAGMA max_page_count = 1")  # clamps to the current size
    big = "x" * 200_000
    for _ in range(3):
        alice.error(f"/send {bob.name} {big}", "internal")
    # Reads still work, and show only what was stored.
    history = alice.ok(f"/history {bob.name}")["messages"]
    assert [m["id"] for m in history] == [first]
    assert {u["name"] for u in bob.ok("/users")["users"]} >= {alice.name, bob.name}
    with inproc.locks.hold(STORAGE):
        inproc.storage._db.execute("PRAGMA max_page_count = 1073741823")
    after = alice.ok(f"/send {bob.name} {big}")["id"]
    assert [m["id"] for m in bob.messages(2)] == [first, after]  # nothing unstored pushed


def test_fault_database_locked_by_another_process(inproc):
    alice, bob = pair(inproc)
    other = sqlite3.connect(inproc.config.db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock: SQLITE_BUSY for the server
    try:
        alice.error(f"/send {bob.name} while locked", "internal")
        assert alice.ok("/whoami")["user"] == alice.name
        assert alice.ok(f"/history {bob.name}")["messages"] == []  # WAL readers still read
    finally:
        other.execute("ROLLBACK")
        other.close()
    sent = alice.ok(f"/send {bob.name} after the lock")["id"]
    assert bob.event("message")["id"] == sent
    assert bob.inbox == []


def test_fault_text_ack_failure_loses_no_reply_and_no_message(inproc, monkeypatch):
    alice, _ = pair(inproc)
    bob_name = fresh_name()
    bob = Client(inproc.address, json_mode=False)
    for line in (f"/register {bob_name} pw", f"/login {bob_name} pw"):
        bob.send(line)
        bob.readline()
    failed = threading.Event()
    real = inproc.storage.set_cursor

    def flaky(*args):
        if not failed.is_set():
            failed.set()
            raise sqlite3.OperationalError("injected: database is locked")
        return real(*args)

    monkeypatch.setattr(inproc.storage, "set_cursor", flaky)
    alice.ok(f"/send {bob_name} first")
    assert bob.readline() == f"[{alice.name}]: first\n"
    assert failed.wait(10)  # its text ack (written to the socket) failed
    for i in range(3):
        bob.send(f"/ping p{i}")  # queued with later acks: each still answered
        alice.ok(f"/send {bob_name} m{i}")
    lines = [bob.readline() for _ in range(6)]
    assert sorted(lines) == sorted(
        [f"System: pong p{i}\n" for i in range(3)] + [f"[{alice.name}]: m{i}\n" for i in range(3)]
    )


def test_fault_handler_exception_answers_internal_and_releases_locks(inproc, monkeypatch):
    alice, bob = pair(inproc)

    def broken():
        raise RuntimeError("injected fault")

    monkeypatch.setattr(inproc.storage, "user_names", broken)
    for _ in range(inproc.config.workers + 1):  # every worker meets it once at least
        alice.error("/users", "internal")
    # No lock was left held: each can be taken (another thread may hold one
    # for a moment: a login posts its reply just before it lets go).
    for lock in inproc.locks.locks():
        assert lock.acquire(timeout=5), f"{lock.name} was left held"
        lock.release()
    monkeypatch.undo()
    assert len(alice.ok("/users")["users"]) >= 2
    sent = alice.ok(f"/send {bob.name} still working")["id"]
    assert bob.event("message")["id"] == sent


def test_fault_sigterm_under_heavy_load_loses_nothing_acknowledged(start_server):
    srv = start_server("--rate-limit", "0")
    senders = [account(srv) for _ in range(4)]
    bob = account(srv)
    for s in senders:
        s.sock.sendall(f"/send {bob.name} load\n".encode() * 400)
    srv.signal(signal.SIGTERM)
    acked = []
    for s in senders:
        for line in s.until_closed():
            if '"cmd":"send"' in line and '"type":"ok"' in line:
                acked.append(int(line.split('"id":')[1].rstrip("}\n")))
    assert srv.wait(20) == 0  # graceful, within the bound
    assert acked, "the load never got going before the signal"
    # Bob never acked (json mode): everything stored for him is replayed,
    # and that is exactly what the senders were told was stored.
    again = start_server("--rate-limit", "0", db=srv.db)
    c = again.client()
    unread = c.ok(f"/login {bob.name} pw")["unread"]
    assert sorted(m["id"] for m in c.messages(unread)) == sorted(acked)
