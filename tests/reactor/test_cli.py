"""`chat-server` options, start-up errors and graceful shutdown on signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.support.chatclient import ROOT, account, fresh_name


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reactor", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_help_explains_every_option():
    out = run_cli("--help")
    assert out.returncode == 0
    for option in ["--ip", "--port", "--db", "--loglevel", "--max-line", "--max-outbuf",
                   "--rate-limit", "--rate-burst", "--login-timeout", "--max-login-failures",
                   "--max-clients", "--workers", "--locking", "--trace", "--trace-sample",
                   "--auth", "--lockdep", "--watchdog", "--trace-io", "inverted", "--model",
                   "threaded"]:  # fmt: skip
        assert option in out.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--workers", "0"], "must be above 0"),
        (["--locking", "sometimes"], "invalid choice"),
        (["--rate-limit", "-1"], "must be 0 or more"),
        (["--port", "x"], "invalid"),
        (["--trace-sample", "0"], "must be above 0 and at most 1"),
        (["--trace-sample", "1.5"], "must be above 0 and at most 1"),
        (["--watchdog", "-2"], "must be 0 or more"),
        (["--model", "fibers"], "invalid choice"),
        (
            ["--model", "threaded", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
            "--model threaded does not serve TLS",
        ),
    ],
)
def test_bad_option_values_are_refused_with_a_reason(args, words):
    out = run_cli(*args)
    assert out.returncode == 2
    assert words in out.stderr


def test_port_in_use_fails_with_a_clear_error(server, tmp_path):
    out = run_cli("--port", str(server.addr[1]), "--db", str(tmp_path / "x.db"))
    assert out.returncode == 1
    assert "cannot start" in out.stderr and "Traceback" not in out.stderr


def test_a_second_server_on_the_same_database_refuses_naming_the_first(start_server, tmp_path):
    first = start_server()
    out = run_cli("--port", "0", "--db", str(first.db))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"in use by process {first.proc.pid}" in out.stderr, out.stderr
    alice = account(first)  # the first is untouched
    assert alice.ok("/whoami")["user"] == alice.name


def test_the_database_is_free_again_once_its_server_is_killed(start_server, tmp_path):
    first = start_server()
    first.proc.kill()
    first.proc.wait()
    second = start_server(db=first.db)  # no stale lock after kill -9
    assert account(second).ok("/whoami")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_answers_in_flight_says_bye_and_exits_0(start_server, signum):
    srv = start_server("--rate-limit", "0")
    alice, bob = account(srv), account(srv)
    stranger = srv.client()
    alice.sock.sendall(f"/send {bob.name} last words\n".encode() * 20)
    srv.signal(signum)
    # Every command already sent is answered, then bye; nothing after it.
    lines = alice.until_closed()
    assert len(lines) == 21 and all('"cmd":"send"' in x for x in lines[:20])
    assert lines[-1] == '{"type":"bye","reason":"shutdown"}\n'
    assert stranger.until_closed()[-1] == '{"type":"bye","reason":"shutdown"}\n'
    assert srv.wait() == 0
    # Bob (json mode) acked nothing: all 20 are replayed after a restart.
    again = start_server(db=srv.db)
    assert again.client().ok(f"/login {bob.name} pw")["unread"] == 20


def test_shutdown_waits_for_slow_commands_in_flight(start_server):
    srv = start_server("--rate-limit", "0")
    c = srv.client()
    names = [fresh_name() for _ in range(25)]
    # ~25 x 33 ms of scrypt: still running when the signal comes.
    c.sock.sendall("".join(f"/register {n} pw\n" for n in names).encode())
    assert c.reply()["user"] == names[0]
    srv.signal(signal.SIGTERM)
    lines = c.until_closed()
    assert [json.loads(x).get("user") for x in lines[:-1]] == names[1:]
    assert lines[-1] == '{"type":"bye","reason":"shutdown"}\n'
    assert srv.wait() == 0


def test_auth_none_lets_login_claim_a_name(start_server):
    srv = start_server("--auth", "none")
    c = srv.client()
    assert c.ok("/login Teacher")["user"] == "Teacher"
    other = srv.client()
    assert other.ok("/login teacher")["user"] == "Teacher"  # replaces the first
    other.error("/login x", "already_logged_in")
    srv.client().error("/login bad!name", "bad_name")
