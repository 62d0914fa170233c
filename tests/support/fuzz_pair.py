"""The well-behaved pair of the socket fuzzer, and what it must find at the end.

Owns: `Pair`, two ordinary users on blocking clients that, in a thread of
their own, send private and group messages amid the fuzzing and record every
acknowledged id with where it belongs; then `Pair.check` finds each in
`/history` and in what its recipients received. Must not: send anything but
well-formed commands, or look at the fuzz connections.
"""

from __future__ import annotations

import os
import time

from harness import Client
from tests.support.chatclient import fresh_name

#: The pair's private conversation stops at this many messages and each of
#: its groups is replaced after this many, so `/history ... 500` holds all.
HISTORY_WINDOW = 450
PAIR_TIMEOUT = 30.0  # seconds the pair waits for one reply under load
DELIVERY_WAIT = 15.0  # seconds to wait at the end for messages in flight


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
