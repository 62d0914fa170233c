"""A connection's input side, shared by both I/O models: bytes in, work items out.

Owns: one connection's `Framer` and its rate-limit token bucket, and the
rule that turns frames into work items (parsed commands, or `BadLine`s to be
answered in their turn); for an IRC connection (`IrcIntake`, reactor only)
its `IrcSession` does the framing and the translating. Must not: touch
sockets or know which thread calls it; the reactor
(reactor/net/connection.py) and the thread-per-client model
(reactor/net/threaded/server.py) each keep one per connection and call it
from the one thread that reads that connection.
"""

from __future__ import annotations

from reactor.actions import Item
from reactor.config import Config
from reactor.protocol import BadLine, FrameError, Framer, command_word, parse
from reactor.protocol.ircsession import IrcSession


class _Bucket:
    """The per-connection token bucket (docs/protocol.md §8)."""

    def __init__(self, config: Config, now: float) -> None:
        self._rate = config.rate_limit
        self._burst = float(config.rate_burst)
        self._tokens = self._burst
        self._stamp = now

    def take(self, now: float) -> bool:
        """True if one more line may run now."""
        if self._rate <= 0:
            return True
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Intake:
    """Framing plus the per-connection token bucket (docs/protocol.md §8)."""

    def __init__(self, config: Config, now: float) -> None:
        self.framer = Framer(config.max_line)
        self._bucket = _Bucket(config, now)

    def take_lines(self, data: bytes, now: float) -> list[Item]:
        """Frame `data` into work items: parsed commands or `BadLine`s.

        Over the rate limit, a line is answered `rate_limited` (in its turn,
        like any reply) instead of being run.
        """
        items: list[Item] = []
        for frame in self.framer.feed(data):
            if not self._bucket.take(now):
                word = command_word(frame) if isinstance(frame, str) else None
                items.append(BadLine(word, "rate_limited", "too many commands; slow down"))
            elif isinstance(frame, FrameError):
                items.append(BadLine(None, frame.code, frame.message))
            else:
                items.append(parse(frame))
        return items


class IrcIntake:
    """An IRC connection's input: its `IrcSession` frames and translates,
    the same token bucket limits (a line over it is dropped, with a NOTICE)."""

    def __init__(self, config: Config, now: float, session: IrcSession) -> None:
        self.session = session
        self._bucket = _Bucket(config, now)

    def take_lines(self, data: bytes, now: float) -> list[Item]:
        """Frame `data` into the work items its IRC lines mean."""
        items: list[Item] = []
        session = self.session
        for frame in session.framer.feed(data):
            items += session.frame(frame) if self._bucket.take(now) else session.flooded()
        return items
