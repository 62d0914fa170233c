"""`chat-client` start-up as a new user meets it: every way the first
connection or the account can be wrong ends in one line saying what to do,
an exit status, and no traceback. (A plain client against a TLS server:
tests/reactor/test_tls.py; prompts in a real terminal: test_client_tmux.py.)"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading

import pytest

from client import cli
from client.connection import Account, Connection
from tests.support.chatclient import ROOT, ServerProcess, fresh_name


def chat_client(*args: str, tmp_path, password: str | None = "pw") -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    if password is not None:
        env["CHAT_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def one_line(out: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture
def srv(tmp_path):
    server = ServerProcess(tmp_path / "chat.db", "--rate-limit", "0").start()
    yield server
    server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening_says_start_the_server_or_check_the_port(tmp_path):
    out = chat_client("--port", str(free_port()), "--user", "alice", tmp_path=tmp_path)
    assert out.returncode == 1
    assert "nothing is listening on 127.0.0.1:" in one_line(out)


def test_not_a_chat_server_is_named(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer_like_http() -> None:
            peer, _ = listener.accept()
            peer.recv(1024)
            peer.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            peer.close()

        threading.Thread(target=answer_like_http, daemon=True).start()
        port = listener.getsockname()[1]
        out = chat_client("--port", str(port), "--user", "alice", tmp_path=tmp_path)
    assert out.returncode == 1
    assert "closed the connection without answering" in one_line(out)


def test_a_server_that_never_answers_is_given_up_on(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "START_SECONDS", 0.3)
    with socket.socket() as listener:  # accepts (the backlog) and never says a word
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        conn = Connection("127.0.0.1", listener.getsockname()[1], Account("alice", "pw"))
        args = cli.build_parser().parse_args(["--port", str(listener.getsockname()[1])])
        assert asyncio.run(cli._run(conn, args, tmp_path)) == 1
    assert "gave no answer in 0.3 s: is it a chat server?" in capsys.readouterr().err


def test_a_bad_name_says_so_not_the_register_usage(srv, tmp_path):
    out = chat_client("--port", str(srv.addr[1]), "--user", "bad name", tmp_path=tmp_path)
    assert out.returncode == 2
    assert "'bad name' is not a valid name" in one_line(out)


def test_an_unknown_user_is_pointed_to_register(srv, tmp_path):
    name = fresh_name()
    out = chat_client("--port", str(srv.addr[1]), "--user", name, tmp_path=tmp_path)
    assert out.returncode == 1
    line = one_line(out)
    assert "auth_failed" in line and "add --register" in line


def test_a_password_with_a_space_is_refused_before_connecting(tmp_path):
    out = chat_client("--port", str(free_port()), "--user", "alice", tmp_path=tmp_path,
                      password="two words")  # fmt: skip
    assert out.returncode == 2
    assert "one word" in one_line(out)


def test_auto_switch_is_an_option_of_the_full_screen_client():
    args = cli.build_parser().parse_args(["--tui", "--auto-switch"])
    assert args.tui and args.auto_switch
    assert not cli.build_parser().parse_args([]).auto_switch
    assert "Alt+S" in cli.build_parser().format_help()
