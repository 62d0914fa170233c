"""The thread-per-client I/O model (`--model threaded`): the course project's
design done right, so students and the benchmark can compare it with the
reactor on equal terms (same protocol, handlers, locks, storage and batch
procedure, reactor/chat/pool.py `run_batch`).

Owns: the accepting thread (which also ends lingering closes and runs the
graceful shutdown), one thread per connection that reads its blocking socket
and runs its commands in place, applying actions to connections' output
queues (from any thread, under the queue's leaf lock ``outbuf:<id>``,
possibly under ``delivery``, so in id order), slow consumers and login
timeouts for this model. Must not: run chat logic, or write to a socket:
writing happens after every chat lock is released (reactor/net/threaded/writer.py).
See docs/architecture.md.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Sequence

from reactor import actions as act
from reactor import limits
from reactor.config import Config
from reactor.frontend import Dispatch
from reactor.kinds import ByeReason, Mode
from reactor.net.addresses import AddressLimits
from reactor.net.listener import Listener
from reactor.net.threaded.conn import ThreadConn, timeval
from reactor.net.threaded.writer import Output
from reactor.net.timers import Timers
from reactor.net.wakeup import Wakeup
from reactor.protocol import TEXT, WELCOME, Bye, encode
from reactor.stats import ConnectionStatistics, FrontStatistics, PoolStatistics
from reactor.sync.instrument import LockHooks
from reactor.sync.locks import NamedLock
from reactor.tracing.hooks import NULL_TRACE, TraceHooks

log = logging.getLogger("reactor.net.threaded.server")


class ThreadedServer:
    """The model's front end (reactor/frontend.py `Frontend`), in place of
    the reactor and the pool.
    `bind()`, then `run()` in the accepting thread; `request_stop()` from any."""

    def __init__(
        self, config: Config, dispatch: Dispatch, hooks: LockHooks, tracer: TraceHooks = NULL_TRACE
    ) -> None:
        self.config = config
        self.name = "thread per client"
        self.dispatch = dispatch
        self.hooks = hooks
        self.tracer = tracer
        # conn id -> ThreadConn. Changed only by single dict operations (insert by
        # the accepting thread, pop by the connection's own thread), each of
        # which CPython makes atomic (the GIL, or the dict's own lock in
        # free-threaded builds), so lookups from any thread need no lock.
        self._conns: dict[int, ThreadConn] = {}
        self._next_id = 1
        self._sel = selectors.DefaultSelector()
        # Other threads -> the accepting thread: (deadline, conn id) of lingers.
        self._wakeup: Wakeup[tuple[float, int]] = Wakeup()
        self._sel.register(self._wakeup, selectors.EVENT_READ)
        self._listener: Listener | None = None
        self._timers: Timers[int] = Timers()  # conn id: its linger is over
        self.output = Output(dispatch, tracer)  # writes the queues (writer.py)
        self._stop_requested = False
        self._accepted = self._slow_consumers = self._rejected_full = 0
        # Guards _addresses, the per-address counts, shared by the accepting
        # thread and every connection's thread. Leaf lock: nothing is taken
        # under it, and it is never held while taking another.
        self._addresses_lock = NamedLock("addresses", hooks)
        self._addresses = AddressLimits.for_config(config)

    # --- the accepting thread --------------------------------------------------

    def bind(self) -> tuple[str, int]:
        """Open the listening socket; return the address really bound."""
        address = (self.config.ip, self.config.port)
        self._listener = Listener(self._sel, address, self._on_accept, self._refusal)
        return self._listener.address

    def request_stop(self) -> None:
        """Begin a graceful shutdown; safe from any thread or a signal handler."""
        self._stop_requested = True
        self._wakeup.wake()

    def run(self) -> None:
        """Accept and end lingering closes until a stop is requested; then
        shut down gracefully and return once every connection thread ended."""
        self.tracer.thread_start()
        listener = self._listener
        assert listener is not None, "bind() first"
        while not self._stop_requested:
            timeout = self._timers.wait(time.monotonic(), listener.paused_until)
            for key, mask in self._sel.select(timeout):
                if key.data is None:
                    for deadline, cid in self._wakeup.drain():
                        self._timers.add(deadline, cid)
                else:
                    key.data(mask)
            now = time.monotonic()
            listener.resume_if_due(now)
            for cid in self._timers.due(now):
                conn = self._conns.get(cid)
                if conn is not None:
                    self.output.shut(conn, socket.SHUT_RDWR)  # linger over: wake its reader
        self._shutdown(listener)
        self.tracer.thread_end()

    def _refusal(self, address: str) -> ByeReason | None:
        if self._stop_requested:
            return ByeReason.SHUTDOWN
        with self._addresses_lock:
            crowded = not self._addresses.may_open(address)
        if len(self._conns) >= self.config.max_clients or crowded:
            self._rejected_full += 1
            return ByeReason.SERVER_FULL
        return None

    def _on_accept(self, sock: socket.socket, peer: str) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid, self._next_id = self._next_id, self._next_id + 1
        conn = ThreadConn(cid, sock, self.dispatch.open_session(cid, peer), self.config, self.hooks)
        conn.thread = threading.Thread(
            target=self._serve, args=(conn,), name=f"conn-{conn.id}", daemon=True
        )
        self._conns[conn.id] = conn
        conn.address = peer.rpartition(":")[0]
        with self._addresses_lock:
            self._addresses.opened(cid, conn.address)
        try:
            conn.thread.start()
        except RuntimeError as exc:  # "can't start new thread": out of threads or memory
            self._conns.pop(conn.id, None)
            with self._addresses_lock:
                self._addresses.closed(cid)
            self._rejected_full += 1
            log.error("refused %s: cannot start its thread (%s)", peer, exc)
            try:
                sock.send(encode(Bye(ByeReason.SERVER_FULL), TEXT), socket.MSG_DONTWAIT)
            except OSError:
                pass
            sock.close()
            return
        self._accepted += 1
        log.info("connection %d from %s", conn.id, peer)

    def _shutdown(self, listener: Listener) -> None:
        """Stop accepting; let each connection answer what it has sent (its
        socket is shut for reading: its thread reads what is buffered, runs
        it, then sees end of input and says `bye shutdown`); wait for the
        threads at most SHUTDOWN_GRACE_SECONDS, then cut what is left."""
        log.info("shutting down: answering what is in flight")
        listener.close()
        end = time.monotonic() + limits.SHUTDOWN_GRACE_SECONDS
        conns = list(self._conns.values())
        for conn in conns:
            with conn.lock:
                conn.stopping = True
            self.output.shut(conn, socket.SHUT_RD)  # wakes a reader blocked in recv()
        for conn in conns:
            if conn.thread is not None:
                conn.thread.join(max(0.0, end - time.monotonic()))
        for conn in conns:  # late ones, and write-behind threads still at work
            self.output.shut(conn, socket.SHUT_RDWR)
            for thread in (conn.thread, conn.writer):
                if thread is not None and thread.ident is not None:
                    thread.join(max(0.0, end + limits.SHUTDOWN_LINGER_SECONDS - time.monotonic()))

    def close(self) -> None:
        """Release the selector and the wake-up pair."""
        self._sel.close()
        self._wakeup.close()

    def statistics(self) -> FrontStatistics:
        """Connections; every connection's thread is its worker; the
        ``outbuf`` lock of every open connection (a snapshot)."""
        conns = list(self._conns.values())
        pool = PoolStatistics(len(conns), sum(c.running for c in conns), 0)
        queued = sum(len(c.out) for c in conns)
        counters = ConnectionStatistics(
            len(conns), self._accepted, self._slow_consumers, self._rejected_full, queued
        )
        return FrontStatistics(pool, counters, tuple(c.lock.statistics() for c in conns))

    # --- one connection's thread -------------------------------------------------

    def _serve(self, conn: ThreadConn) -> None:
        self.tracer.thread_start()
        try:
            self._read_loop(conn)
        except Exception:
            log.exception("connection %d failed", conn.id)
        try:
            self.dispatch.run(conn.session, [act.Disconnect()])
            self.output.flush_touched()
        except Exception:
            log.exception("connection %d: logging out failed", conn.id)
        finally:
            self._conns.pop(conn.id, None)
            with self._addresses_lock:
                self._addresses.closed(conn.id)
            with conn.lock:
                conn.owner_done = True
                last = not conn.writing
                if last:
                    conn.closed = True
            if last:
                conn.sock.close()
            log.info("connection %d closed (%s)", conn.id, conn.out.user or "not logged in")
            self.tracer.thread_end()

    def _read_loop(self, conn: ThreadConn) -> None:
        with conn.lock:
            conn.out.emit(WELCOME)
        self.output.flush(conn)
        login_by = time.monotonic() + self.config.login_timeout
        timeout = None
        while True:
            wanted = 0.0  # wait forever (a bye's linger ends by shutdown())
            # `user` is read unlocked: only this thread's own login sets it.
            if conn.out.user is None and not conn.out.closed:
                wanted = max(0.001, login_by - time.monotonic())
            if wanted != timeout:
                timeout = wanted
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(timeout))
            try:
                data = conn.sock.recv(limits.RECV_SIZE)
            except (BlockingIOError, TimeoutError):  # SO_RCVTIMEO expired
                self._check_login(conn, login_by)
                continue
            except OSError as exc:
                log.info("connection %d reset: %s", conn.id, exc)
                return
            if not data:
                with conn.lock:
                    stopping = conn.stopping and not conn.out.closed
                if stopping:  # shut for reading by the shutdown: all is answered
                    self._bye(conn, ByeReason.SHUTDOWN)
                return
            self._check_login(conn, login_by)  # however much it sends meanwhile
            now = time.monotonic()
            items = conn.intake.take_lines(data, now)
            if not items:
                continue
            with self._addresses_lock:
                items = self._addresses.check_logins(conn.address, items, now)
            with conn.lock:
                if conn.out.closed:
                    continue  # input after a bye is discarded
                conn.running = True
            was_in = conn.out.user is not None
            self.dispatch.run(conn.session, items)
            if not was_in and conn.out.user is not None:
                with self._addresses_lock:
                    self._addresses.logged_in(conn.id)
            self.output.flush_touched()

    def _check_login(self, conn: ThreadConn, login_by: float) -> None:
        if conn.out.user is None and not conn.out.closed and time.monotonic() >= login_by:
            log.info("connection %d did not log in in time", conn.id)
            self._bye(conn, ByeReason.IDLE)

    def _bye(self, conn: ThreadConn, reason: ByeReason | None) -> None:
        with conn.lock:
            if conn.out.closed:
                return
            conn.out.bye(reason)
        self._linger(conn)
        self.output.touch(conn)
        self.output.flush_touched()

    # --- actions (any thread; may be under ``delivery``: append only) -------------

    def post(self, actions: Sequence[act.Action]) -> None:
        """Apply actions now, in the calling thread (which may hold
        ``delivery``: appending only; the writing comes later)."""
        for action in actions:
            if isinstance(action, act.Deliver):
                self._deliver(action)
                continue
            conn = self._conns.get(action.conn)
            if conn is None:
                continue
            self.output.touch(conn)
            with conn.lock:
                self._apply(conn, action)

    def _apply(self, conn: ThreadConn, action: act.Action) -> None:
        if isinstance(action, act.Close):
            if not conn.out.closed:
                conn.out.bye(action.reason)
                self.output.later(self._linger, conn)
        elif isinstance(action, act.Done):
            conn.running = False
            conn.out.release_held()
        else:
            conn.out.apply(action)

    def _deliver(self, action: act.Deliver) -> None:
        msg = action.message
        encoded: dict[Mode, bytes] = {}
        for cid in action.conns:
            conn = self._conns.get(cid)
            if conn is None:
                continue
            self.output.touch(conn)
            with conn.lock:
                if conn.out.deliver(msg, encoded, conn.running) and conn.out.slow(
                    self.config.max_outbuf
                ):
                    self._slow_consumer(conn)

    def _slow_consumer(self, conn: ThreadConn) -> None:
        """Caller holds `conn.lock`: the kernel refused bytes and what waits
        is over the limit. Its messages stay stored for replay."""
        self._slow_consumers += 1
        who, queued = conn.out.user or f"connection {conn.id}", len(conn.out)
        conn.out.cut()
        conn.out.bye(ByeReason.SLOW_CONSUMER)
        note = "%s is not reading (%d bytes queued): dropped as slow consumer"
        self.output.later(log.warning, note, who, queued)
        self.output.later(self._linger, conn)

    def _linger(self, conn: ThreadConn) -> None:
        """After a bye: the accepting thread wakes the reader if the peer has
        not closed within CLOSE_LINGER_SECONDS."""
        self._wakeup.post([(time.monotonic() + limits.CLOSE_LINGER_SECONDS, conn.id)])
