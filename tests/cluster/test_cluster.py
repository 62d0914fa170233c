"""Several nodes on one real PostgreSQL and one real Redis: chat across
nodes, the watermark, one group order for everyone, and the faults (kill -9
of a node, Redis connections killed, PostgreSQL unreachable)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

from harness import Client
from harness.ircclient import IrcClient
from tests.support.chatclient import account, fresh_name
from tests.support.cluster import (
    ORDER_KEY,
    REDIS,
    Proxy,
    kill_redis_clients,
    pg_address,
    url_of,
)


def wait_until(predicate, timeout: float = 10.0, what: str = "the condition") -> None:
    """Poll `predicate` (a state in another process: nothing to wait on)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_cluster_chat_group_history_and_offline_delivery_across_nodes(cluster):
    a, b = cluster.node("a"), cluster.node("b")
    alice, bob = account(a), account(b)
    sent = alice.ok(f"/send {bob.name} hello from a")["id"]
    assert bob.event()["id"] == sent
    g = fresh_name("g")
    alice.ok(f"/group {g} {bob.name}")
    assert bob.event("group")["added"] == [bob.name]
    ids = [alice.ok(f"/sendgroup {g} one")["id"], bob.ok(f"/sendgroup {g} two")["id"]]
    assert [m["id"] for m in alice.messages(2)] == ids == [m["id"] for m in bob.messages(2)]
    assert [m["text"] for m in bob.ok(f"/history {g}")["messages"]] == ["one", "two"]
    bob.ok("/exit")
    off = alice.ok(f"/send {bob.name} while you were away")["id"]
    again = b.client()
    assert again.ok(f"/login {bob.name} pw")["unread"] >= 1
    assert off in [again.event()["id"] for _ in range(4)]


def test_cluster_second_login_on_another_node_replaces_the_first(cluster):
    a, b = cluster.node("a"), cluster.node("b")
    first = account(a)
    second = b.client()
    second.ok(f"/login {first.name} pw")
    assert first.event("bye") == {"type": "bye", "reason": "replaced"}
    users = {u["name"]: u["online"] for u in second.ok("/users")["users"]}
    assert users[first.name] is True


def test_cluster_users_shows_who_is_online_on_any_node(cluster):
    a, b = cluster.node("a"), cluster.node("b")
    on_a, on_b = account(a), account(b)
    for c in (on_a, on_b):
        users = {u["name"]: u["online"] for u in c.ok("/users")["users"]}
        assert users[on_a.name] and users[on_b.name]
    on_b.ok("/exit")
    users = {u["name"]: u["online"] for u in on_a.ok("/users")["users"]}
    assert users[on_b.name] is False


def test_cluster_watermark_never_lets_an_ack_skip_a_later_commit(cluster):
    """Another writer holds the order lock and commits id N without telling
    the bus; a node's own send meanwhile can only be numbered after it, and
    the node pushes N before its own N+1. So acking N+1 skips nothing."""
    import psycopg

    a = cluster.node("a")
    sender, reader = account(a), account(a)
    (reader_id,) = cluster.sql("SELECT id FROM users WHERE key = %s", (reader.name.lower(),))[0]
    other = psycopg.connect(cluster.url, autocommit=True)
    other.execute("BEGIN")
    other.execute("SELECT pg_advisory_xact_lock(%s)", (ORDER_KEY,))
    (n,) = other.execute("SELECT nextval('message_ids')").fetchone()
    other.execute(
        "INSERT INTO messages (id, sender, sender_id, to_user, to_name, text, ts, recipients)"
        " VALUES (%s, 'ghost', 0, %s, %s, 'committed elsewhere', %s, %s)",
        (n, reader_id, reader.name, time.time(), [reader.name.lower()]),
    )
    replies: list[dict] = []
    asked = threading.Event()

    def send() -> None:
        sender.send(f"/send {reader.name} mine")
        asked.set()
        replies.append(sender.reply())

    t = threading.Thread(target=send)
    t.start()
    asked.wait(5)
    waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    wait_until(lambda: cluster.sql(waiting)[0][0] == 1, what="the node to wait for the lock")
    assert replies == []  # it waits to number its message: no ok without it
    other.execute("COMMIT")  # no notification: the node must find it itself
    t.join(10)
    other.close()
    assert replies[0]["id"] == n + 1
    first, second = reader.messages(2)
    assert (first["id"], first["text"]) == (n, "committed elsewhere")
    assert second["id"] == n + 1
    reader.ok(f"/ack {n + 1}")
    reader.ok("/exit")
    again = a.client()
    assert again.ok(f"/login {reader.name} pw")["unread"] == 0


def test_cluster_every_member_on_every_node_sees_one_group_order(cluster):
    """Senders on both nodes start together at a barrier, 50 rounds; every
    member's stream, on either node, is the same and in id order."""
    a, b = cluster.node("a"), cluster.node("b")
    nodes = [a, b]
    senders = [account(nodes[i % 2]) for i in range(4)]
    members = [account(nodes[i % 2]) for i in range(4)]
    g = fresh_name("g")
    senders[0].ok(f"/group {g} " + " ".join(c.name for c in senders[1:] + members))
    for c in senders[1:] + members:
        c.event("group")
    for rnd in range(50):
        start = threading.Barrier(len(senders))

        def burst(c: Client, rnd: int = rnd, start: threading.Barrier = start) -> None:
            start.wait()
            for i in range(3):
                c.send(f"/sendgroup {g} r{rnd}-{i}")
            for _ in range(3):
                assert c.reply()["type"] == "ok"

        threads = [threading.Thread(target=burst, args=(c,)) for c in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        total = 3 * len(senders)
        streams = [[m["id"] for m in c.messages(total)] for c in members]
        assert streams[0] == sorted(streams[0]), f"round {rnd}: not in id order"
        assert all(s == streams[0] for s in streams), f"round {rnd}: streams differ"
        for c in senders:  # their own copies
            assert [m["id"] for m in c.messages(total)] == streams[0]


def _receiver(node_of, name: str, seen: list[int], stop: threading.Event) -> None:
    """Read `name`'s messages, acking each, reconnecting to the next node
    when the connection drops (a client that dedupes by id keeps `seen`)."""
    while not stop.is_set():
        try:
            c = node_of().client(timeout=2)
            c.ok(f"/login {name} pw")
            while not stop.is_set():
                try:
                    m = c.event()
                except TimeoutError:
                    break  # quiet for a while: log in again, as a client may
                seen.append(m["id"])
                c.send(f"/ack {m['id']}")
        except (OSError, EOFError):
            continue


def test_cluster_kill_9_of_a_node_loses_no_acknowledged_message(cluster):
    a, b = cluster.node("a"), cluster.node("b")
    alive = [a, b]
    sender_a, sender_b = account(a), account(b)
    target = account(b)
    target.ok("/exit")
    seen: list[int] = []
    stop = threading.Event()
    turn = iter(range(10**6))
    # The receiver starts on a, the node that will be killed.
    reader = threading.Thread(
        target=_receiver, args=(lambda: alive[next(turn) % len(alive)], target.name, seen, stop)
    )
    reader.start()
    acked: list[int] = []
    for i in range(200):
        for c in (sender_a, sender_b) if alive[0] is a else (sender_b,):
            try:
                r = c.call(f"/send {target.name} m{i}")
            except (OSError, EOFError):
                continue
            if r["type"] == "ok":
                acked.append(r["id"])
        if i == 80:
            a.kill()
            alive.remove(a)
    wait_until(lambda: set(acked) <= set(seen), 20, "every acknowledged message")
    stop.set()
    reader.join(10)
    assert len(acked) > 200
    assert set(acked) <= set(seen)  # dedupe by id: each acknowledged one arrived
    cluster.nodes.pop("a")  # killed on purpose: its log may end mid-line


def test_cluster_redis_connections_killed_under_load_lose_nothing(cluster):
    a, b = cluster.node("a"), cluster.node("b")
    alice, bob = account(a), account(b)
    ids = []
    for i in range(150):
        ids.append(alice.ok(f"/send {bob.name} m{i}")["id"])
        if i in (30, 90):
            assert kill_redis_clients("reactor-chat:") >= 2  # both listeners, at least
    got = [m["id"] for m in bob.messages(len(ids))]
    assert got == ids  # every one, once, in order, though the bus went twice
    wait_until(lambda: bob.ok("/stats")["cluster"]["bus_reconnects"] >= 1, what="a reconnect")
    stats = bob.ok("/stats")
    assert stats["node"] == "b"
    assert stats["cluster"]["bus_connected"] is True
    after = alice.ok(f"/send {bob.name} after")["id"]
    assert bob.event()["id"] == after


def test_cluster_postgresql_unreachable_answers_internal_and_recovers(cluster):
    proxy = Proxy(pg_address())
    head = cluster.url.rpartition("@")[0]
    via_proxy = f"{head}@127.0.0.1:{proxy.port}/{cluster.db}"
    a = cluster.node("a", store=via_proxy)
    b = cluster.node("b")
    alice, bob = account(a), account(b)
    alice.ok(f"/send {bob.name} before")
    bob.event()
    proxy.cut()
    for i in range(3):
        r = alice.call(f"/send {bob.name} during {i}")
        assert (r["type"], r["code"]) == ("error", "internal"), r
    proxy.restore()
    wait_until(lambda: alice.call(f"/send {bob.name} after")["type"] == "ok", 15, "PostgreSQL back")
    texts = [m["text"] for m in bob.ok(f"/history {alice.name}")["messages"]]
    assert "before" in texts and "after" in texts
    assert not any(t.startswith("during") for t in texts)  # no ok, nothing stored
    assert bob.event()["text"] == "after"
    proxy.close()
    a_log = a.log_text()
    cluster.nodes.pop("a").stop()
    assert "Traceback" not in a_log, a_log


def test_cluster_order_lock_is_counted_in_stats_and_traced(cluster, tmp_path):
    trace, trace_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a = cluster.node("a", "--trace", str(trace))
    b = cluster.node("b", "--trace", str(trace_b))
    alice, bob = account(a), account(b)
    for i in range(5):
        alice.ok(f"/send {bob.name} {i}")
        bob.ok(f"/send {alice.name} {i}")
    stats = alice.ok("/stats")
    order = [lk for lk in stats["locks"] if lk["name"] == "cluster:order"]
    assert order and order[0]["class"] == "cluster" and order[0]["acquisitions"] >= 5
    assert any(c["class"] == "cluster" for c in stats["classes"])
    assert a.stop() == 0
    lines = [json.loads(x) for x in trace.read_text().splitlines()]
    assert lines[0]["node"] == "a"
    kinds = {e["ev"] for e in lines[1:] if e.get("lock") == "cluster:order"}
    assert {"lock_wait", "lock_acquired", "lock_released"} <= kinds
    assert b.stop() == 0
    from visualizer import cli as viz

    assert viz.main(["compare", str(trace), str(trace_b), "-o", str(tmp_path / "cmp")]) == 0
    page = (tmp_path / "cmp" / "index.html").read_text()
    assert "node a" in page and "node b" in page and "cluster:order" in page


def _server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactor", "--port", "0", *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_cluster_bad_settings_are_refused_in_one_line(cluster):
    no_bus = _server("--store", cluster.url)
    assert no_bus.returncode == 2 and "--bus" in no_bus.stderr
    bus_alone = _server("--bus", REDIS)
    assert bus_alone.returncode == 2 and "go together" in bus_alone.stderr
    no_pg = _server(
        "--store", url_of("nope", "postgresql://postgres@127.0.0.1:1/x"), "--bus", REDIS
    )
    assert no_pg.returncode == 1 and "cannot start" in no_pg.stderr
    assert "Traceback" not in no_pg.stderr
    cluster.node("a")
    twice = _server("--store", cluster.url, "--bus", REDIS, "--node", "a")
    assert twice.returncode == 1 and "named 'a' is running" in twice.stderr
    assert "Traceback" not in twice.stderr


def test_cluster_readme_commands_start_two_nodes_that_chat_in_text_mode(cluster):
    """The README's Cluster section, run as written but for the database
    name (the test's own) and the ports (free ones)."""
    from tests.support.chatclient import ROOT, ServerProcess

    section = (ROOT / "README.md").read_text().split("## Cluster\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    starts = [line.rstrip(" &") for line in block.splitlines() if "chat-server" in line]
    assert len(starts) == 2
    nodes = []
    for line in starts:
        argv = line.replace(".venv/bin/chat-server", f"{sys.executable} -m reactor").split()
        argv[argv.index("--port") + 1] = "0"
        argv[argv.index("--store") + 1] = cluster.url
        node = ServerProcess(argv=argv, name=argv[-1]).start()
        cluster.nodes[argv[-1]] = node
        nodes.append(node)
    alice = Client(nodes[0].addr, json_mode=False)
    bob = Client(nodes[1].addr, json_mode=False)
    alice.send("/register alice pw", "/login alice pw")
    bob.send("/register bob pw", "/login bob pw")
    assert "bob" in bob.readline() and "bob" in bob.readline()
    alice.readline(), alice.readline()
    alice.send("/send bob hi")
    assert "hi" in bob.readline()


def irc_port(node) -> int:
    found = re.search(r"IRC listening on [\d.]+:(\d+)", node.wait_for_log("IRC listening on"))
    assert found
    return int(found.group(1))


def test_cluster_irc_on_one_node_chats_with_native_users_on_another(cluster):
    a = cluster.node("a", "--irc-port", "0")
    b = cluster.node("b", "--irc-port", "0")
    bob, name = account(b), fresh_name()
    b.client().ok(f"/register {name} pw")
    with IrcClient((a.addr[0], irc_port(a))) as irc:
        irc.register(name, "pw")
        g = fresh_name("g")
        irc.send(f"JOIN #{g}")
        irc.until("366")
        assert bob.ok(f"/join {g}")["members"] == sorted([name, bob.name])
        joined = irc.until("JOIN")[-1]
        assert (joined.source.split("!")[0], joined.params) == (bob.name, (f"#{g}",))
        irc.send(f"PRIVMSG #{g} :from irc on node a")
        sent = bob.messages(1)[0]
        assert (sent["from"], sent["group"], sent["text"]) == (name, g, "from irc on node a")
        reply = bob.ok(f"/sendgroup {g} from native on node b")["id"]
        got = irc.until("PRIVMSG")[-1]
        assert got.params == (f"#{g}", "from native on node b")
        assert reply > sent["id"]
        carol = fresh_name()
        b.client().ok(f"/register {carol} pw")
        with IrcClient((b.addr[0], irc_port(b))) as other:  # a NOTICE stays one across nodes
            other.register(carol, "pw")
            irc.send(f"NOTICE {carol} :a notice from node a")
            got = other.until("NOTICE")[-1]
            assert got.source.startswith(f"{name}!") and got.text == "a notice from node a"


def test_cluster_a_schema_2_database_gains_the_notice_column_and_keeps_its_messages(cluster):
    a = cluster.node("a")
    alice, bob = account(a), account(a)
    sent = alice.ok(f"/send {bob.name} from schema 2")["id"]
    bob.ok("/exit")
    assert a.stop() == 0
    cluster.sql("ALTER TABLE messages DROP COLUMN notice")
    cluster.sql("UPDATE schema_version SET version = 2")
    b = cluster.node("b")
    again = b.client()
    assert again.ok(f"/login {bob.name} pw")["unread"] == 1 and again.event()["id"] == sent
    assert cluster.sql("SELECT version FROM schema_version") == [(3,)]
    assert cluster.sql("SELECT notice FROM messages") == [(False,)]
