"""The names the completer offers, kept fresh from the server.

Owns: making a UI's `Names` (the server's commands plus the UI's own) and
`NamesFeed`, which asks `/users` and `/groups` now and then: every
NAMES_REFRESH_SECONDS, and soon after a message from someone (or some
group) the names do not know yet. Must not: show anything; a failed
refresh is simply tried again later.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from client.completion import Names
from client.connection import ChatError, Connection, Disconnected
from client.lines import REFUSED
from reactor.protocol import COMMANDS

#: Refresh the user list (who is online) at least this often.
NAMES_REFRESH_SECONDS = 30.0


def names_for(client_commands: Mapping[str, str]) -> Names:
    """Names that complete the server's commands and `client_commands`
    (a UI's own, with their usage: client/lines.py), not those it refuses."""
    names = Names()
    names.commands.update({n: s.usage for n, s in COMMANDS.items() if f"/{n}" not in REFUSED})
    names.commands.update(client_commands)
    return names


class NamesFeed:
    """Keeps `names` up to date from `conn`; `await keep()` while a UI runs."""

    def __init__(self, conn: Connection, names: Names) -> None:
        self.conn = conn
        self.names = names
        # Invariant: set while a refresh is due; refresh() clears it.
        self._wanted = asyncio.Event()
        self._wanted.set()

    @property
    def due(self) -> bool:
        """A refresh is wanted and has not happened yet."""
        return self._wanted.is_set()

    def want(self) -> None:
        """Refresh soon (the names changed, e.g. after `/group`)."""
        self._wanted.set()

    def notice(self, event: dict[str, Any]) -> None:
        """Refresh soon if message `event` comes from a user or a group the
        names do not know yet."""
        known = event["from"] in {u for u, _ in self.names.users}
        if not known or event.get("group") not in (None, *self.names.groups):
            self.want()

    async def refresh(self) -> None:
        """Ask the server who exists and which groups we are in."""
        self._wanted.clear()
        with contextlib.suppress(ChatError, Disconnected):
            self.names.set_users((await self.conn.call("/users"))["users"])
            self.names.set_groups((await self.conn.call("/groups"))["groups"])

    async def keep(self) -> None:
        """Refresh when wanted (at once, unless a refresh came just before)
        or after NAMES_REFRESH_SECONDS; runs until cancelled."""
        while True:
            # asyncio.wait, not wait_for: before Python 3.12, wait_for returns
            # normally when it is cancelled just as the event is set, so a
            # UI that stops while names change would wait here for minutes.
            wanted = asyncio.ensure_future(self._wanted.wait())
            try:
                await asyncio.wait({wanted}, timeout=NAMES_REFRESH_SECONDS)
            finally:
                wanted.cancel()
            await self.refresh()
