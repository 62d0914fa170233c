"""Inputs of the socket fuzzer: names, command lines and their mutations.

Owns: `Vocabulary`, which makes the bytes a fuzz connection (or the oracle)
sends: valid command lines over a given set of users and groups, mutations
of them (bit flips, truncations, invalid UTF-8, odd bytes, repeats, runs of
spaces), random bytes, lines at and past the length limit, and the rare
hang-up, half-close or `/exit` to do after them. Must not: open a socket,
pace anything or judge a reply; it only makes bytes from its `random.Random`.
"""

from __future__ import annotations

import random

#: Longest "huge" line: well past the limit, small enough to stay quick.
HUGE_MAX = 200_000

#: Bytes that break UTF-8: a lone continuation, a lead without its
#: continuation, an overlong "/", a UTF-16 surrogate, a code point past U+10FFFF.
BAD_UTF8 = [b"\x80", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff"]
ODD_BYTES = [b"\x00", b"\r", b"\t", b" ", b"\x1b[2J", b"\xe2\x80\xa8", "é😀".encode()]


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
