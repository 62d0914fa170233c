"""The hand-off between the loop and the chat side, both ways.

Owns: how one loop pass's batches reach the chat side (`hand`: to the pool
in one `Dispatch.submit`, or, under `--model inline`, run in the loop's own
thread in one `Dispatch.run_all`), and how actions come back (`post`: from
another thread through the wake-up channel, reactor/net/wakeup.py; from the
loop's own thread into a list with no wake-up, returned by `hand` to be
applied at once). Must not: touch client sockets or connections, or
interpret actions; reactor/net/loop.py applies them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from reactor.actions import Action, Item
from reactor.frontend import Dispatch, Session
from reactor.net.wakeup import Wakeup


class Handoff:
    """Batches out, actions back; `inline`: the batches run in `hand`."""

    def __init__(self, dispatch: Dispatch, inline: bool) -> None:
        self.dispatch = dispatch
        self.inline = inline
        self.wakeup: Wakeup[Action] = Wakeup()
        self._owner = 0  # the ident of the loop's thread, once `own` ran
        self._local: list[Action] = []  # posted by that thread, not yet handed back

    def own(self) -> None:
        """The calling thread is the loop's from now on."""
        self._owner = threading.get_ident()

    def post(self, actions: Sequence[Action]) -> None:
        """Hand actions to the loop; safe from any thread."""
        if threading.get_ident() == self._owner:
            self._local += actions
        else:
            self.wakeup.post(actions)

    def drain(self) -> Iterator[Action]:
        """Every action other threads posted, in order (loop thread only)."""
        return self.wakeup.drain()

    def hand(self, batches: Sequence[tuple[Session, Sequence[Item]]]) -> list[Action]:
        """Give one pass's batches to the chat side; the actions they posted
        already (inline: all of them, `Done`s included), to apply now."""
        if not self.inline:
            self.dispatch.submit(batches)
            return []
        self.dispatch.run_all(batches)
        local, self._local = self._local, []
        return local
