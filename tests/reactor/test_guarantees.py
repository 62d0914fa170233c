"""The guarantees of docs/protocol.md §6, over real sockets, under both lockings.

Concurrent tests start their threads on a barrier and assert recorded
orders; none sleeps to wait for a race."""

from __future__ import annotations

import signal
import threading

from tests.support.chatclient import account, fresh_name

SENDERS = 4
PER_SENDER = 40


def run_together(fns):
    """Run each function in its own thread, released at once by a barrier."""
    barrier = threading.Barrier(len(fns))
    errors = []

    def wrap(fn):
        try:
            barrier.wait()
            fn()
        except BaseException as exc:  # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_order_each_senders_messages_arrive_in_sent_order(server):
    bob = account(server)
    senders = [account(server) for _ in range(SENDERS)]
    acked: dict[str, list[int]] = {s.name: [] for s in senders}

    def blast(s):
        def go():
            for i in range(PER_SENDER):
                acked[s.name].append(s.ok(f"/send {bob.name} {s.name} {i}")["id"])

        return go

    run_together([blast(s) for s in senders])
    got = bob.messages(SENDERS * PER_SENDER)
    ids = [m["id"] for m in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for s in senders:
        mine = [m for m in got if m["from"] == s.name]
        assert [m["text"] for m in mine] == [f"{s.name} {i}" for i in range(PER_SENDER)]
        assert [m["id"] for m in mine] == acked[s.name]


def test_order_every_member_sees_one_group_order(server):
    members = [account(server) for _ in range(SENDERS)]
    g = fresh_name("g")
    members[0].ok(f"/group {g} " + " ".join(m.name for m in members[1:]))

    def blast(m):
        def go():
            for i in range(PER_SENDER):
                m.send(f"/sendgroup {g} {m.name} {i}")
            for _ in range(PER_SENDER):
                assert m.reply()["type"] == "ok"

        return go

    run_together([blast(m) for m in members])
    streams = [[e["id"] for e in m.messages(SENDERS * PER_SENDER)] for m in members]
    assert all(s == streams[0] for s in streams)
    assert streams[0] == sorted(streams[0])
    history = members[1].ok(f"/history {g} 500")["messages"]
    assert [m["id"] for m in history] == streams[0]


def test_delivery_offline_messages_replay_on_login_oldest_first(server):
    alice = account(server)
    bob_name = fresh_name()
    server.client().ok(f"/register {bob_name} pw")
    g = fresh_name("g")
    alice.ok(f"/group {g} {bob_name}")
    ids = [alice.ok(f"/send {bob_name} p{i}")["id"] for i in range(3)]
    ids.append(alice.ok(f"/sendgroup {g} to the group")["id"])
    bob = server.client()
    bob.send(f"/login {bob_name} pw")
    login = bob.read()  # the reply comes first, then the replay, before anything newer
    assert login["cmd"] == "login" and login["unread"] == 4 and login["groups"] == [g]
    later = alice.ok(f"/send {bob_name} live")["id"]
    got = [bob.read() for _ in range(5)]
    assert [m["id"] for m in got] == [*ids, later]


def test_delivery_acked_messages_are_not_replayed(server):
    alice = account(server)
    bob_name = fresh_name()
    server.client().ok(f"/register {bob_name} pw")
    ids = [alice.ok(f"/send {bob_name} m{i}")["id"] for i in range(3)]
    bob = server.client()
    assert bob.ok(f"/login {bob_name} pw")["unread"] == 3
    assert [m["id"] for m in bob.messages(3)] == ids
    bob.ok(f"/ack {ids[1]}")  # cumulative: the first two are seen
    bob.close()
    again = server.client()
    assert again.ok(f"/login {bob_name} pw")["unread"] == 1
    assert again.event("message")["id"] == ids[2]
    again.ok(f"/ack {ids[0]}")  # acking lower never moves the cursor back
    again.close()
    assert server.client().ok(f"/login {bob_name} pw")["unread"] == 1


def test_delivery_text_mode_counts_written_messages_as_seen(server):
    alice = account(server)
    bob_name = fresh_name()
    server.client().ok(f"/register {bob_name} pw")
    for i in range(2):
        alice.ok(f"/send {bob_name} t{i}")
    bob = server.client(json_mode=False)
    bob.send(f"/login {bob_name} pw")
    assert "Unread: 2." in bob.readline()
    assert bob.readline() == f"[{alice.name}]: t0\n"
    assert bob.readline() == f"[{alice.name}]: t1\n"
    bob.send("/ping done")  # queued after the server noted the write
    assert bob.readline() == "System: pong done\n"
    bob.close()
    assert server.client().ok(f"/login {bob_name} pw")["unread"] == 0


def test_privacy_only_members_and_parties_see_conversations(server):
    alice, bob, eve = account(server), account(server), account(server)
    g = fresh_name("g")
    alice.ok(f"/group {g} {bob.name}")
    alice.ok(f"/sendgroup {g} secret plan")
    alice.ok(f"/send {bob.name} just us")
    eve.error(f"/history {g}", "not_member")
    assert eve.ok(f"/history {alice.name}")["messages"] == []
    assert [x["name"] for x in eve.ok("/groups")["groups"]] == []
    eve.ok("/ping sync")
    assert [e for e in eve.inbox if e["type"] == "message"] == []
    # A member who joins later sees the whole history, but is not pushed
    # (or replayed) what was said before it joined.
    carol = account(server)
    bob.ok(f"/group {g} {carol.name}")
    assert [m["text"] for m in carol.ok(f"/history {g}")["messages"]] == ["secret plan"]
    carol.ok("/ping sync")
    assert [e for e in carol.inbox if e["type"] == "message"] == []


def test_one_session_second_login_replaces_the_first(server):
    name = fresh_name()
    first = account(server, name)
    second = server.client()
    second.ok(f"/login {name} pw")
    assert first.until_closed() == ['{"type":"bye","reason":"replaced"}\n']
    alice = account(server)
    sent = alice.ok(f"/send {name} to the new session")["id"]
    assert second.event("message")["id"] == sent
    users = {u["name"]: u["online"] for u in alice.ok("/users")["users"]}
    assert users[name] is True


def test_durability_acknowledged_messages_survive_kill_9(start_server):
    srv = start_server("--rate-limit", "0")
    alice = account(srv)
    bob_name = fresh_name()
    srv.client().ok(f"/register {bob_name} pw")
    g = fresh_name("g")
    alice.ok(f"/group {g} {bob_name}")
    for i in range(50):
        alice.send(f"/send {bob_name} m{i}")
        alice.send(f"/sendgroup {g} g{i}")
    ids = [alice.reply()["id"] for _ in range(100)]
    srv.proc.send_signal(signal.SIGKILL)
    srv.wait()
    again = start_server("--rate-limit", "0", db=srv.db)
    bob = again.client()
    assert bob.ok(f"/login {bob_name} pw")["unread"] == 100
    assert [m["id"] for m in bob.messages(100)] == ids
    assert len(bob.ok(f"/history {g}")["messages"]) == 50
