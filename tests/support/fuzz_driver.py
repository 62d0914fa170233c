"""The fuzz connections of the socket fuzzer, driven by one selectors loop.

Owns: `Fuzzer`, which keeps `connections` non-blocking fuzz connections
open, fills them from a `Vocabulary`, writes them (all at once or a byte at
a time), reads what the server sends back and checks each line with
`bad_output`, closes them in assorted ways (FIN, RST, half-close) and opens
short-lived ones beside them; the budgets that pace it (`Budget`,
connections, short-lived connections and password-hash lines per second);
and its `Volume`. Every buffer is bounded (`OUT_CAP`). Must not: block on a
socket, or check the pair's messages (tests/support/fuzz_pair.py does).
"""

from __future__ import annotations

import errno
import random
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field

from tests.support.fuzz_inputs import Vocabulary
from tests.support.fuzz_oracle import MAX_FAILURES, bad_output, show

#: Fuzz output waiting for one connection; past it no more is queued, so a
#: connection the server stopped reading cannot grow this process.
OUT_CAP = 256 * 1024
#: New connections (kept or short-lived) per second, bounded so that closed
#: sockets in TIME_WAIT cannot use up the ephemeral ports.
CONNECTS_PER_SECOND = 150
#: Of those, connections that live for a moment (connect, a few bytes, close).
FLASHES_PER_SECOND = 40
#: Lines that make the server run scrypt (~33 ms of a worker) per second; more
#: would measure the password hash instead of fuzzing the protocol.
SCRYPT_LINES_PER_SECOND = 15


@dataclass
class Volume:
    connections: int = 0  # opened, kept and short-lived
    lines: int = 0  # "\n" bytes written
    bytes_sent: int = 0
    bytes_received: int = 0
    lines_received: int = 0
    resets: int = 0  # connections we closed with RST
    server_closed: int = 0  # connections the server closed


@dataclass
class FuzzConn:
    sock: socket.socket
    deaf: bool  # never reads: the server's output to it piles up
    trickle: int  # 0, or bytes written per pass (slowloris)
    out: bytearray = field(default_factory=bytearray)
    next_at: float = 0.0
    then: str = ""  # after the output is flushed: "", "close", "reset", "shut_wr"
    shut_at: float = 0.0  # when we half-closed; closed for good a while later
    inbuf: bytearray = field(default_factory=bytearray)  # an incomplete line received


class Budget:
    """A token bucket: `take()` is True at most `rate` times per second."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _is_scrypt_line(line: bytes) -> bool:
    head = line.lstrip(b" ").split(b" ", 1)[0].lower()
    return head in (b"/login", b"/register")


def _tame(payload: bytes, scrypt: Budget) -> bytes:
    """Replace `/login` and `/register` lines once their budget is used up."""
    lines = payload.split(b"\n")
    for i, line in enumerate(lines):
        if _is_scrypt_line(line) and not scrypt.take():
            lines[i] = b"/ping tamed"
    return b"\n".join(lines)


class Fuzzer:
    """The fuzz connections, driven by one selectors loop."""

    def __init__(
        self, addr, connections: int, rng: random.Random, vocab: Vocabulary, users: list[str]
    ) -> None:
        self.addr = addr
        self.want = connections
        self.rng = rng
        self.vocab = vocab
        self.users = users  # throwaway accounts, password "pw"
        self.sel = selectors.DefaultSelector()
        self.conns: dict[socket.socket, FuzzConn] = {}
        self.volume = Volume()
        self.connects = Budget(CONNECTS_PER_SECOND)
        self.scrypt = Budget(SCRYPT_LINES_PER_SECOND)
        self.flashes = Budget(FLASHES_PER_SECOND)
        self.failures: list[str] = []

    def _connect(self) -> socket.socket | None:
        if not self.connects.take():
            return None
        try:
            sock = socket.create_connection(self.addr, timeout=5)
        except OSError as exc:
            self.failures.append(f"connect failed: {exc}")
            return None
        self.volume.connections += 1
        return sock

    def _open(self) -> None:
        sock = self._connect()
        if sock is None:
            return
        sock.setblocking(False)
        r = self.rng
        conn = FuzzConn(sock, deaf=r.random() < 0.05, trickle=r.choice([0] * 9 + [1]))
        if r.random() < 0.6:  # log in as a throwaway user, in either mode
            mode = r.choice([b"/mode json\n", b""])
            conn.out += mode + _tame(f"/login {r.choice(self.users)} pw\n".encode(), self.scrypt)
        self.conns[sock] = conn
        if not conn.deaf:
            self.sel.register(sock, selectors.EVENT_READ, conn)

    def _flash(self) -> None:
        """A connection that lives for a moment: connect, maybe a few bytes, close."""
        sock = self._connect()
        if sock is None:
            return
        with sock:
            r = self.rng
            if r.random() < 0.5:
                data = self.vocab.command()[: r.randint(0, 64)]
                try:
                    sock.sendall(data)
                    self.volume.bytes_sent += len(data)
                except OSError:
                    pass
            if r.random() < 0.5:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.volume.resets += 1

    def _close(self, conn: FuzzConn, reset: bool = False) -> None:
        if not conn.deaf:
            self.sel.unregister(conn.sock)
        del self.conns[conn.sock]
        if reset:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.volume.resets += 1
        conn.sock.close()

    def _act(self, conn: FuzzConn, now: float) -> None:
        r = self.rng
        conn.next_at = now + r.expovariate(1 / 0.02)
        if conn.then or len(conn.out) > OUT_CAP // 4:
            return
        data, then = self.vocab.payload()
        conn.out += _tame(data, self.scrypt)[:OUT_CAP]
        conn.then = then
        if r.random() < 0.001:
            conn.then = "reset"

    def _flush(self, conn: FuzzConn, now: float) -> None:
        if conn.out:
            cap = conn.trickle or len(conn.out)
            try:
                n = conn.sock.send(conn.out[:cap])
            except BlockingIOError:
                n = 0
            except OSError:
                self._close(conn)
                return
            self.volume.bytes_sent += n
            self.volume.lines += conn.out.count(b"\n", 0, n)
            del conn.out[:n]
        if conn.out:
            return
        if conn.then in ("close", "reset"):
            self._close(conn, reset=conn.then == "reset")
        elif conn.then == "shut_wr" and not conn.shut_at:
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._close(conn)
                return
            conn.shut_at = now
        elif conn.shut_at and now - conn.shut_at > 2.0:
            self._close(conn)  # the server kept it open after our FIN: fine, but enough

    def _read(self, conn: FuzzConn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                self.failures.append(f"recv failed: {exc}")
            self._close(conn)
            return
        if not data:
            self.volume.server_closed += 1
            self._close(conn)
            return
        self.volume.bytes_received += len(data)
        conn.inbuf += data
        *lines, rest = conn.inbuf.split(b"\n")
        conn.inbuf = bytearray(rest)
        self.volume.lines_received += len(lines)
        for line in lines:
            problem = bad_output(line)
            if problem and len(self.failures) < MAX_FAILURES:
                self.failures.append(f"the server sent {show(line)}: {problem}")

    def run(self, deadline: float) -> None:
        while (now := time.monotonic()) < deadline:
            while len(self.conns) < self.want and self._open_one():
                pass
            if self.flashes.take():
                self._flash()
            for conn in list(self.conns.values()):
                if now >= conn.next_at:
                    self._act(conn, now)
                self._flush(conn, now)
            for key, _ in self.sel.select(0.002):
                conn = key.data
                if conn.sock in self.conns:
                    self._read(conn)

    def _open_one(self) -> bool:
        before = len(self.conns)
        self._open()
        return len(self.conns) > before

    def close(self) -> None:
        for conn in list(self.conns.values()):
            self._close(conn)
        self.sel.close()
