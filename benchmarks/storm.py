"""A login storm beside the chat load: new accounts at a steady rate.

Owns: `LoginStorm`, a thread that, from `start()` to `stop()`, opens a new
connection every 1/rate seconds (on a fixed schedule, so a slow server
does not slow the offered rate), registers a fresh name with a password
(scrypt on the server, ~33 ms of CPU), waits for the answer and closes;
and its counts. Must not: measure chat (the load generator does) or start
servers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from harness import Client


class LoginStorm:
    """`rate` registrations a second against `addr`, one connection each."""

    def __init__(self, addr: tuple[str, int], rate: float, prefix: str) -> None:
        self.addr, self.rate, self.prefix = addr, rate, prefix
        self.answers: Counter[str] = Counter()  # "ok", or the error code / exception name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="login storm", daemon=True)

    def start(self) -> None:
        """Begin the storm (returns at once)."""
        self._thread.start()

    def stop(self) -> Counter[str]:
        """End the storm, wait for its last registration; the answers."""
        self._stop.set()
        self._thread.join()
        return self.answers

    def _run(self) -> None:
        step, due, i = 1.0 / self.rate, time.monotonic(), 0
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due += step
            i += 1
            try:
                with Client(self.addr, timeout=10.0) as c:
                    reply = c.call(f"/register {self.prefix}{i} pw")
                self.answers[reply.get("code", "ok")] += 1
            except (OSError, EOFError, ValueError) as exc:
                self.answers[type(exc).__name__] += 1
