"""The benchmark's reference relay (benchmarks/relay.py) over real sockets.

The relay runs as `python -m benchmarks.relay` in a subprocess; the tests
talk to it with the blocking `harness.Client`, as they do to the real server.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator

import pytest

from harness import Client, ServerProcess
from tests.support.chatclient import fresh_name


class RelayProcess(ServerProcess):
    """`python -m benchmarks.relay` on an OS-chosen loopback port."""

    def __init__(self) -> None:
        argv = [sys.executable, "-m", "benchmarks.relay", "--port", "0"]
        super().__init__(argv=argv, name="the relay")

    def login(self, name: str | None = None) -> Client:
        """A new json-mode client logged in as `name` (a fresh one by default)."""
        c = self.client()
        c.name = c.ok(f"/login {name or fresh_name('r')}")["user"]
        return c


@contextlib.contextmanager
def running_relay() -> Iterator[RelayProcess]:
    """A relay for the block; killed at its end if a test left it running."""
    relay = RelayProcess().start()
    try:
        yield relay
    finally:
        if relay.proc.poll() is None:
            relay.kill()


@pytest.fixture(scope="module")
def relay() -> Iterator[RelayProcess]:
    with running_relay() as r:
        yield r
        assert r.stop() == 0, r.log_text()
        assert "Traceback" not in r.log_text(), r.log_text()


def test_relay_private_message_delivered_with_increasing_ids(relay):
    alice, bob = relay.login(), relay.login()
    ids = [alice.ok(f"/send {bob.name} hello {i}")["id"] for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    got = bob.messages(3)
    assert [m["id"] for m in got] == ids
    assert [m["text"] for m in got] == ["hello 0", "hello 1", "hello 2"]
    assert all(m["from"] == alice.name and m["to"] == bob.name for m in got)
    assert all(m["group"] is None and isinstance(m["ts"], float) for m in got)
    assert alice.inbox == []  # a private message goes to the recipient only
    assert bob.ok(f"/ack {ids[-1]}")["id"] == ids[-1]


def test_relay_login_claims_and_register_takes_names(relay):
    name = fresh_name("r")
    c = relay.client()
    assert c.ok(f"/register {name} pw")["user"] == name
    c.error(f"/register {name.upper()} pw", "name_taken")
    c.error("/register bad!name pw", "bad_name")
    login = c.ok(f"/login {name.upper()} whatever")
    assert login == {"type": "ok", "cmd": "login", "user": name, "groups": [], "unread": 0}
    c.error(f"/login {name}", "already_logged_in")
    assert c.ok("/whoami")["user"] == name
    users = c.ok("/users")["users"]
    assert {"name": name, "online": True} in users


def test_relay_group_fanout_reaches_every_member_with_the_same_bytes(relay):
    a, b, c = relay.login(), relay.login(), relay.login()
    group = fresh_name("g")
    reply = a.ok(f"/group {group} {b.name} {c.name}")
    assert sorted(reply["members"]) == sorted([a.name, b.name, c.name])
    msg_id = a.ok(f"/sendgroup {group} hi all")["id"]
    lines = [member.readline() for member in (a, b, c)]  # the sender included
    assert lines[0] == lines[1] == lines[2]
    event = json.loads(lines[0])
    assert event["type"] == "message" and event["id"] == msg_id
    assert (event["from"], event["to"], event["group"], event["text"]) == (
        a.name, None, group, "hi all",
    )  # fmt: skip
    assert b.ok("/groups")["groups"] == [{"name": group, "members": reply["members"]}]
    outsider = relay.login()
    outsider.error(f"/sendgroup {group} let me in", "not_member")
    outsider.error(f"/group {group} {outsider.name}", "not_member")
    outsider.error(f"/sendgroup {fresh_name('g')} anyone", "unknown_group")


def test_relay_group_message_rendered_per_mode(relay):
    a, b = relay.login(), relay.login()
    group = fresh_name("g")
    a.ok(f"/group {group} {b.name}")
    b.send("/mode text")
    assert b.readline() == "System: Output mode is text.\n"  # the reply is in text already
    a.ok(f"/sendgroup {group} plain")
    assert b.readline() == f"[#{group} {a.name}]: plain\n"
    assert a.event()["text"] == "plain"


def test_relay_second_login_replaces_the_first(relay):
    name = fresh_name("r")
    first = relay.login(name)
    second = relay.login(name)
    assert [json.loads(line) for line in first.until_closed()] == [
        {"type": "bye", "reason": "replaced"}
    ]
    sender = relay.login()
    msg_id = sender.ok(f"/send {name} to the new one")["id"]
    assert second.event()["id"] == msg_id


def test_relay_unknown_command_and_bad_args(relay):
    c = relay.client()
    assert c.error("/nope", "unknown_command")["cmd"] == "nope"
    assert c.error("hello", "unknown_command")["cmd"] is None
    assert c.error("/mode xml", "bad_args")["cmd"] == "mode"
    assert c.error("/ping a b", "bad_args")["cmd"] == "ping"
    c.error("/login", "bad_args")
    for missing in ("/history someone", "/leave g", "/stats"):
        reply = c.error(missing, "unknown_command")
        assert "does not implement" in reply["message"]
    assert c.error(b"x" * 5000, "line_too_long")["cmd"] is None
    c.error(b"/ping \xff", "bad_encoding")
    assert c.ok("/ping still-open")["token"] == "still-open"


def test_relay_commands_need_login(relay):
    c = relay.client()
    for line in ("/send bob hi", "/sendgroup g hi", "/group g", "/ack 1", "/users", "/whoami"):
        assert c.error(line, "not_logged_in")["cmd"] == line.split()[0][1:]
    c.ok("/ping")
    c.ok(f"/login {fresh_name('r')}")
    c.error(f"/send {fresh_name('nobody')} hi", "unknown_user")


def test_relay_exit_answers_ok_then_bye(relay):
    c = relay.client()
    c.send("/exit")
    c.send("/ping never-run")
    lines = [json.loads(line) for line in c.until_closed()]
    assert lines == [{"type": "ok", "cmd": "exit"}, {"type": "bye", "reason": "exit"}]


def test_relay_pipelined_sends_answered_in_order(relay):
    sender, receiver = relay.login(), relay.login()
    n = 5000
    blob = "".join(f"/send {receiver.name} m{i}\n" for i in range(n)).encode()
    # Written from a thread while this one reads, so neither side's socket
    # buffer can fill up and stall the other.
    writer = threading.Thread(target=sender.sock.sendall, args=(blob,))
    writer.start()
    replies = [sender.reply() for _ in range(n)]
    writer.join(10)
    assert all(r["type"] == "ok" and r["cmd"] == "send" for r in replies)
    ids = [r["id"] for r in replies]
    assert ids == sorted(ids) and len(set(ids)) == n
    got = receiver.messages(n)
    assert [m["id"] for m in got] == ids
    assert [m["text"] for m in got] == [f"m{i}" for i in range(n)]


def test_relay_sigterm_says_bye_and_exits_0():
    with running_relay() as relay:
        c = relay.login()
        relay.proc.send_signal(signal.SIGTERM)
        assert [json.loads(line) for line in c.until_closed()] == [
            {"type": "bye", "reason": "shutdown"}
        ]
        assert relay.stop() == 0, relay.log_text()
        assert any("SIGTERM received" in line for line in relay.log)


def test_relay_line_limit_counts_the_terminator(relay):
    c = relay.client()
    token = "t" * (4096 - len("/ping \n"))  # exactly 4096 bytes with its "\n"
    assert c.ok(f"/ping {token}")["token"] == token
    c.error(f"/ping {token}x", "line_too_long")
    assert c.ok("/ping after")["token"] == "after"


def test_relay_drops_a_slow_consumer(relay):
    sender = relay.login()
    stuck = relay.client(rcvbuf=4096)
    stuck.name = stuck.ok(f"/login {fresh_name('r')}")["user"]
    text = "x" * 3000
    n = 4000  # 12 MB: past the kernel's socket buffers and the relay's 1 MiB
    blob = "".join(f"/send {stuck.name} {text}\n" for _ in range(n)).encode()
    writer = threading.Thread(target=sender.sock.sendall, args=(blob,))
    writer.start()
    replies = [sender.reply() for _ in range(n)]
    writer.join(10)
    assert all(r["type"] == "ok" for r in replies)
    lines = stuck.until_closed()
    assert json.loads(lines[-1]) == {"type": "bye", "reason": "slow_consumer"}
    assert 0 < len(lines) - 1 < n
    users = sender.ok("/users")["users"]
    assert {"name": stuck.name, "online": False} in users
