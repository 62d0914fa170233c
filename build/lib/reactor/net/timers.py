"""Deadlines of a loop thread: a heap of (deadline, key), and how long the
loop may wait in `select()`.

Owns: the heap and the wait computation, for the reactor loop and the
thread-per-client model's accepting thread. Must not: know what a key
means (a connection id and a kind, for the loops) or touch a socket.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Generic, TypeVar

from reactor import limits

K = TypeVar("K")


class Timers(Generic[K]):
    """Deadlines on the monotonic clock, each with a key; due ones pop in order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._seq = 0  # ties break by insertion order, so keys need no ordering

    def add(self, deadline: float, key: K) -> None:
        """Fire `key` at `deadline` (seconds, `time.monotonic()`)."""
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, key))

    def due(self, now: float) -> Iterator[K]:
        """Pop every key whose deadline has passed, earliest first."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            yield heapq.heappop(heap)[2]

    def wait(self, now: float, *deadlines: float) -> float:
        """Seconds `select()` may block: until the first timer or any of
        `deadlines` (0 ones are ignored), at most MAX_POLL_SECONDS."""
        timeout = limits.MAX_POLL_SECONDS
        if self._heap:
            timeout = min(timeout, self._heap[0][0] - now)
        for d in deadlines:
            if d:
                timeout = min(timeout, d - now)
        return max(0.0, timeout)
