"""Wiring: builds storage, locks, sessions, pool and reactor from a Config.

Owns: the order things start and stop in. Must not: contain chat logic or
socket code.
"""

from __future__ import annotations

import logging
import threading

from reactor.commands import Chat
from reactor.commit import Committer
from reactor.config import Config
from reactor.locks import STORAGE, make_locking
from reactor.loop import Reactor
from reactor.state import Sessions
from reactor.storage import Storage
from reactor.workers import Pool

log = logging.getLogger("reactor.server")


class Server:
    """A whole chat server. `start()` binds; `serve()` runs the loop in the
    calling thread until `stop()` (from any thread) has finished."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.locks = make_locking(config.locking)
        self.storage = Storage(config.db)
        self.sessions = Sessions()
        self._reactor: Reactor | None = None
        self.address: tuple[str, int] | None = None
        self.stopped = threading.Event()

    def start(self) -> tuple[str, int]:
        post = self._post
        committer = Committer(self.locks, self.storage, self.sessions, post)
        chat = Chat(
            self.locks,
            self.storage,
            self.sessions,
            committer,
            auth=self.config.auth,
            max_login_failures=self.config.max_login_failures,
        )
        self.pool = Pool(chat, post, self.config.workers)
        self._reactor = Reactor(self.config, self.pool)
        self.address = self._reactor.bind()
        self.pool.start()
        log.info(
            "listening on %s:%d (locking %s, %d workers, db %s)",
            *self.address,
            self.locks.name,
            self.config.workers,
            self.config.db,
        )
        return self.address

    def _post(self, actions) -> None:
        self._reactor.post(actions)

    def serve(self) -> None:
        """Run the reactor here; on return everything is flushed and closed."""
        try:
            self._reactor.run()
        finally:
            self.pool.stop()
            self._reactor.close()
            with self.locks.hold(STORAGE):
                self.storage.close()
            log.info("server stopped")
            self.stopped.set()

    def stop(self) -> None:
        """Ask for a graceful shutdown (thread- and signal-safe)."""
        if self._reactor is not None:
            self._reactor.request_stop()
