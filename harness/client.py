"""A blocking line client of the chat server, for tests, the benchmark's
scripts and the classroom's scripted runs.

Owns: one TCP connection (optionally TLS, optionally with a small receive
buffer or segment size set before connecting), its welcome line, switching
it to json mode, sending lines and reading them back one at a time, telling
replies (`ok` / `error`) from the unasked events that arrive in between
(kept in `inbox`, in order), and reading until the server closes.
Must not: import the server or anything outside the standard library, run a
thread or an event loop (every read blocks, bounded by `timeout`), or decide
what a test expects beyond "this reply is ok" / "this is that error".

    with Client(("127.0.0.1", port)) as alice:
        alice.ok("/login alice pw")
        reply = alice.call("/send bob hi")      # the reply; events go to alice.inbox
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import Any

__all__ = ["Client", "UnexpectedReply"]

#: The replies to a command; every other json line is an unasked event.
REPLY_TYPES = ("ok", "error")


class UnexpectedReply(AssertionError):
    """The server answered a command otherwise than the caller required
    (`Client.ok`, `Client.error`, the switch to json mode): the server's
    answer or the caller's expectation is wrong, the connection is fine."""


class Client:
    """A blocking client on one connection to `addr`.

    In json mode (the default) `call()` returns the reply to a command and
    keeps unasked events (messages, notices...) in `inbox`, in arrival
    order; in text mode use `send`, `readline` and `until_closed`.

    Args:
        addr: (host, port) of the server.
        json_mode: send `/mode json` after the welcome line.
        timeout: seconds any one connect, send or read may block
            (socket.timeout, an OSError, when it passes).
        rcvbuf: SO_RCVBUF, set before connecting so the window the
            connection advertises stays that small.
        mss: TCP_MAXSEG, set before connecting.
        tls: wrap the connection in this context's TLS, checking the
            certificate against `server_hostname`.
        server_hostname: the name the server's certificate must carry.

    Raises OSError when the connection cannot be made (ssl.SSLError for a
    failed handshake), EOFError if the server closes before its welcome
    line, UnexpectedReply if it refuses json mode.
    """

    def __init__(
        self,
        addr: tuple[str, int],
        json_mode: bool = True,
        timeout: float = 10.0,
        rcvbuf: int | None = None,
        *,
        mss: int | None = None,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if mss:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
            sock.settimeout(timeout)
            sock.connect(addr)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=server_hostname)
        except BaseException:
            sock.close()
            raise
        self.sock: socket.socket = sock
        self.file = sock.makefile("rb")
        self.inbox: list[dict[str, Any]] = []  # unasked events, oldest first
        self.name = ""  # the user this connection logged in as, when a caller records it
        self.welcome = self.readline()
        if json_mode:
            reply = self.call("/mode json")
            if reply.get("mode") != "json":
                raise UnexpectedReply(f"/mode json answered {reply}")

    # --- lines ------------------------------------------------------------------------

    def send(self, *lines: str | bytes) -> None:
        """Send each of `lines` with a newline after it, all in one write."""
        data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
        self.sock.sendall(data)

    def readline(self) -> str:
        """The next line, newline included. Raises EOFError once the server has closed."""
        line = self.file.readline()
        if not line:
            raise EOFError("the server closed the connection")
        return line.decode()

    def read(self) -> dict[str, Any]:
        """The next line as JSON, whatever its type (nothing goes to `inbox`)."""
        event: dict[str, Any] = json.loads(self.readline())
        return event

    def until_closed(self) -> list[str]:
        """Every line until the server closes the connection; then close too."""
        lines = []
        try:
            while True:
                lines.append(self.readline())
        except EOFError:
            self.close()
            return lines

    # --- json mode --------------------------------------------------------------------

    def reply(self) -> dict[str, Any]:
        """The next reply (`ok` or `error`); the events before it go to `inbox`."""
        while True:
            event = self.read()
            if event.get("type") in REPLY_TYPES:
                return event
            self.inbox.append(event)

    def call(self, line: str | bytes) -> dict[str, Any]:
        """Send one command line and return its reply."""
        self.send(line)
        return self.reply()

    def ok(self, line: str | bytes) -> dict[str, Any]:
        """`call(line)`, which must be answered ok; raises UnexpectedReply if not.

        A `busy` answer (PROTOCOL.md §7: the password lane is full) is asked
        again, as a client should, after a pause that doubles up to 0.5 s,
        until the connection's `timeout` has passed."""
        reply = self.call(line)
        pause, deadline = 0.01, time.monotonic() + (self.sock.gettimeout() or 10.0)
        while reply.get("code") == "busy" and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
            reply = self.call(line)
        if reply["type"] != "ok":
            raise UnexpectedReply(f"{line!r} answered {reply}")
        return reply

    def error(self, line: str | bytes, code: str) -> dict[str, Any]:
        """`call(line)`, which must be answered the error `code`; raises
        UnexpectedReply if not."""
        reply = self.call(line)
        if reply["type"] != "error" or reply.get("code") != code:
            raise UnexpectedReply(f"{line!r} answered {reply}, not error {code}")
        return reply

    def event(self, kind: str = "message") -> dict[str, Any]:
        """The next unasked event of type `kind`: the oldest in `inbox`, or
        the next to arrive (the others on the way go to `inbox`)."""
        for i, e in enumerate(self.inbox):
            if e.get("type") == kind:
                return self.inbox.pop(i)
        while True:
            e = self.read()
            if e.get("type") == kind:
                return e
            self.inbox.append(e)

    def messages(self, n: int) -> list[dict[str, Any]]:
        """The next `n` messages (see `event`)."""
        return [self.event("message") for _ in range(n)]

    # --- the end ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (again is a no-op)."""
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
