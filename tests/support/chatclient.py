"""Test-only helpers on top of the harness (harness/server.py starts a real
server in a subprocess, harness/client.py talks to it over a real socket):
fresh names, a logged-in account, a server in this process, a `chat-demo`
run, and waiting on an asyncio client's state.

No mocks: every helper talks to a real server over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import threading
from pathlib import Path

from harness import Client, ServerProcess

# Client and ServerProcess live in harness/; they are named here too so that
# a test file needs one import line for the server, its client and these helpers.
__all__ = [
    "ROOT", "Client", "ServerProcess", "account", "fresh_name", "in_process", "run_demo", "until",
]  # fmt: skip

_names = itertools.count(1)
ROOT = Path(__file__).resolve().parents[2]


async def until(predicate, timeout: float = 10.0) -> None:
    """Let the event loop run until `predicate()` holds. For asyncio clients,
    whose state changes on this loop: checking between its steps misses
    nothing, and the timeout bounds the wait."""

    async def wait():
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


@contextlib.contextmanager
def in_process(config, **kw):
    """A real server run in this process, so a test can reach inside it (hold
    one of its locks, break its storage, watch its locks with `instruments=`)
    while talking to it over sockets. `kw` go to `reactor.server.Server`."""
    from reactor.server import Server

    server = Server(config, **kw)
    server.start()
    thread = threading.Thread(target=server.serve, name="reactor")
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(20)
    assert not thread.is_alive(), "the server did not shut down"


def fresh_name(prefix: str = "u") -> str:
    """A user or group name no other test of this run uses."""
    return f"{prefix}{os.getpid() % 10000}_{next(_names)}"


def account(server: ServerProcess, name: str | None = None, password: str = "pw") -> Client:
    """A new registered user, logged in, in json mode."""
    name = name or fresh_name()
    c = server.client()
    c.ok(f"/register {name} {password}")
    login = c.ok(f"/login {name} {password}")
    c.name = login["user"]
    return c


def run_demo(name: str, out: Path, capsys) -> tuple[dict, list[str]]:
    """`chat-demo <name> -o out --quick`, checked to exit 0 and print three
    lines and where it wrote; returns its summary.json and the three lines."""
    from classroom import cli

    assert cli.main([name, "-o", str(out), "--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[-1].startswith("written to")  # three lines, then where
    return json.loads((out / "summary.json").read_text()), lines[:3]
