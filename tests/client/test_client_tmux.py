"""The real `chat-client` in a real terminal (tmux): completion menu, and a
message typed in one client appearing on another's screen."""

from __future__ import annotations

import os
import shutil
import sys
import time

import pytest

from tests.support.chatclient import ServerProcess, account, fresh_name
from tests.support.terminal import Tmux

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"
)


@pytest.fixture
def srv(tmp_path):
    server = ServerProcess(tmp_path / "chat.db", "--rate-limit", "0").start()
    yield server
    server.stop()


def test_tmux_repl_completes_and_chats(srv, tmp_path):
    bob = account(srv)
    alice = fresh_name()
    srv.client().ok(f"/register {alice} pw")
    # tmux answers cursor-position requests, so PROMPT_TOOLKIT_NO_CPR is not
    # set: without CPR prompt_toolkit draws no toolbar and no completion menu.
    env = {"CHAT_PASSWORD": "pw", "TERM": "xterm-256color",
           "XDG_STATE_HOME": str(tmp_path / "state")}  # fmt: skip
    cmd = [sys.executable, "-m", "client.cli", "--port", str(srv.addr[1]), "--user", alice]
    term = Tmux(f"chat-{os.getpid()}-{alice}", cmd, env)
    try:
        term.wait_for("connected")  # the toolbar
        term.keys("/se", "Tab")
        screen = term.wait_for("/sendgroup")
        assert "/send " in screen  # both in the completion menu
        term.keys("C-u")
        term.keys(f"/send {bob.name} hi from a real terminal", "Enter")
        assert bob.event("message")["text"] == "hi from a real terminal"
        bob.ok(f"/send {alice} hello back")
        term.wait_for(f"[{bob.name}]: hello back")
        term.keys(f"/query {bob.name}", "Enter")
        term.wait_for(f"[{bob.name}]>")  # the prompt names the conversation
        term.keys("plain line", "Enter")
        assert bob.event("message")["text"] == "plain line"
        term.keys("/exit", "Enter")
        deadline = time.monotonic() + 10
        while term.screen() and time.monotonic() < deadline:
            time.sleep(0.05)  # the session ends when the client exits
        users = {u["name"]: u["online"] for u in bob.ok("/users")["users"]}
        assert users[alice] is False
    finally:
        term.close()


def client_then_status(port: int, *args: str) -> list[str]:
    """`chat-client` then its exit status on the screen, the pane kept open."""
    cmd = [sys.executable, "-m", "client.cli", "--port", str(port), *args]
    return [*cmd, ";", "echo", "EXIT=$?", ";", "sleep", "60"]


def test_tmux_register_asks_the_password_twice(srv, tmp_path):
    name = fresh_name()
    env = {"TERM": "xterm-256color", "XDG_STATE_HOME": str(tmp_path / "state")}
    term = Tmux(f"chat-{os.getpid()}-{name}", client_then_status(srv.addr[1], "--user", name,
                                                                "--register"), env)  # fmt: skip
    try:
        term.wait_for("Password:")
        term.keys("first", "Enter")
        term.wait_for("Password again:")
        term.keys("second", "Enter")
        screen = term.wait_for("EXIT=")
        assert "the two passwords differ; nothing was registered" in screen
        assert "EXIT=2" in screen and "Traceback" not in screen
    finally:
        term.close()
    assert name not in {u["name"] for u in account(srv).ok("/users")["users"]}


@pytest.mark.parametrize("key", ["C-c", "C-d"])
def test_tmux_ctrl_c_or_d_at_the_password_prompt_ends_quietly(srv, tmp_path, key):
    env = {"TERM": "xterm-256color", "XDG_STATE_HOME": str(tmp_path / "state")}
    name = fresh_name()
    term = Tmux(f"chat-{os.getpid()}-{name}", client_then_status(srv.addr[1], "--user", name),
                env)  # fmt: skip
    try:
        term.wait_for("Password:")
        term.keys(key)
        screen = term.wait_for("EXIT=")
        assert "EXIT=130" in screen
        assert "Traceback" not in screen and "Error" not in screen
    finally:
        term.close()
