"""The reactor's graceful stop, one loop pass at a time.

Owns: the stop's phases and clocks: first answer what is in flight (for at
most SHUTDOWN_GRACE_SECONDS), then say `bye shutdown` to every connection,
then end once every peer has closed after its bye, or, for peers that keep
their end open, once every bye is on the wire and SHUTDOWN_LINGER_SECONDS
have passed (closing with unread input would send RST and could destroy
the bye in flight). Must not: touch sockets or the selector; the reactor
(reactor/net/loop.py) passes its connections and says the byes itself.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from reactor import limits
from reactor.net.connection import Connection, Life


class Shutdown:
    """A stop begun at `since` (monotonic seconds)."""

    def __init__(self, since: float) -> None:
        self._since = since
        self._bye_at: float | None = None  # when every connection was told bye

    def step(
        self, now: float, conns: Collection[Connection], say_bye: Callable[[Connection], None]
    ) -> bool:
        """One pass of the stop: `say_bye` to every open connection once
        nothing runs or waits (or the grace is over); True once the loop may end."""
        late = now - self._since > limits.SHUTDOWN_GRACE_SECONDS
        if self._bye_at is None:
            busy = any(c.running or c.pending for c in conns if c.sock)
            if busy and not late:
                return False
            self._bye_at = now
            for conn in list(conns):
                if conn.sock is not None and not conn.bye_sent:
                    say_bye(conn)
        if all(c.sock is None for c in conns):
            return True
        lingered = now - self._bye_at > limits.SHUTDOWN_LINGER_SECONDS
        flushed = all(c.sock is None or Life.DRAINING in c.life for c in conns)
        return late or (lingered and flushed)
