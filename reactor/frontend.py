"""The two interfaces between the layers: what the server's wiring needs of
an I/O model (`Frontend`), and what an I/O model needs of the chat side
(`Dispatch`).

Owns: the two `typing.Protocol`s. Must not: hold behaviour. The I/O models
(reactor/net) implement `Frontend` and use `Dispatch`; the chat side
(reactor/chat/engine.py) implements `Dispatch`; only reactor/server.py
knows both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from reactor.actions import Action, Item
from reactor.stats import FrontStatistics, PoolStatistics


class Session(Protocol):
    """A connection's chat session, opaque to the I/O model."""

    @property
    def conn_id(self) -> int:
        """The connection's id."""
        ...


class Dispatch(Protocol):
    """The chat side: sessions, and batches of a connection's items, run
    in the order given. An I/O model never runs two batches of one
    connection at once."""

    def open_session(self, conn_id: int, peer: str) -> Session:
        """The session of a new connection."""
        ...

    def submit(self, batches: Sequence[tuple[Session, Sequence[Item]]]) -> None:
        """Run one loop pass's batches (each connection at most once)
        later, on the worker pool; each batch's `Done` is posted."""
        ...

    def run_all(self, batches: Sequence[tuple[Session, Sequence[Item]]]) -> None:
        """Run one loop pass's batches now, in the calling thread; each
        batch's `Done` is posted."""
        ...

    def run(self, session: Session, items: Sequence[Item], *, done: bool = True) -> None:
        """Run a batch now, in the calling thread."""
        ...

    def statistics(self) -> PoolStatistics:
        """The worker pool's statistics."""
        ...


class Frontend(Protocol):
    """An I/O model: owns every client socket. `bind()`, then `run()` in
    the thread that owns it, until `request_stop()` (from any thread or a
    signal handler) has finished; then `close()`."""

    name: str  # how the log names it, e.g. "reactor + 4 workers"

    def bind(self) -> tuple[str, int]:
        """Open the listening socket; return the address really bound."""
        ...

    def run(self) -> None:
        """Serve until a requested stop has finished."""
        ...

    def request_stop(self) -> None:
        """Begin a graceful shutdown; safe from any thread or signal handler."""
        ...

    def post(self, actions: Sequence[Action]) -> None:
        """Apply the chat side's actions, in order; safe from any thread."""
        ...

    def close(self) -> None:
        """Release what `run` left (selector, wake-up pair)."""
        ...

    def statistics(self) -> FrontStatistics:
        """Connections, who runs commands, and the model's own locks."""
        ...
