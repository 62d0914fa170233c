"""A blocking IRC client for tests: raw lines over a real socket.

`IrcClient(addr)` connects; `send` writes lines (CRLF added), `line`
reads one parsed line, `until(command)` reads up to the first line with
that command (or numeric) and returns every line read, `register` does the
registration and returns the burst up to the end of the unread replay (a
PING sent after it is answered after it, IRC.md §5).
"""

from __future__ import annotations

import base64
import socket
import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """One line from the server: `command` (or a numeric), its parameters."""

    raw: str
    tags: str
    source: str
    command: str
    params: tuple[str, ...]

    @property
    def text(self) -> str:
        """The last parameter (the trailing text)."""
        return self.params[-1] if self.params else ""


def parse(raw: str) -> Line:
    """Split one line (without CRLF) into its parts."""
    rest, tags, source = raw, "", ""
    if rest.startswith("@"):
        tags, _, rest = rest[1:].partition(" ")
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
    head, sep, trailing = rest.partition(" :")
    words = head.split()
    params = tuple(words[1:]) + ((trailing,) if sep else ())
    return Line(raw, tags, source, words[0] if words else "", params)


class IrcClient:
    """One IRC connection; every read blocks at most `timeout` seconds."""

    def __init__(
        self,
        addr: tuple[str, int],
        timeout: float = 10.0,
        rcvbuf: int | None = None,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # before connecting, so the advertised window stays small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(addr)
        self.sock = sock if tls is None else tls.wrap_socket(sock, server_hostname=server_hostname)
        self.file = self.sock.makefile("rb")
        self.nick = ""

    def send(self, *lines: str | bytes) -> None:
        """Send each line with CRLF after it, all in one write."""
        data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\r\n" for x in lines)
        self.sock.sendall(data)

    def line(self) -> Line:
        """The next line. Raises EOFError once the server has closed."""
        raw = self.file.readline()
        if not raw:
            raise EOFError("the server closed the connection")
        assert raw.endswith(b"\r\n"), raw
        return parse(raw[:-2].decode())

    def until(self, command: str) -> list[Line]:
        """Lines up to and including the first whose command is `command`."""
        lines = []
        while True:
            got = self.line()
            lines.append(got)
            if got.command == command:
                return lines

    def sync(self, token: str = "sync") -> list[Line]:
        """Everything the server says before the answer to a PING sent now."""
        self.send(f"PING {token}")
        lines = self.until("PONG")
        assert lines[-1].text == token, lines[-1]
        return lines[:-1]

    def until_closed(self) -> list[Line]:
        """Every line until the server closes; then close too."""
        lines = []
        try:
            while True:
                lines.append(self.line())
        except EOFError:
            self.close()
            return lines

    def start_sasl(self, *before: str) -> None:
        """Send `before`, ask for `sasl` and start PLAIN; return once the
        server asks for the credentials (`AUTHENTICATE +`)."""
        self.send(*before, "CAP REQ :sasl", "AUTHENTICATE PLAIN")
        self.until("AUTHENTICATE")

    def register(
        self,
        nick: str,
        password: str | None = None,
        caps: tuple[str, ...] = (),
        sasl: bool = False,
    ) -> list[Line]:
        """Register as `nick` (with PASS, or SASL PLAIN if `sasl`); return
        every line up to the end of the welcome burst and unread replay."""
        if caps or sasl:
            self.send("CAP LS 302")
            self.until("CAP")
            wanted = (*caps, "sasl") if sasl else caps
            self.send(f"CAP REQ :{' '.join(wanted)}")
            ack = self.until("CAP")[-1]
            assert ack.params[1] == "ACK", ack
        if sasl:
            self.send("AUTHENTICATE PLAIN")
            self.until("AUTHENTICATE")
            self.send(plain(nick, password or ""))
            self.until("903")
        elif password is not None:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        if caps or sasl:
            self.send("CAP END")
        burst = self.sync()
        assert any(x.command == "001" for x in burst), burst
        self.nick = nick
        return burst

    def close(self) -> None:
        """Close the connection."""
        self.file.close()
        self.sock.close()

    def __enter__(self) -> IrcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plain(account: str, password: str) -> str:
    """The `AUTHENTICATE` line of SASL PLAIN credentials (no authzid)."""
    return "AUTHENTICATE " + base64.b64encode(f"\0{account}\0{password}".encode()).decode()
