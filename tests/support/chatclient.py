"""Test helpers: a real server in a subprocess, a blocking line client, and
a `chat-demo` run.

No mocks: `ServerProcess` runs `python -m reactor` on a free loopback port
with a temporary database; `Client` talks to it over a real TCP socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

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
def in_process(config):
    """A real server run in this process, so a test can reach inside it (hold
    one of its locks, break its storage) while talking to it over sockets."""
    from reactor.server import Server

    server = Server(config)
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


class ServerProcess:
    """`python -m reactor` with `args`, listening on an OS-chosen port."""

    def __init__(
        self,
        db: Path,
        *args: str,
        fd_limit: int | None = None,
        port: int = 0,
        memory_limit: int | None = None,
    ) -> None:
        self.db = db
        self.fd_limit = fd_limit
        self.memory_limit = memory_limit  # bytes of address space (RLIMIT_AS)
        self.args = ["--port", str(port), "--db", str(db), *args]
        self.proc: subprocess.Popen | None = None
        self.log: list[str] = []
        self._logged = threading.Condition()
        self.addr: tuple[str, int] | None = None

    def start(self) -> ServerProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        limit, memory = self.fd_limit, self.memory_limit

        def lower_limits() -> None:  # runs in the child, before exec
            if limit:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
            if memory:
                resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reactor", *self.args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=lower_limits if limit or memory else None,
        )
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"listening on ([\d.]+):(\d+)", line)
            if m:
                self.addr = (m.group(1), int(m.group(2)))
                break
        else:
            raise RuntimeError("server did not start:\n" + "".join(self.log))
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()
        return self

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            with self._logged:
                self.log.append(line)
                self._logged.notify_all()

    def wait_for_log(self, text: str, timeout: float = 10.0) -> None:
        """Block until the server has logged a line containing `text`."""
        with self._logged:
            found = self._logged.wait_for(lambda: text in "".join(self.log), timeout)
        assert found, f"server never logged {text!r}"

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout)
        self._drain.join(timeout)
        return code

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.wait()

    def log_text(self) -> str:
        return "".join(self.log)

    def client(self, **kw) -> Client:
        return Client(self.addr, **kw)


class Client:
    """A blocking client. In json mode `call()` returns the reply to a
    command and keeps unasked events (messages...) in `inbox`, in order."""

    def __init__(self, addr, json_mode: bool = True, timeout: float = 10.0, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.file = self.sock.makefile("rb")
        self.inbox: list[dict] = []
        self.welcome = self.readline()
        if json_mode:
            assert self.call("/mode json")["mode"] == "json"

    # --- raw lines ----------------------------------------------------------

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        self.sock.sendall(data + b"\n")

    def readline(self) -> str:
        line = self.file.readline()
        if not line:
            raise EOFError("server closed the connection")
        return line.decode()

    def read(self) -> dict:
        return json.loads(self.readline())

    # --- json mode -------------------------------------------------------------

    def reply(self) -> dict:
        while True:
            event = self.read()
            if event["type"] in ("ok", "error"):
                return event
            self.inbox.append(event)

    def call(self, line: str | bytes) -> dict:
        self.send(line)
        return self.reply()

    def ok(self, line: str) -> dict:
        reply = self.call(line)
        assert reply["type"] == "ok", reply
        return reply

    def error(self, line: str | bytes, code: str) -> dict:
        reply = self.call(line)
        assert reply["type"] == "error" and reply["code"] == code, reply
        return reply

    def event(self, kind: str = "message") -> dict:
        """The next unasked event of `kind` (from the inbox first)."""
        for i, e in enumerate(self.inbox):
            if e["type"] == kind:
                return self.inbox.pop(i)
        while True:
            e = self.read()
            if e["type"] == kind:
                return e
            self.inbox.append(e)

    def messages(self, n: int) -> list[dict]:
        return [self.event("message") for _ in range(n)]

    def until_closed(self) -> list[str]:
        """Every line until the server closes the connection (then close too)."""
        lines = []
        try:
            while True:
                lines.append(self.readline())
        except EOFError:
            self.close()
            return lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()


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
