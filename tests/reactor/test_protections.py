"""The protections of docs/protocol.md §8: every bad input gets a clear error,
nothing is lost, and the server keeps serving the others."""

from __future__ import annotations

import resource
import socket
import threading
import time

import pytest

from reactor.config import Config
from reactor.sync.instrument import LockInstrument
from reactor.sync.locks import STORAGE
from tests.support.chatclient import Client, account, fresh_name, in_process


def test_overlong_line_is_refused_and_the_connection_goes_on(server):
    c = server.client()
    reply = c.call("/ping " + "x" * 5000)
    assert (reply["cmd"], reply["code"]) == (None, "line_too_long")
    # In pieces, with no newline for a long while: one error, then normal.
    for _ in range(4):
        c.sock.sendall(b"y" * 3000)
    c.send(" tail of the same line")
    assert c.reply()["code"] == "line_too_long"
    assert c.ok("/ping after")["token"] == "after"


def test_line_of_exactly_the_limit_is_accepted(start_server):
    srv = start_server("--max-line", "64")
    c = srv.client()
    line = "/ping " + "a" * (64 - len("/ping ") - 1)  # 63 bytes + "\n" = 64
    assert c.ok(line)["token"] == "a" * 57
    assert c.call(line + "a")["code"] == "line_too_long"


def test_bad_utf8_gets_bad_encoding_and_nothing_else_is_lost(server):
    alice, bob = account(server), account(server)
    alice.sock.sendall(f"/send {bob.name} before\n".encode() + b"/send x \xff\xfe\n")
    alice.send(f"/send {bob.name} after")
    assert alice.reply()["type"] == "ok"
    bad = alice.reply()
    assert (bad["cmd"], bad["code"]) == (None, "bad_encoding")
    assert alice.reply()["type"] == "ok"
    assert [m["text"] for m in bob.messages(2)] == ["before", "after"]


def test_rate_limit_answers_rate_limited_in_order(start_server):
    srv = start_server("--rate-limit", "1", "--rate-burst", "3")
    c = Client(srv.addr, json_mode=False)
    c.sock.sendall(b"".join(b"/ping %d\n" % i for i in range(10)))
    lines = [c.readline() for _ in range(10)]
    assert lines[:3] == [f"System: pong {i}\n" for i in range(3)]
    limited = [x for x in lines if x.startswith("Error [rate_limited]")]
    assert len(limited) >= 6  # at most one token refills while they arrive


def test_login_timeout_says_bye_idle_and_closes(start_server):
    srv = start_server("--login-timeout", "0.3")
    c = srv.client()
    assert c.until_closed() == ['{"type":"bye","reason":"idle"}\n']
    # A connection that logged in in time is not touched.
    alice = account(srv)
    assert alice.ok("/ping still")["token"] == "still"


def test_login_timeout_holds_for_a_client_that_keeps_talking(start_server):
    srv = start_server("--login-timeout", "0.5", "--rate-limit", "0")
    c = srv.client(timeout=5)
    # Pings (no login) keep arriving past the deadline: still `bye idle`.
    lines = []
    while not lines or "bye" not in lines[-1]:
        c.send("/ping")
        lines.append(c.readline())
        assert len(lines) < 100_000, "never timed out"
    assert lines[-1] == '{"type":"bye","reason":"idle"}\n'


def test_server_survives_when_it_cannot_start_threads(start_server, model):
    # Address space for a few hundred 8 MiB thread stacks at most: the
    # threaded model runs out of threads long before 600 connections.
    srv = start_server("--auth", "none", memory_limit=1200 << 20)
    alice = srv.client()
    alice.ok("/login alice")
    held = []
    for _ in range(600):
        s = socket.create_connection(srv.addr, timeout=10)
        held.append(s)
    # Every connection got an answer: a welcome, or `server_full` when no
    # thread could be started for it; the server and alice carry on.
    firsts = [s.makefile("rb").readline() for s in held]
    assert all(f.startswith((b"System: Welcome", b"System: Goodbye (server_full)")) for f in firsts)
    if model == "threaded":
        assert b"System: Goodbye (server_full).\n" in firsts
    assert alice.ok("/ping still")["token"] == "still"
    for s in held:
        s.close()


def test_failed_logins_close_the_connection(start_server):
    srv = start_server("--max-login-failures", "3")
    name = fresh_name()
    c = srv.client()
    c.ok(f"/register {name} right")
    c.error(f"/login {name} wrong1", "auth_failed")
    c.error(f"/login {name} wrong2", "auth_failed")
    c.send(f"/login {name} wrong3")
    c.send("/ping never")
    lines = c.until_closed()
    assert len(lines) == 1 and '"code":"too_many_failures"' in lines[0]
    # The account is fine from a new connection.
    assert srv.client().ok(f"/login {name} right")["user"] == name


def test_slow_consumer_is_dropped_and_loses_nothing(start_server):
    srv = start_server("--max-outbuf", "65536", "--rate-limit", "0")
    alice = account(srv)
    bob_name = fresh_name()
    srv.client().ok(f"/register {bob_name} pw")
    bob = Client(srv.addr, rcvbuf=4096)
    bob.ok(f"/login {bob_name} pw")
    # Bob reads nothing while alice sends far more than all the buffers hold.
    text = "z" * 3000
    sent = []
    batch = 200
    while "slow consumer" not in srv.log_text():
        alice.sock.sendall(f"/send {bob_name} {text}\n".encode() * batch)
        sent += [alice.reply()["id"] for _ in range(batch)]
        assert len(sent) < 20000, "bob was never dropped"
    lines = bob.until_closed()
    assert lines[-1] == '{"type":"bye","reason":"slow_consumer"}\n'
    # Everything is stored: a new login replays all bob did not ack.
    again = Client(srv.addr)
    assert again.ok(f"/login {bob_name} pw")["unread"] == len(sent)
    assert [m["id"] for m in again.messages(len(sent))] == sent


def test_slow_reader_is_dropped_when_bytes_are_queued(start_server):
    # One burst, far more than the kernel's buffers hold, then nothing more:
    # no later write ever finds the socket writable, so the limit must hold
    # when the bytes are queued.
    limit, n = 65536, 4000
    srv = start_server("--max-outbuf", str(limit), "--rate-limit", "0")
    alice = account(srv)
    bob_name = fresh_name()
    srv.client().ok(f"/register {bob_name} pw")
    bob = Client(srv.addr, rcvbuf=4096)
    bob.ok(f"/login {bob_name} pw")
    text = "q" * 3000
    alice.sock.sendall(f"/send {bob_name} {text}\n".encode() * n)
    ids = [alice.reply()["id"] for _ in range(n)]
    conns = alice.ok("/stats")["connections"]
    assert conns["slow_consumers"] == 1
    assert conns["queued_bytes"] <= limit + 2 * len(text)
    assert bob.until_closed()[-1] == '{"type":"bye","reason":"slow_consumer"}\n'
    again = Client(srv.addr)
    assert again.ok(f"/login {bob_name} pw")["unread"] == n
    assert [m["id"] for m in again.messages(n)] == ids  # in order, once each


def read_all(addr) -> bytes:
    """Everything a new connection receives until the server closes it."""
    with socket.create_connection(addr, timeout=10) as s:
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data


def test_max_clients_refuses_with_bye_server_full(start_server):
    srv = start_server("--max-clients", "3")
    held = [srv.client() for _ in range(3)]
    assert read_all(srv.addr) == b"System: Goodbye (server_full).\n"
    held[0].ok("/exit")
    held[0].until_closed()
    # The slot is free once the server has seen that close; no event tells
    # the client when that is, so try again (each try is one round trip).
    for _ in range(100):
        with socket.create_connection(srv.addr, timeout=10) as s:
            first = s.makefile("rb").readline()
        if first != b"System: Goodbye (server_full).\n":
            break
    assert first.startswith(b"System: Welcome")


@pytest.mark.slow
def test_two_thousand_idle_connections_do_not_slow_the_server(start_server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4500
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"fd hard limit {hard} is below {need}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    try:
        srv = start_server()
        idle = []
        for _ in range(2000):
            s = socket.create_connection(srv.addr)
            idle.append(s)
        c = srv.client(timeout=1.0)  # answers within a second, or fails
        alice = account(srv)
        assert c.ok("/ping busy")["token"] == "busy"
        assert alice.ok("/users")["users"]
        for s in idle:
            s.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_slow_consumer_in_text_mode_loses_nothing(start_server):
    srv = start_server("--max-outbuf", "20000", "--rate-limit", "0")
    alice = account(srv)
    bob_name = fresh_name()
    srv.client().ok(f"/register {bob_name} pw")
    bob = Client(srv.addr, json_mode=False, rcvbuf=4096)
    bob.send(f"/login {bob_name} pw")
    assert "Logged in" in bob.readline()
    text = "q" * 2000
    sent = []
    while "slow consumer" not in srv.log_text():
        alice.sock.sendall(f"/send {bob_name} {text}\n".encode() * 100)
        sent += [alice.reply()["id"] for _ in range(100)]
        assert len(sent) < 20000, "bob was never dropped"
    written = sum(1 for line in bob.until_closed() if line.startswith(f"[{alice.name}]"))
    # The server notes what reached the socket before it logs bob out (both
    # are work items of that connection, in order): wait for the logout.
    for _ in range(200):
        users = {u["name"]: u["online"] for u in alice.ok("/users")["users"]}
        if not users[bob_name]:
            break
    # Every message written whole counts as seen (the line cut by the drop
    # included); everything else is replayed; nothing twice.
    again = Client(srv.addr)
    unread = again.ok(f"/login {bob_name} pw")["unread"]
    assert unread == len(sent) - written
    replayed = [m["id"] for m in again.messages(unread)]
    assert replayed == sent[written:]


def test_big_reply_to_a_reading_client_is_not_a_slow_consumer(start_server):
    srv = start_server("--max-outbuf", "65536", "--rate-limit", "0")
    alice, bob = account(srv), account(srv)
    for _ in range(100):
        alice.send(f"/send {bob.name} {'h' * 3000}")
    for _ in range(100):
        alice.reply()
    history = bob.ok(f"/history {alice.name} 100")["messages"]  # ~300 KB in one reply
    assert len(history) == 100
    assert bob.ok("/ping alive")["token"] == "alive"


def test_login_timeout_waits_for_a_login_already_running(start_server):
    srv = start_server("--login-timeout", "0.2", "--max-login-failures", "50")
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    c = srv.client()
    # One batch that takes longer than the timeout (each failed login costs
    # one scrypt hash) and ends logged in: the timer must not cut it off.
    c.sock.sendall((f"/login {name} no\n" * 12 + f"/login {name} pw\n").encode())
    replies = [c.reply() for _ in range(13)]
    assert [r["type"] for r in replies] == ["error"] * 12 + ["ok"]
    assert c.ok("/ping still-here")["token"] == "still-here"


def test_out_of_file_descriptors_pauses_accepts_and_keeps_serving(start_server):
    srv = start_server(fd_limit=40)
    alice = account(srv)
    extra = [socket.create_connection(srv.addr) for _ in range(60)]  # > 40 fds
    srv.wait_for_log("pausing accepts")
    # The open connections are still served...
    assert alice.ok("/ping still")["token"] == "still"
    # ...and once descriptors are free again, new connections get in.
    for s in extra:
        s.close()
    late = srv.client()
    assert late.ok("/ping in")["token"] == "in"
    assert srv.log_text().count("pausing accepts") <= 3  # logged once a second


def test_control_characters_never_reach_a_text_mode_terminal(server):
    alice = account(server)
    bob_name = fresh_name()
    server.client().ok(f"/register {bob_name} pw")
    bob = Client(server.addr, json_mode=False)
    bob.send(f"/login {bob_name} pw")
    assert "Logged in" in bob.readline()
    watcher = account(server)  # reads the same text in json mode, unchanged
    texts = ["has\x00nul", "\x1b[2J\x1b[H\x1b]0;pwned-title\x07", "a\rb", "c1 \x9b31m \x85 \x9f"]
    for text in texts:
        alice.ok(f"/send {bob_name} {text}".encode())
        alice.ok(f"/send {watcher.name} {text}".encode())
    raw = b"".join(bob.file.readline() for _ in texts)
    assert raw.count(b"\n") == len(texts)
    assert not [b for b in raw.replace(b"\n", b"") if b < 0x20 or b == 0x7F]
    assert not any(0x80 <= ord(c) < 0xA0 for c in raw.decode())
    assert b"has^@nul" in raw and b"^[[2J^[[H^[]0;pwned-title^G" in raw and b"a^Mb" in raw
    assert [m["text"] for m in watcher.messages(len(texts))] == texts


class Waits(LockInstrument):
    """Counts threads that block on a lock, for a test to wait on."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def waiting(self, lock, t0: int) -> None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    def until(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.count >= n, 10), self.count


@pytest.mark.parametrize("io_model", ["reactor", "threaded"])
def test_password_lane_full_answers_busy_and_chat_goes_on(tmp_path, io_model):
    waits = Waits()
    config = Config(port=0, db=str(tmp_path / "chat.db"), model=io_model, login_lane=2,
                    rate_limit=0, watchdog=0)  # fmt: skip
    with in_process(config, instruments=[waits]) as server:
        addr = server.address
        alice = Client(addr)
        alice.ok("/register alice pw")
        alice.ok("/login alice pw")
        # The login's reply is posted before its batch ends (and frees its
        # lane slot): wait for the lane to be idle, so both slots are free.
        lane = server._engine.lane
        deadline = time.monotonic() + 10
        while lane.statistics().busy and time.monotonic() < deadline:
            time.sleep(0.001)
        assert not lane.statistics().busy
        hashing = [Client(addr) for _ in range(2)]
        with server.locks.hold(STORAGE):  # the lane's two logins block on it
            for c in hashing:
                c.send("/login alice wrong")
            waits.until(2)
            late = Client(addr)
            assert late.error("/login alice pw", "busy")["message"].startswith("server busy")
            assert late.error("/register zed pw", "busy")
            assert alice.ok("/ping still")["token"] == "still"  # chat never waits on the lane
        assert [c.reply()["code"] for c in hashing] == ["auth_failed", "auth_failed"]
        assert late.ok("/login alice pw")["user"] == "alice"  # a slot is free again


def test_per_address_limit_on_connections_not_logged_in(start_server):
    srv = start_server("--limit-exempt", "none", "--max-unauthenticated", "3")
    waiting = [srv.client() for _ in range(3)]
    assert read_all(srv.addr) == b"System: Goodbye (server_full).\n"
    waiting[0].ok(f"/register {fresh_name()} pw")  # registering is not logging in
    assert read_all(srv.addr) == b"System: Goodbye (server_full).\n"
    name = fresh_name()
    waiting[1].ok(f"/register {name} pw")
    waiting[1].ok(f"/login {name} pw")  # one fewer not logged in
    assert srv.client().ok("/ping in")["token"] == "in"


def test_per_address_login_rate_is_shared_by_every_connection(start_server):
    srv = start_server("--limit-exempt", "none", "--login-rate", "0.01", "--rate-limit", "0",
                       "--max-unauthenticated", "0")  # fmt: skip
    conns = [srv.client() for _ in range(4)]
    for c in conns:
        for _ in range(10):
            c.send("/register bad!name pw")  # refused before any hashing: cheap
    codes = [c.reply()["code"] for c in conns for _ in range(10)]
    assert codes.count("bad_name") == 30  # the burst, then the address must wait
    assert codes.count("rate_limited") == 10
    assert conns[0].ok("/ping still-served")


def test_loopback_is_exempt_from_per_address_limits_by_default(start_server):
    srv = start_server("--max-unauthenticated", "2", "--login-rate", "0.01")
    held = [srv.client() for _ in range(5)]
    for c in held:
        for _ in range(10):
            c.error("/register bad!name pw", "bad_name")
