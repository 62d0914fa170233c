"""Wiring: builds storage, locks and their hooks (trace, lock-order
checker, watchdog), sessions, pool and reactor from a Config.

Owns: the choice of I/O model (the reactor and its pool, or a thread per
client), the order things start and stop in, and the `/stats` snapshot.
Must not: contain chat logic or socket code.
"""

from __future__ import annotations

import logging
import ssl
import threading

from reactor.chat.commands import Chat
from reactor.chat.commit import Committer
from reactor.chat.pool import Pool
from reactor.chat.sessions import Sessions
from reactor.chat.storage import Storage
from reactor.config import Config
from reactor.net.loop import Reactor
from reactor.net.threaded.server import ThreadedServer
from reactor.sync.lockdep import OrderChecker, Watchdog
from reactor.sync.locks import STORAGE, Hooks, class_statistics, make_locking
from reactor.tracing.recorder import Tracer

log = logging.getLogger("reactor.server")


class Server:
    """A whole chat server. `start()` binds; `serve()` runs the loop in the
    calling thread until `stop()` (from any thread) has finished."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tracer = None
        if config.trace:
            self.tracer = Tracer(
                config.trace, locking=config.locking, workers=config.workers,
                sample=config.trace_sample,
            )  # fmt: skip
        self.checker = None
        if config.lockdep or self.tracer is not None:
            self.checker = OrderChecker(self.tracer)
        self.watchdog = Watchdog(config.watchdog, self.tracer) if config.watchdog > 0 else None
        self.hooks = hooks = Hooks(self.tracer, self.checker, self.watchdog)
        # The inverted demo gives up after four times the watchdog's
        # threshold: long enough for the watchdog to see the cycle first.
        give_up = 4 * config.watchdog if config.watchdog > 0 else None
        self.locks = make_locking(config.locking, hooks, timeout=give_up)
        self.storage = Storage(config.db)
        self.sessions = Sessions()
        self._reactor: Reactor | None = None
        self.address: tuple[str, int] | None = None
        self.stopped = threading.Event()

    def start(self) -> tuple[str, int]:
        post = self._post
        committer = Committer(self.locks, self.storage, self.sessions, post)
        chat = Chat(
            self.locks, self.storage, self.sessions, committer,
            auth=self.config.auth, max_login_failures=self.config.max_login_failures,
        )  # fmt: skip
        chat.stats_source = self.statistics
        if self.config.model == "threaded":
            self.pool = None
            self._reactor = ThreadedServer(self.config, chat, self.hooks, self.tracer)
        else:
            self.pool = Pool(chat, post, self.config.workers, self.tracer)
            self._reactor = Reactor(self.config, self.pool, self.tracer, tls_context(self.config))
        self.address = self._reactor.bind()
        if self.pool is not None:
            self.pool.start()
        if self.watchdog is not None:
            self.watchdog.start()
        log.info(
            "listening on %s:%d (%s, locking %s, db %s%s%s)",
            *self.address, self._front_name(), self.locks.name, self.config.db,
            f", trace {self.config.trace}" if self.tracer else "",
            ", TLS" if self.config.tls_cert else "",
        )  # fmt: skip
        return self.address

    def _front_name(self) -> str:
        if self.pool is None:
            return "thread per client"
        return f"reactor + {self.config.workers} workers"

    def _post(self, actions) -> None:
        self._reactor.post(actions)

    def serve(self) -> None:
        """Run the reactor here; on return everything is flushed and closed."""
        try:
            self._reactor.run()
        finally:
            if self.pool is not None:
                self.pool.stop()
            self._reactor.close()
            if self.watchdog is not None:
                self.watchdog.stop()
            with self.locks.hold(STORAGE):
                self.storage.close()
            if self.tracer is not None:
                self.tracer.close()
            log.info("server stopped")
            self.stopped.set()

    def stop(self) -> None:
        """Ask for a graceful shutdown (thread- and signal-safe)."""
        if self._reactor is not None:
            self._reactor.request_stop()

    def statistics(self) -> dict:
        """The `/stats` fields: lockstat per lock and per class (µs), the pool."""
        named = self.locks.locks()
        if self.pool is None:  # and each open connection's output lock
            named = named + self._reactor.locks()
        locks = sorted((lock.statistics() for lock in named), key=lambda s: s.name)
        if self.pool is not None:
            pool = self.pool.statistics()
            pool = {"workers": pool.workers, "busy": pool.busy, "queued": pool.queued}
        else:  # every connection's thread is its worker
            n = self._reactor.statistics()["open"]
            pool = {"workers": n, "busy": self._reactor.busy(), "queued": 0}
        return {
            "locking": self.locks.name,
            "locks": [_stat_fields(s) for s in locks],
            "classes": [_stat_fields(s) for s in class_statistics(locks)],
            "model": self.config.model,
            "pool": pool,
            "connections": self._reactor.statistics(),
            "order_violations": len(self.checker.reports) if self.checker else 0,
        }


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS settings (TLS 1.2 or newer), or None for plain TCP."""
    if not config.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


def _stat_fields(s) -> dict:
    return {
        "name": s.name, "class": s.cls, "acquisitions": s.acquisitions,
        "contended": s.contended, "wait_total_us": s.wait_total // 1000,
        "wait_max_us": s.wait_max // 1000, "hold_total_us": s.hold_total // 1000,
        "hold_max_us": s.hold_max // 1000,
    }  # fmt: skip
