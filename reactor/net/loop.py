"""The event loop: one thread, one `selectors` selector, every socket.

Owns: the selector and every client connection (non-blocking read and
write), timers (login timeout, close linger), graceful shutdown, and the
scheduling of each connection's commands on the pool, one batch at a time
per connection. Accepting is reactor/net/listener.py's, the hand-off to
the pool (or, `--model inline`, to this thread) and back
reactor/net/handoff.py's, a connection's output queue and slow-consumer
judgement reactor/net/outqueue.py's, the stop's phases
reactor/net/shutdown.py's. Must not: run a chat command, take a named lock,
or block, other than inline through the hand-off. The chat side talks to it
only through `post()`.

One pass of the loop: wait for events; read what is readable (lines become
queued commands); apply the actions workers posted, in order; fire due
timers; hand every idle connection with queued commands to the pool as one
batch; then write every connection whose output grew, at most WRITE_CAP
bytes each, watching for writability only while bytes remain.
"""

from __future__ import annotations

import enum
import functools
import logging
import selectors
import socket
import ssl
import time
from collections.abc import Sequence

from reactor import actions as act
from reactor import limits
from reactor.config import Config
from reactor.frontend import Dispatch
from reactor.kinds import ByeReason, Mode, Model
from reactor.net.addresses import AddressLimits
from reactor.net.busy import loop_clock
from reactor.net.connection import Closing, Connection, Life
from reactor.net.handoff import Handoff
from reactor.net.listener import Listener
from reactor.net.shutdown import Shutdown
from reactor.net.timers import Timers
from reactor.protocol import WELCOME
from reactor.stats import ConnectionStatistics, FrontStatistics
from reactor.tracing.hooks import NULL_TRACE, TraceHooks

log = logging.getLogger("reactor.net.loop")

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class _Timer(enum.IntEnum):
    LOGIN = 1  # the connection has this long to log in
    LINGER = 2  # after a bye: close even if the peer keeps its end open


class Reactor:
    """The loop, an I/O model (reactor/frontend.py `Frontend`). Create,
    `bind()`, then `run()` in the thread that owns it; `close()` after the
    pool has stopped."""

    def __init__(
        self,
        config: Config,
        dispatch: Dispatch,
        tracer: TraceHooks = NULL_TRACE,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        inline = config.model is Model.INLINE
        self.name = "inline reactor" if inline else f"reactor + {config.workers} workers"
        self._handoff = Handoff(dispatch, inline)
        self.tls = tls  # None for plain TCP
        self.dispatch = dispatch
        self.tracer = tracer
        self._trace_io = tracer if config.trace_io else NULL_TRACE
        self._sel = selectors.DefaultSelector()
        self._conns: dict[int, Connection] = {}
        self._next_id = 1
        self._timers: Timers[tuple[int, _Timer]] = Timers()
        self._dirty: set[Connection] = set()
        self._ready: set[Connection] = set()
        self._listener: Listener | None = None
        self._irc_listener: Listener | None = None  # --irc-port
        self.irc_address: tuple[str, int] | None = None
        self._open = 0  # open client sockets (closed ones may still have work)
        self._accepted = self._slow_consumers = self._rejected_full = 0
        self._irc_accepted = 0
        self._stop_requested = False
        self._stopping: Shutdown | None = None
        self._addresses = AddressLimits.for_config(config)
        self._sel.register(self._handoff.wakeup, READ, self._on_wake)

    # --- set-up and shutdown -------------------------------------------------------

    def bind(self) -> tuple[str, int]:
        """Open the listening socket; return the address really bound."""
        address = (self.config.ip, self.config.port)
        self._listener = Listener(
            self._sel, address, self._on_accept, self._refusal, say_bye=self.tls is None
        )
        if self.config.irc_port is not None:
            self._irc_listener = Listener(
                self._sel, (self.config.ip, self.config.irc_port),
                functools.partial(self._on_accept, irc=True), self._refusal, say_bye=False,
            )  # fmt: skip
            self.irc_address = self._irc_listener.address
        return self._listener.address

    def post(self, actions: Sequence[act.Action]) -> None:
        """Hand actions to the loop; safe from any thread."""
        self._handoff.post(actions)

    def request_stop(self) -> None:
        """Begin a graceful shutdown; safe from any thread or a signal handler."""
        self._stop_requested = True
        self._handoff.wakeup.wake()

    def _on_wake(self, mask: int) -> None:
        for action in self._handoff.drain():
            self._apply(action)

    # --- the loop -------------------------------------------------------------------

    def run(self) -> None:
        """Serve until a requested stop has finished."""
        self._handoff.own()
        self.tracer.thread_start()
        clock = loop_clock(self.tracer)
        while True:
            paused = min(
                (x.paused_until for x in (self._listener, self._irc_listener)
                 if x is not None and x.paused_until),
                default=0.0,
            )  # fmt: skip
            clock.asleep()
            events = self._sel.select(self._timers.wait(time.monotonic(), paused))
            clock.awake()
            for key, mask in events:
                key.data(mask)
            self._on_wake(0)  # actions posted while we handled events
            now = time.monotonic()
            for listener in (self._listener, self._irc_listener):
                if listener is not None:
                    listener.resume_if_due(now)
            self._fire_timers(now)
            if self._stop_requested and self._shutdown_step():
                break
            self._schedule()
            self._flush()
        clock.finish()
        self._close_all()

    def _schedule(self) -> None:
        """Hand every idle connection's queued items to the chat side, all
        in one call: to the pool, or run here (`--model inline`)."""
        batches = []
        for conn in self._ready:
            if conn.pending and not conn.running:
                batches.append((conn.session, conn.pending))
                conn.pending = []
                conn.batch_started()
                self._update_mask(conn)  # reading may resume
        self._ready.clear()
        if batches:
            for action in self._handoff.hand(batches):
                self._apply(action)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            if conn.sock is not None and not conn.handshaking:
                self._write(conn)

    # --- accept ----------------------------------------------------------------------

    def _refusal(self, address: str) -> ByeReason | None:
        """Why a new connection from `address` is turned away now, if it is."""
        if self._stop_requested:
            return ByeReason.SHUTDOWN
        if self._open >= self.config.max_clients or not self._addresses.may_open(address):
            self._rejected_full += 1
            return ByeReason.SERVER_FULL
        return None

    def _on_accept(self, sock: socket.socket, peer: str, irc: bool = False) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        cid, self._next_id = self._next_id, self._next_id + 1
        session = self.dispatch.open_session(cid, peer)
        conn = Connection(cid, sock, session, self.config, time.monotonic(), irc)
        conn.address = peer.rpartition(":")[0]
        self._addresses.opened(cid, conn.address)
        if self.tls is not None:
            conn.handshake_started()
        conn.handler = functools.partial(self._on_conn_event, conn)
        self._conns[cid] = conn
        self._open += 1
        self._accepted += 1
        self._irc_accepted += irc
        self._sel.register(sock, READ, conn.handler)
        conn.mask = READ
        deadline = time.monotonic() + self.config.login_timeout
        self._timers.add(deadline, (cid, _Timer.LOGIN))
        log.info("%sconnection %d from %s", "IRC " if irc else "", cid, peer)
        if not irc:
            conn.out.emit(WELCOME)
            self._dirty.add(conn)

    # --- read ------------------------------------------------------------------------

    def _on_conn_event(self, conn: Connection, mask: int) -> None:
        if conn.handshaking:
            self._handshake(conn)
            return
        if mask & READ and conn.sock is not None:
            self._on_readable(conn)
        if mask & WRITE and conn.sock is not None:
            self._write(conn)

    def _on_readable(self, conn: Connection) -> None:
        try:
            data = conn.recv_some(limits.RECV_SIZE)
        except OSError as exc:
            log.info("connection %d reset: %s", conn.id, exc)
            self._drop(conn)
            return
        if data is None:
            return
        if not data:
            conn.peer_closed()  # finish its commands, flush replies, then close
            self._update_mask(conn)
            self._maybe_close(conn)
            return
        self._trace_io.io("io_read", conn.id, len(data))
        if not conn.reading:
            return  # closing: input after a bye is discarded
        now = time.monotonic()
        conn.pending += self._addresses.check_logins(
            conn.address, conn.intake.take_lines(data, now), now
        )
        if conn.pending:
            self._ready.add(conn)
            if len(conn.pending) >= limits.MAX_PENDING_COMMANDS:
                self._update_mask(conn)  # stop reading until workers catch up

    def _handshake(self, conn: Connection) -> None:
        """TLS: advance the handshake; once done, serve as usual."""
        try:
            conn.want = conn.handshake()
        except OSError as exc:  # ssl.SSLError too: not TLS, bad version, reset...
            log.info("connection %d: TLS handshake failed: %s", conn.id, exc)
            self._drop(conn)
            return
        self._update_mask(conn)
        if not conn.handshaking:
            self._dirty.add(conn)  # the welcome line waits
            self._on_readable(conn)  # the first command may have come with it

    # --- actions from workers ------------------------------------------------------------

    def _apply(self, action: act.Action) -> None:
        if isinstance(action, act.Deliver):
            self._deliver(action)
            return
        conn = self._conns.get(action.conn)
        if conn is None:
            return
        if isinstance(action, act.Done):
            conn.batch_done()
            if conn.out.release_held():
                self._dirty.add(conn)
            if Life.LOGIN_EXPIRED in conn.life and not conn.registered and not conn.closing:
                self._login_timeout(conn)
            if conn.pending:
                self._ready.add(conn)
            self._maybe_close(conn)
        elif isinstance(action, act.Close):
            if conn.sock is not None and not conn.bye_sent:
                conn.pending = [
                    i for i in conn.pending if isinstance(i, act.TextAck | act.Disconnect)
                ]
                self._say_bye(conn, action.reason)
        elif conn.out.apply(action):
            self._dirty.add(conn)
            if isinstance(action, act.LoggedIn):
                self._addresses.logged_in(conn.id)
            if conn.irc is not None and conn.irc.close_requested and not conn.bye_sent:
                self._say_bye(conn, None)  # its ERROR line is queued

    def _deliver(self, action: act.Deliver) -> None:
        msg = action.message
        encoded: dict[Mode, bytes] = {}
        limit = self.config.max_outbuf
        for cid in action.conns:
            conn = self._conns.get(cid)
            if conn is None or not conn.out.deliver(msg, encoded, conn.running):
                continue
            if conn.out.over_limit(limit) and conn.sock is not None and not conn.handshaking:
                # The limit holds when bytes are queued, not only when the
                # socket next turns writable: write now, and if the kernel
                # refuses while the queue is over the limit, it is a slow
                # consumer (judged in _write).
                self._write(conn)
            else:
                self._dirty.add(conn)

    def _slow_consumer(self, conn: Connection) -> None:
        self._slow_consumers += 1
        log.warning(
            "%s is not reading (%d bytes queued): dropped as slow consumer",
            conn.out.user or f"connection {conn.id}",
            len(conn.out),
        )
        # Its messages stay stored and are replayed at the next login.
        conn.out.cut()
        self._say_bye(conn, ByeReason.SLOW_CONSUMER)

    def _say_bye(self, conn: Connection, reason: ByeReason | None) -> None:
        conn.say_bye(reason)
        self._dirty.add(conn)
        self._update_mask(conn)
        deadline = time.monotonic() + limits.CLOSE_LINGER_SECONDS
        self._timers.add(deadline, (conn.id, _Timer.LINGER))

    # --- write ----------------------------------------------------------------------------

    def _write(self, conn: Connection) -> None:
        if len(conn.out):
            try:
                written = conn.send_some(limits.WRITE_CAP)
            except OSError as exc:
                log.info("connection %d write failed: %s", conn.id, exc)
                self._drop(conn)
                return
            if written.sent:
                self._trace_io.io("io_write", conn.id, written.sent)
            if written.acked and conn.out.mode is Mode.TEXT:  # after a bye too: they got out
                conn.queue_text_ack(written.acked)
                self._ready.add(conn)
            if conn.out.slow(self.config.max_outbuf):
                self._slow_consumer(conn)
        self._update_mask(conn)
        self._maybe_close(conn)

    def _update_mask(self, conn: Connection) -> None:
        conn.watch(self._sel, self.config.max_outbuf)

    # --- closing ----------------------------------------------------------------------------

    def _maybe_close(self, conn: Connection) -> None:
        """Close once a closing connection has nothing left to send or run."""
        step = conn.close_step()
        if step is Closing.DROP:
            self._drop(conn)
        elif step is Closing.DRAINING:
            self._update_mask(conn)
        elif step is Closing.GONE:
            self._conns.pop(conn.id, None)
            self._dirty.discard(conn)

    def _drop(self, conn: Connection) -> None:
        """Close the socket now; the connection's last work still runs."""
        if not conn.close_socket(self._sel):
            return
        self._open -= 1
        self._addresses.closed(conn.id)
        log.info("connection %d closed (%s)", conn.id, conn.out.user or "not logged in")
        conn.pending = [i for i in conn.pending if not isinstance(i, act.Disconnect)]
        conn.pending.append(act.Disconnect())
        self._ready.add(conn)
        self._maybe_close(conn)

    # --- timers ---------------------------------------------------------------------------------

    def _fire_timers(self, now: float) -> None:
        for cid, kind in self._timers.due(now):
            conn = self._conns.get(cid)
            if conn is None or conn.sock is None:
                continue
            if kind is _Timer.LOGIN and conn.handshaking:
                log.info("connection %d: TLS handshake not done in time", conn.id)
                self._drop(conn)
            elif kind is _Timer.LOGIN and not conn.registered and not conn.closing:
                if conn.running:
                    conn.login_expired()  # decided when its batch is done
                else:
                    self._login_timeout(conn)
            elif kind is _Timer.LINGER and conn.closing:
                self._drop(conn)

    def _login_timeout(self, conn: Connection) -> None:
        log.info("connection %d did not log in in time", conn.id)
        conn.pending = [i for i in conn.pending if isinstance(i, act.Disconnect)]
        self._say_bye(conn, ByeReason.IDLE)

    def _shutdown_step(self) -> bool:
        """One pass of a graceful stop (reactor/net/shutdown.py); True once
        the loop may end."""
        now = time.monotonic()
        if self._stopping is None:
            self._stopping = Shutdown(now)
            log.info("shutting down: answering what is in flight")
            for listener in (self._listener, self._irc_listener):
                if listener is not None:
                    listener.close()
            self._listener = self._irc_listener = None
            for conn in self._conns.values():
                conn.stop_reading()
                self._update_mask(conn)
        bye = functools.partial(self._say_bye, reason=ByeReason.SHUTDOWN)
        return self._stopping.step(now, self._conns.values(), bye)

    def _close_all(self) -> None:
        self._flush()
        for conn in list(self._conns.values()):
            self._drop(conn)
        for listener in (self._listener, self._irc_listener):
            if listener is not None:
                listener.close()

    def close(self) -> None:
        """Release the selector and the wake-up pair, once no worker posts."""
        self._sel.close()
        self._handoff.wakeup.close()

    def statistics(self) -> FrontStatistics:
        """Open connections, the counters and the pool (read from any thread)."""
        every = list(self._conns.values())
        queued = sum(len(c.out) for c in every)
        irc_open = sum(1 for c in every if c.irc is not None and c.sock is not None)
        conns = ConnectionStatistics(
            self._open, self._accepted, self._slow_consumers, self._rejected_full, queued,
            irc_open, self._irc_accepted,
        )  # fmt: skip
        return FrontStatistics(self.dispatch.statistics(), conns)
