"""Socket fuzzer: hostile bytes on many connections while a well-behaved pair chats.

For a bounded time, `connections` fuzz connections send random bytes, valid
command lines and mutations of them (bit flips, truncations, huge lines,
lines at the length limit, invalid UTF-8, NULs, lone CRs, pipelined bursts,
byte-at-a-time trickles), log in now and then as throwaway users, stop
reading, half-close, hang up mid-line, reset, and reconnect; short-lived
connections come and go beside them. Meanwhile one pair of users sends
private and group messages over ordinary blocking clients and records every
acknowledged id. At the end the server must still answer `/ping` on a new
connection, and every acknowledged message of the pair must be in `/history`
and must have reached its recipients. Only loopback addresses are used;
every count and buffer is bounded.

    .venv/bin/python -m tests.support.fuzz_socket --start --seconds 30
    .venv/bin/python -m tests.support.fuzz_socket --port 9000 --seconds 10

`fuzz(addr, seconds, connections, seed)` runs it against a server that is
already up and returns the volume and the list of failures (empty if all
checks passed), so a test can call it.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import selectors
import shlex
import socket
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import Client, ServerProcess
from tests.support.chatclient import fresh_name

MAX_LINE = 4096  # the server's default --max-line: lines are made at and around it
#: Fuzz output waiting for one connection; past it no more is queued, so a
#: connection the server stopped reading cannot grow this process.
OUT_CAP = 256 * 1024
#: Longest "huge" line: well past the limit, small enough to stay quick.
HUGE_MAX = 200_000
#: New connections (kept or short-lived) per second, bounded so that closed
#: sockets in TIME_WAIT cannot use up the ephemeral ports.
CONNECTS_PER_SECOND = 150
#: Of those, connections that live for a moment (connect, a few bytes, close).
FLASHES_PER_SECOND = 40
#: Lines that make the server run scrypt (~33 ms of a worker) per second; more
#: would measure the password hash instead of fuzzing the protocol.
SCRYPT_LINES_PER_SECOND = 15
#: The pair's private conversation stops at this many messages and each of
#: its groups is replaced after this many, so `/history ... 500` holds all.
HISTORY_WINDOW = 450
FUZZ_USERS = 8
PAIR_TIMEOUT = 30.0  # seconds the pair waits for one reply under load
DELIVERY_WAIT = 15.0  # seconds to wait at the end for messages in flight

#: Bytes that break UTF-8: a lone continuation, a lead without its
#: continuation, an overlong "/", a UTF-16 surrogate, a code point past U+10FFFF.
BAD_UTF8 = [b"\x80", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff"]
ODD_BYTES = [b"\x00", b"\r", b"\t", b" ", b"\x1b[2J", b"\xe2\x80\xa8", "é😀".encode()]


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


class Vocabulary:
    """Names and command lines the mutations start from."""

    def __init__(
        self, rng: random.Random, users: list[str], groups: list[str], max_line: int
    ) -> None:
        self.rng = rng
        self.users = users
        self.groups = groups
        self.max_line = max_line

    def name(self) -> str:
        r = self.rng
        kind = r.random()
        if kind < 0.4:
            return r.choice(self.users)
        if kind < 0.7:
            return r.choice(self.groups)
        if kind < 0.85:
            return "".join(r.choice("abcXYZ019_.-") for _ in range(r.randint(1, 40)))
        return r.choice(["", "-", ".", "..", "nobody", "/send", "a" * 33])

    def text(self) -> str:
        r = self.rng
        pieces = ["hi", "  two  spaces ", "ünïcødé", "😀", "\t", "/send", '{"type":"ok"}']
        return "".join(r.choice(pieces) for _ in range(r.randint(1, 6))) or "x"

    def command(self) -> bytes:
        r = self.rng
        n = self.name
        line = r.choice(
            [
                lambda: f"/send {n()} {self.text()}",
                lambda: f"/sendgroup {n()} {self.text()}",
                lambda: f"/group {n()} " + " ".join(n() for _ in range(r.randint(0, 4))),
                lambda: f"/leave {n()}",
                lambda: f"/history {n()} {r.choice(['', '1', '500', '501', '0', '-1', 'x'])}",
                lambda: "/users",
                lambda: "/groups",
                lambda: "/whoami",
                lambda: f"/ping {self.text()}",
                lambda: f"/help {r.choice(['', 'send', '/group', 'nosuch'])}",
                lambda: f"/mode {r.choice(['json', 'text', 'JSON', 'xml'])}",
                lambda: f"/ack {r.choice(['0', '1', str(2**63), '-5', '99999999', 'x'])}",
                lambda: "/stats",
                lambda: f"/login {n()} pw",
                lambda: f"/register {n()} pw",
                lambda: "/nosuch",
                lambda: "not a command",
            ]
        )()
        if r.random() < 0.1:  # command words are case-insensitive
            head, _, tail = line.partition(" ")
            line = head.upper() + " " + tail
        return line.encode()

    def mutate(self, line: bytes) -> bytes:
        r = self.rng
        data = bytearray(line)
        for _ in range(r.randint(1, 3)):
            how = r.randrange(7)
            pos = r.randint(0, len(data))
            if how == 0 and data:  # flip a bit
                i = r.randrange(len(data))
                data[i] ^= 1 << r.randrange(8)
            elif how == 1:  # truncate
                del data[pos:]
            elif how == 2:
                data[pos:pos] = r.choice(BAD_UTF8)
            elif how == 3:
                data[pos:pos] = r.choice(ODD_BYTES)
            elif how == 4 and data:  # repeat a piece
                j = r.randint(pos, len(data))
                data[pos:pos] = data[pos:j] * r.randint(1, 50)
            elif how == 5:  # runs of spaces between arguments
                data = bytearray(data.replace(b" ", b" " * r.randint(0, 5)))
            else:
                data[pos:pos] = bytes(r.randrange(256) for _ in range(r.randint(1, 8)))
        return bytes(data)

    def payload(self) -> tuple[bytes, str]:
        """Bytes to send and what to do after them."""
        r = self.rng
        kind = r.random()
        if kind < 0.36:  # a pipelined burst of valid commands
            return b"".join(self.command() + b"\n" for _ in range(r.randint(1, 20))), ""
        if kind < 0.72:  # mutated commands, with assorted terminators
            ends = [b"\n", b"\n", b"\r\n", b"\r", b"\n\r", b"", b"\r\r\n", b"\n\n"]
            lines = [self.mutate(self.command()) + r.choice(ends) for _ in range(r.randint(1, 8))]
            return b"".join(lines), ""
        if kind < 0.82:  # random bytes
            return bytes(r.randrange(256) for _ in range(r.randint(1, 512))), ""
        if kind < 0.90:  # a line at, around or far past the limit
            limit = self.max_line
            size = r.choice([limit - 2, limit - 1, limit, limit + 1, 10_000])
            size = r.choice([size, r.randint(limit, HUGE_MAX)])
            body = b"/send " + self.name().encode() + b" "
            body += b"x" * max(0, size - len(body) - 1)
            return body + (b"\n" if r.random() < 0.8 else b""), ""
        if kind < 0.995:
            return b"\r" * r.randint(1, 100) + b"\n" * r.randint(0, 100), ""
        if kind < 0.997:  # hang up in the middle of a line
            line = self.command()
            return line[: r.randint(0, len(line))], r.choice(["close", "reset"])
        if kind < 0.999:  # say something, then half-close
            return self.command() + b"\n", "shut_wr"
        return self.command() + b"\n/exit\n" + self.command() + b"\n", ""


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


def _show(line: bytes, limit: int = 100) -> str:
    """A line for a failure message: its start, and its length if cut."""
    return repr(line) if len(line) <= limit else f"{line[:limit]!r}... ({len(line)} bytes)"


def _bad_output(line: bytes) -> str | None:
    """What is wrong with a line the server sent, if anything: every line is
    UTF-8, and one that looks like JSON is one JSON object with a "type"."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    if not text.startswith("{"):
        return None  # text mode
    try:
        event = json.loads(text)
    except ValueError:
        return "not JSON"
    return None if isinstance(event, dict) and "type" in event else "no type"


def _loopback(addr) -> tuple[str, int]:
    host, port = addr
    if not host.startswith("127."):
        raise ValueError(f"fuzzing only loopback addresses, not {host}")
    return host, int(port)


class Pair:
    """Two well-behaved users, run in a thread: private and group messages,
    every acknowledged id recorded with where it belongs."""

    def __init__(self, addr, password: str) -> None:
        self.addr = addr
        self.password = password
        self.clients: list[Client] = []
        self.private: list[dict] = []  # acknowledged private messages, in order
        self.groups: dict[str, list[dict]] = {}  # group -> acknowledged messages
        self.rate_limited = 0
        self.max_latency = 0.0
        self.failures: list[str] = []

    def start(self) -> None:
        for prefix in ("fzA", "fzB"):
            c = Client(self.addr, timeout=PAIR_TIMEOUT)
            name = fresh_name(prefix) + os.urandom(2).hex()
            c.ok(f"/register {name} {self.password}")
            c.name = c.ok(f"/login {name} {self.password}")["user"]
            self.clients.append(c)
        self.group = self._new_group()

    def _call(self, c: Client, line: str) -> dict | None:
        while True:
            t0 = time.monotonic()
            reply = c.call(line)
            self.max_latency = max(self.max_latency, time.monotonic() - t0)
            if reply["type"] == "ok":
                return reply
            if reply["code"] != "rate_limited":
                self.failures.append(f"pair: {line!r} answered {reply}")
                return None
            self.rate_limited += 1
            time.sleep(0.05)

    def _new_group(self) -> str:
        a, b = self.clients
        group = fresh_name("fzG") + os.urandom(2).hex()
        if self._call(a, f"/group {group} {b.name}") is None:
            raise RuntimeError("the pair could not make a group")
        self.groups[group] = []
        return group

    def run(self, deadline: float) -> None:
        a, b = self.clients
        group = self.group
        try:
            i = 0
            while time.monotonic() < deadline and not self.failures:
                i += 1
                sender, other = (a, b) if i % 2 else (b, a)
                text = f"pair {i} ünï 😀 {'x' * (i % 7)}  end "
                if i % 3 and len(self.private) < HISTORY_WINDOW:
                    reply = self._call(sender, f"/send {other.name} {text}")
                    if reply:
                        msg = {"id": reply["id"], "from": sender.name, "to": other.name}
                        self.private.append({**msg, "text": text, "group": None})
                    continue
                if len(self.groups[group]) >= HISTORY_WINDOW:
                    group = self._new_group()
                reply = self._call(sender, f"/sendgroup {group} {text}")
                if reply:
                    msg = {"id": reply["id"], "from": sender.name, "to": None, "group": group}
                    self.groups[group].append({**msg, "text": text})
        except (OSError, EOFError, ValueError, RuntimeError) as exc:
            self.failures.append(f"pair: {type(exc).__name__}: {exc}")

    def sent(self) -> int:
        return len(self.private) + sum(len(m) for m in self.groups.values())

    def check(self) -> list[str]:
        """Every acknowledged message is in /history and reached its recipients."""
        failures: list[str] = []
        before = len(self.failures)  # `_call` adds to these
        a, b = self.clients
        acked = self.private + [m for msgs in self.groups.values() for m in msgs]
        ids = [m["id"] for m in self.private]
        if ids != sorted(set(ids)):
            failures.append("pair: private ids not increasing")
        for group, msgs in self.groups.items():
            ids = [m["id"] for m in msgs]
            if ids != sorted(set(ids)):
                failures.append(f"pair: ids of {group} not increasing")
        try:
            conversations = [(b.name, self.private), *self.groups.items()]
            for name, msgs in conversations:
                reply = self._call(a, f"/history {name} 500")
                stored = {m["id"]: m for m in reply["messages"]} if reply else {}
                for m in msgs:
                    got = stored.get(m["id"])
                    if got is None or {k: got[k] for k in m} != m:
                        failures.append(f"pair: acknowledged {m} not in /history {name}: {got}")
            for c in (a, b):
                want = {m["id"] for m in acked if m["to"] in (None, c.name)}
                failures += self._received(c, want)
        except (OSError, EOFError, ValueError, AssertionError) as exc:
            failures.append(f"pair: check failed: {type(exc).__name__}: {exc}")
        return failures + self.failures[before:]

    def _received(self, c: Client, want: set[int]) -> list[str]:
        got = {e["id"] for e in c.inbox if e["type"] == "message"}
        c.inbox.clear()
        c.sock.settimeout(DELIVERY_WAIT)
        try:
            while not want <= got:
                got.add(c.event("message")["id"])
        except (OSError, EOFError) as exc:
            missing = sorted(want - got)
            return [f"pair: {c.name} never got {len(missing)} messages {missing[:10]}: {exc}"]
        return []

    def close(self) -> None:
        for c in self.clients:
            c.close()


#: PROTOCOL.md §7.
ERROR_CODES = frozenset(
    {
        "unknown_command", "bad_args", "not_logged_in", "already_logged_in", "auth_failed",
        "name_taken", "bad_name", "unknown_user", "unknown_group", "not_member",
        "line_too_long", "bad_encoding", "rate_limited", "too_many_failures", "busy",
        "internal",
    }
)  # fmt: skip
#: Commands the oracle does not send: they would end its connection, change
#: its encoding, or cost a password hash.
ORACLE_SKIPS = frozenset({"exit", "mode", "register"})
MAX_FAILURES = 20  # per checker: the first ones say enough


def expected_reply(line: bytes, max_line: int) -> tuple[str, str | None] | None:
    """What PROTOCOL.md §1 and §4 say one frame (`line`, its `\n` left off)
    is answered: ("line_too_long" | "bad_encoding" | "command", cmd), or None
    for an empty line, which is not answered."""
    if len(line) + 1 > max_line:
        return "line_too_long", None
    if line.endswith(b"\r"):
        line = line[:-1]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "bad_encoding", None
    if not text:
        return None
    word = text.lstrip(" ").split(" ", 1)[0]
    return "command", word[1:].lower() if len(word) > 1 and word.startswith("/") else None


class Oracle:
    """One logged-in json connection amid the fuzzing that sends single
    mutated lines, one at a time, each followed by a `/ping`: every line must
    get exactly the one reply PROTOCOL.md says, with the right `cmd`, and
    nothing of a group it is not in (`secret`, the pair's) may reach it."""

    def __init__(self, addr, vocab: Vocabulary, secret: str) -> None:
        self.vocab = vocab
        self.secret = secret.lower()
        self.lines = 0
        self.failures: list[str] = []
        self.client = Client(addr, timeout=PAIR_TIMEOUT)
        name = fresh_name("fzO") + os.urandom(2).hex()
        password = os.urandom(8).hex()
        self.client.ok(f"/register {name} {password}")
        self.name = self.client.ok(f"/login {name} {password}")["user"]

    def _line(self) -> bytes:
        r = self.vocab.rng
        line = self.vocab.command()
        if r.random() < 0.7:
            line = self.vocab.mutate(line)
        line = line.replace(b"\n", b"")  # one frame
        if r.random() < 0.05:
            line += b"x" * (self.vocab.max_line - len(line) + r.randint(-3, 2))  # at the limit
        return line + (b"\r" if r.random() < 0.1 else b"")

    def _check(self, line: bytes, want: tuple[str, str | None], reply: dict) -> str | None:
        kind, cmd = want
        if reply.get("type") not in ("ok", "error"):
            return f"not a reply: {reply}"
        if reply["type"] == "error" and reply.get("code") == "rate_limited":
            return None
        if kind != "command":
            ok = reply["type"] == "error" and reply.get("code") == kind and reply["cmd"] is None
            return None if ok else f"expected error {kind}, got {reply}"
        if reply.get("cmd") != cmd:
            return f"expected cmd {cmd!r}, got {reply}"
        if reply["type"] == "error" and reply.get("code") not in ERROR_CODES:
            return f"undocumented error code: {reply}"
        if reply["type"] == "error" and reply["code"] == "internal":
            return f"internal error: {reply}"
        return self._check_privacy(line, reply) if reply["type"] == "ok" else None

    def _check_privacy(self, line: bytes, reply: dict) -> str | None:
        words = [w for w in line.rstrip(b"\r").decode().split(" ") if w]
        target = words[1].lower() if len(words) > 1 else ""
        if reply["cmd"] in ("group", "sendgroup", "leave", "history") and target == self.secret:
            return f"not a member of {self.secret}, yet: {reply}"
        if reply["cmd"] != "history":
            return None
        with_ = reply["with"].lower()
        for m in reply["messages"]:
            if m["group"] is not None:
                seen = m["group"].lower() == with_
            else:  # a private conversation: between the caller and `with`, both ways
                seen = {m["from"].lower(), m["to"].lower()} <= {self.name.lower(), with_}
            if not seen:
                return f"/history {with_} shows someone else's message {m}"
        return None

    def run(self, deadline: float) -> None:
        c = self.client
        try:
            while time.monotonic() < deadline and len(self.failures) < MAX_FAILURES:
                line = self._line()
                want = expected_reply(line, self.vocab.max_line)
                if want and want[0] == "command" and want[1] in ORACLE_SKIPS:
                    continue
                self.lines += 1
                c.send(line)
                if want is not None:
                    problem = self._check(line, want, c.reply())
                    if problem:
                        self.failures.append(f"oracle: line {_show(line)}: {problem}")
                token = f"sync{self.lines}"
                reply = c.call(f"/ping {token}")
                if reply.get("code") == "rate_limited" and reply.get("cmd") == "ping":
                    time.sleep(0.05)
                elif reply != {"type": "ok", "cmd": "ping", "token": token}:
                    self.failures.append(f"oracle: line {_show(line)}: then {reply} for /ping")
                for e in c.inbox:
                    if e["type"] == "message" and (e["group"] or "").lower() == self.secret:
                        self.failures.append(f"oracle: got a message of {self.secret}: {e}")
                c.inbox.clear()
        except (OSError, EOFError, ValueError) as exc:
            self.failures.append(f"oracle: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        self.client.close()


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
            problem = _bad_output(line)
            if problem and len(self.failures) < MAX_FAILURES:
                self.failures.append(f"the server sent {_show(line)}: {problem}")

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


def fuzz(
    addr, seconds: float = 10.0, connections: int = 20, seed: int = 0, *, max_line: int = MAX_LINE
) -> dict:
    """Fuzz the server at `addr` (a loopback address) for `seconds` with
    `connections` fuzz connections, while a well-behaved pair chats.
    `max_line` is the server's --max-line.

    Returns the volume (`connections`, `lines`, `bytes_sent`,
    `bytes_received`, ...), the pair's numbers (`pair_messages`, ...), and
    `failures`: a list of what went wrong, empty when every check passed.
    Raises ValueError for an address that is not loopback.
    """
    addr = _loopback(addr)
    rng = random.Random(seed)
    failures: list[str] = []
    setup = Client(addr)
    fuzz_users = [fresh_name("fzU") + os.urandom(2).hex() for _ in range(FUZZ_USERS)]
    for name in fuzz_users:
        setup.ok(f"/register {name} pw")
    setup.close()
    pair = Pair(addr, password=os.urandom(8).hex())
    pair.start()
    pair_names = [c.name for c in pair.clients]
    # Group names include users' names: users and groups share one namespace.
    groups = ["fzgroup", "FZGROUP", pair.group, pair.group.upper(), *pair_names]
    vocab = Vocabulary(rng, fuzz_users + pair_names, groups, max_line)
    fuzzer = Fuzzer(addr, connections, rng, vocab, fuzz_users)
    oracle_vocab = Vocabulary(random.Random(seed + 1), vocab.users, groups, max_line)
    oracle = Oracle(addr, oracle_vocab, pair.group)
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=pair.run, args=(deadline,), daemon=True),
        threading.Thread(target=oracle.run, args=(deadline,), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        fuzzer.run(deadline)
    finally:
        fuzzer.close()
        for thread in threads:
            thread.join(PAIR_TIMEOUT + 5)
    if any(thread.is_alive() for thread in threads):
        failures.append("pair or oracle: still waiting for a reply at the end")
    failures += pair.failures + oracle.failures + fuzzer.failures[:MAX_FAILURES]
    try:
        probe = Client(addr, timeout=10)
        if probe.call("/ping still-alive") != {"type": "ok", "cmd": "ping", "token": "still-alive"}:
            failures.append("a new connection's /ping was not answered")
        probe.close()
    except (OSError, EOFError, ValueError) as exc:
        failures.append(f"a new connection could not /ping: {type(exc).__name__}: {exc}")
    if not threads[0].is_alive():
        failures += pair.check()
    pair.close()
    oracle.close()
    v = fuzzer.volume
    return {
        "connections": v.connections + 2 + len(pair.clients),
        "lines": v.lines,
        "bytes_sent": v.bytes_sent,
        "bytes_received": v.bytes_received,
        "lines_received": v.lines_received,
        "resets": v.resets,
        "server_closed": v.server_closed,
        "pair_messages": pair.sent(),
        "pair_rate_limited": pair.rate_limited,
        "pair_max_latency": round(pair.max_latency, 3),
        "oracle_lines": oracle.lines,
        "failures": [f if len(f) <= 500 else f[:500] + "..." for f in failures],
    }


def tracebacks(log: str, context: int = 30) -> str:
    """The parts of a server log from each "Traceback" on, for a report."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if "Traceback" in line]
    return "\n...\n".join("\n".join(lines[max(0, i - 2) : i + context]) for i in starts[:5])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ip", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--start", action="store_true", help="start a server on a free port")
    ap.add_argument(
        "--server-args",
        default="--rate-limit 0",
        help="options for the server --start runs (default: %(default)s)",
    )
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--max-line",
        type=int,
        default=MAX_LINE,
        help="the server's --max-line (passed to it with --start)",
    )
    args = ap.parse_args(argv)
    if not 1 <= args.connections <= 1000 or not 0 < args.seconds <= 600:
        ap.error("--connections must be 1-1000 and --seconds 0-600")
    if args.max_line < 256:
        ap.error("--max-line must be at least 256: the pair's lines must fit")
    srv = None
    if args.start:
        db = Path(tempfile.mkdtemp(prefix="fuzz-")) / "chat.db"
        server_args = ["--ip", args.ip, "--max-line", str(args.max_line)]
        srv = ServerProcess(db, *server_args, *shlex.split(args.server_args)).start()
        addr = srv.addr
    else:
        addr = (args.ip, args.port)
    try:
        result = fuzz(addr, args.seconds, args.connections, args.seed, max_line=args.max_line)
        if srv is not None:
            if srv.proc.poll() is not None:
                result["failures"].append(f"the server exited with {srv.proc.returncode}")
            elif srv.stop() != 0:
                result["failures"].append(f"the server stopped with {srv.proc.returncode}")
            if "Traceback" in srv.log_text():
                result["failures"].append("the server log has a Traceback")
                print(tracebacks(srv.log_text()), file=sys.stderr)
    finally:
        if srv is not None and srv.proc.poll() is None:
            srv.kill()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if result["failures"]:
        print(f"FAILED: {len(result['failures'])} check(s)", file=sys.stderr)
        return 1
    print(
        f"ok: {result['connections']} connections, {result['lines']} lines, "
        f"{result['bytes_sent']} bytes sent, {result['bytes_received']} received; "
        f"{result['pair_messages']} messages of the pair all stored and delivered"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
