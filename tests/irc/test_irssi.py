"""A real IRC client end to end: irssi in a real terminal (tmux) logs in,
joins a group and chats with a native client, both ways."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.irc.test_irc import irc_addr, native, start
from tests.support.chatclient import fresh_name
from tests.support.terminal import Tmux

pytestmark = pytest.mark.skipif(
    shutil.which("irssi") is None or shutil.which("tmux") is None,
    reason="irssi or tmux is not installed (.ci/run installs them)",
)


def test_irssi_joins_a_group_and_chats_with_a_native_client(tmp_path):
    srv = start(tmp_path)
    alice = fresh_name("a")
    srv.client().ok(f"/register {alice} pw")
    home = tmp_path / "irssi"
    home.mkdir()
    _, port = irc_addr(srv)
    cmd = ["irssi", f"--home={home}", "-c", "127.0.0.1", "-p", str(port), "-n", alice, "-w", "pw"]
    term = Tmux(f"irssi-{os.getpid()}-{alice}", cmd, {"TERM": "xterm-256color"})
    try:
        term.wait_for(f"Welcome to the reactor-chat IRC network, {alice}")
        g = fresh_name("g")
        term.keys(f"/join #{g}", "Enter")
        term.wait_for(f"has joined #{g}")
        bob = native(srv, fresh_name("b"))
        assert alice in bob.ok(f"/join {g}")["members"]
        term.wait_for(f"{bob.name} [{bob.name}@reactor-chat] has joined #{g}")
        term.keys("hello from irssi", "Enter")
        message = bob.event("message")
        assert (message["from"], message["group"], message["text"]) == (
            alice,
            g,
            "hello from irssi",
        )
        bob.ok(f"/sendgroup {g} hello from the native client")
        term.wait_for(f"< {bob.name}> hello from the native client")
        users = {u["name"]: u["online"] for u in bob.ok("/users")["users"]}
        assert users[alice] is True
    finally:
        term.close()
        srv.stop()
