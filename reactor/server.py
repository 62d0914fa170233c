"""Wiring: builds storage, locks and their instruments (trace, lock-order
checker, watchdog), sessions, the chat side and the I/O model from a Config.

Owns: the choice of I/O model (reactor/frontend.py `Frontend`), the order
things start and stop in, and the `/stats` snapshot. Must not: contain chat
logic or socket code. It is the one module that knows both the chat side
(reactor/chat) and the I/O models (reactor/net).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from reactor.actions import Action
from reactor.chat.checkpoint import Checkpointer
from reactor.chat.commands import Chat
from reactor.chat.commit import Committer
from reactor.chat.engine import Engine
from reactor.chat.owner import DatabaseOwner
from reactor.chat.sessions import Sessions
from reactor.chat.storage import Storage
from reactor.chat.store import Store
from reactor.config import Config
from reactor.frontend import Frontend
from reactor.kinds import Model
from reactor.net.loop import Reactor
from reactor.net.threaded.server import ThreadedServer
from reactor.stats import ServerStatistics, class_statistics
from reactor.sync.instrument import LockHooks, LockInstrument
from reactor.sync.lockdep import OrderChecker, Watchdog
from reactor.sync.locks import STORAGE, make_locking
from reactor.tracing.hooks import NULL_TRACE, TraceHooks
from reactor.tracing.recorder import Tracer

if TYPE_CHECKING:
    from reactor.cluster.node import ClusterNode

log = logging.getLogger("reactor.server")


class Server:
    """A whole chat server. `start()` binds; `serve()` runs the loop in the
    calling thread until `stop()` (from any thread) has finished."""

    def __init__(self, config: Config, instruments: Sequence[LockInstrument] = ()) -> None:
        """`instruments` watch the locks too, after the server's own (a test's)."""
        self.config = config
        self.node_name = ""
        if config.clustered:
            from reactor.cluster.node import default_node_name

            self.node_name = config.node or default_node_name(config.port)
        self.owner: DatabaseOwner | None = None
        if not config.clustered:
            self.owner = DatabaseOwner(config.db)
            self.owner.claim()  # before anything is opened: one server per database
        self.tracer: TraceHooks = NULL_TRACE
        own: list[LockInstrument] = []
        if config.trace:
            tracer = Tracer(
                config.trace, locking=config.locking,
                workers=0 if config.model is Model.INLINE else config.workers,
                sample=config.trace_sample, node=self.node_name,
            )  # fmt: skip
            self.tracer = tracer
        self.checker: OrderChecker | None = None
        if config.lockdep or self.tracer.enabled:
            self.checker = OrderChecker(self.tracer)
            own.append(self.checker)
        if self.tracer.enabled:
            own.append(tracer)
        self.watchdog: Watchdog | None = None
        if config.watchdog > 0:
            self.watchdog = Watchdog(config.watchdog, self.tracer)
            own.append(self.watchdog)
        self.hooks = LockHooks(*own, *instruments)
        # The inverted demo gives up after four times the watchdog's
        # threshold: long enough for the watchdog to see the cycle first.
        give_up = 4 * config.watchdog if config.watchdog > 0 else None
        self.locks = make_locking(config.locking, self.hooks, timeout=give_up)
        self.cluster: ClusterNode | None = None
        self.checkpointer: Checkpointer | None = None
        self.storage: Store
        self.sessions: Sessions
        if config.clustered:
            from reactor.cluster.node import ClusterNode

            assert config.bus is not None  # the CLI asks for both
            self.cluster = ClusterNode(
                config.db, config.bus, self.node_name, self.hooks, self._post
            )
            self.storage, self.sessions = self.cluster.storage, self.cluster.sessions
        else:
            self.storage = Storage(config.db, autocheckpoint=False)
            self.checkpointer = Checkpointer(config.db)
            self.sessions = Sessions()
        self._front: Frontend | None = None
        self._engine: Engine | None = None
        self.address: tuple[str, int] | None = None
        self.stopped = threading.Event()

    def start(self) -> tuple[str, int]:
        """Build the chat side and the I/O model, bind, start the workers."""
        config = self.config
        feed = self.cluster.feed if self.cluster else None
        committer = Committer(self.locks, self.storage, self.sessions, self._post, feed)
        chat = Chat(
            self.locks, self.storage, self.sessions, committer, auth=config.auth,
            max_login_failures=config.max_login_failures, statistics=self.statistics,
        )  # fmt: skip
        threaded = config.model is Model.THREADED
        pooled = config.model is Model.REACTOR
        self._engine = engine = Engine(
            chat, self._post, self.tracer, workers=config.workers if pooled else 0,
            lane_capacity=config.login_lane,
        )  # fmt: skip
        front: Frontend
        if threaded:
            front = ThreadedServer(config, engine, self.hooks, self.tracer)
        else:
            front = Reactor(config, engine, self.tracer, tls_context(config))
        self._front = front
        self.address = front.bind()
        if self.cluster is not None:
            self.cluster.open(self.locks, committer)
        engine.start()
        if self.checkpointer is not None:
            self.checkpointer.start()
        if self.watchdog is not None:
            self.watchdog.start()
        log.info(
            "listening on %s:%d (%s, locking %s, %s %s%s%s)",
            *self.address, front.name, self.locks.name,
            f"node {self.node_name}, store" if self.cluster else "db", _shown(config.db),
            f", trace {config.trace}" if self.tracer.enabled else "",
            ", TLS" if config.tls_cert else "",
        )  # fmt: skip
        irc = getattr(front, "irc_address", None)
        if irc is not None:  # after the line above: tools read the first "listening on"
            log.info("IRC listening on %s:%d", *irc)
        return self.address

    def _post(self, actions: Sequence[Action]) -> None:
        assert self._front is not None
        self._front.post(actions)

    def serve(self) -> None:
        """Run the I/O model here; on return everything is flushed and closed."""
        assert self._front is not None and self._engine is not None, "start() first"
        try:
            self._front.run()
        finally:
            if self.cluster is not None:
                self.cluster.quiet()
            self._engine.stop()
            self._front.close()
            if self.watchdog is not None:
                self.watchdog.stop()
            if self.checkpointer is not None:
                self.checkpointer.stop()
            with self.locks.hold(STORAGE):
                try:
                    self.storage.close()
                except self.storage.Error as exc:
                    log.error("closing the store failed: %s", exc)
            if self.cluster is not None:
                self.cluster.close()
            if self.owner is not None:
                self.owner.release()
            if isinstance(self.tracer, Tracer):
                self.tracer.close()
            log.info("server stopped")
            self.stopped.set()

    def stop(self) -> None:
        """Ask for a graceful shutdown (thread- and signal-safe)."""
        if self._front is not None:
            self._front.request_stop()

    def statistics(self) -> ServerStatistics:
        """The `/stats` snapshot: lockstat per lock and per class, who runs
        commands, the connections (counters read without their locks: a
        snapshot may be a pass behind)."""
        assert self._front is not None
        front = self._front.statistics()
        named = [lock.statistics() for lock in self.locks.locks()]
        named += self.storage.lock_statistics()
        locks = tuple(sorted((*named, *front.locks), key=lambda s: s.name))
        return ServerStatistics(
            locking=str(self.locks.name),
            model=str(self.config.model),
            locks=locks,
            classes=class_statistics(locks),
            pool=front.pool,
            connections=front.connections,
            order_violations=len(self.checker.reports) if self.checker else 0,
            node=self.node_name,
            cluster=self.cluster.statistics() if self.cluster else None,
        )


def _shown(store: str) -> str:
    """`store` fit for a log: a PostgreSQL URL without its password."""
    scheme, sep, rest = store.partition("://")
    if sep and "@" in rest:
        who, _, where = rest.rpartition("@")
        return f"{scheme}://{who.partition(':')[0]}@{where}"
    return store


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS settings (TLS 1.2 or newer), or None for plain TCP."""
    if not config.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context
