"""The oracle of the socket fuzzer: what the server must answer, and checking it.

Owns: PROTOCOL.md's error codes (`ERROR_CODES`), the reply one frame must get
(`expected_reply`), the check of any line the server sends (`bad_output`),
how a failing line is shown (`show`), the cap on failures per checker
(`MAX_FAILURES`), and `Oracle`, the one logged-in connection that sends
single mutated lines and checks each reply. Must not: make load (the fuzz
connections and the pair do), or pace the fuzz connections.
"""

from __future__ import annotations

import json
import os
import time

from harness import Client
from tests.support.chatclient import fresh_name
from tests.support.fuzz_inputs import Vocabulary
from tests.support.fuzz_pair import PAIR_TIMEOUT

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


def show(line: bytes, limit: int = 100) -> str:
    """A line for a failure message: its start, and its length if cut."""
    return repr(line) if len(line) <= limit else f"{line[:limit]!r}... ({len(line)} bytes)"


def bad_output(line: bytes) -> str | None:
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
                        self.failures.append(f"oracle: line {show(line)}: {problem}")
                token = f"sync{self.lines}"
                reply = c.call(f"/ping {token}")
                if reply.get("code") == "rate_limited" and reply.get("cmd") == "ping":
                    time.sleep(0.05)
                elif reply != {"type": "ok", "cmd": "ping", "token": token}:
                    self.failures.append(f"oracle: line {show(line)}: then {reply} for /ping")
                for e in c.inbox:
                    if e["type"] == "message" and (e["group"] or "").lower() == self.secret:
                        self.failures.append(f"oracle: got a message of {self.secret}: {e}")
                c.inbox.clear()
        except (OSError, EOFError, ValueError) as exc:
            self.failures.append(f"oracle: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        self.client.close()
