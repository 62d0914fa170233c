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

import heapq
import logging
import selectors
import socket
import threading
import time
from collections.abc import Sequence

from reactor import actions as act
from reactor import limits
from reactor.chat.commands import Chat
from reactor.chat.pool import item_name, run_batch
from reactor.config import Config
from reactor.net.listener import Listener
from reactor.net.loop import WELCOME
from reactor.net.threaded.conn import ThreadConn, timeval
from reactor.net.threaded.writer import Output
from reactor.net.wakeup import Wakeup
from reactor.protocol import TEXT, Bye, encode
from reactor.sync.locks import Hooks, NamedLock

log = logging.getLogger("reactor.net.threaded.server")


class ThreadedServer:
    """The model's front end, in place of the reactor and the pool.
    `bind()`, then `run()` in the accepting thread; `request_stop()` from any."""

    def __init__(self, config: Config, chat: Chat, hooks: Hooks, tracer=None) -> None:
        self.config = config
        self.chat = chat
        self.hooks = hooks
        self.tracer = tracer
        # conn id -> ThreadConn. Changed only by single dict operations (insert by
        # the accepting thread, pop by the connection's own thread), each of
        # which CPython makes atomic (the GIL, or the dict's own lock in
        # free-threaded builds), so lookups from any thread need no lock.
        self._conns: dict[int, ThreadConn] = {}
        self._next_id = 1
        self._sel = selectors.DefaultSelector()
        self._wakeup = Wakeup()  # other threads -> accepting thread: linger timers
        self._sel.register(self._wakeup, selectors.EVENT_READ)
        self._listener: Listener | None = None
        self._timers: list[tuple[float, int]] = []  # (deadline, conn id): end a linger
        self.output = Output(chat, self.post, tracer)  # writes the queues (threadwrite.py)
        self._stop_requested = False
        self.counters = {"accepted": 0, "slow_consumers": 0, "rejected_full": 0}

    # --- the accepting thread --------------------------------------------------

    def bind(self) -> tuple[str, int]:
        address = (self.config.ip, self.config.port)
        self._listener = Listener(self._sel, address, self._accepted, self._refusal)
        return self._listener.address

    def request_stop(self) -> None:
        """Begin a graceful shutdown; safe from any thread or a signal handler."""
        self._stop_requested = True
        self._wakeup.wake()

    def run(self) -> None:
        """Accept and end lingering closes until a stop is requested; then
        shut down gracefully and return once every connection thread ended."""
        if self.tracer is not None:
            self.tracer.thread_start()
        while not self._stop_requested:
            now = time.monotonic()
            timeout = limits.MAX_POLL_SECONDS
            if self._timers:
                timeout = min(timeout, max(0.0, self._timers[0][0] - now))
            if self._listener.paused_until:
                timeout = min(timeout, max(0.0, self._listener.paused_until - now))
            for key, mask in self._sel.select(timeout):
                if key.data is None:
                    for deadline_conn in self._wakeup.drain():
                        heapq.heappush(self._timers, deadline_conn)
                else:
                    key.data(mask)
            now = time.monotonic()
            self._listener.resume_if_due(now)
            while self._timers and self._timers[0][0] <= now:
                conn = self._conns.get(heapq.heappop(self._timers)[1])
                if conn is not None:
                    self.output.shut(conn, socket.SHUT_RDWR)  # linger over: wake its reader
        self._shutdown()
        if self.tracer is not None:
            self.tracer.thread_end()

    def _refusal(self) -> str | None:
        if self._stop_requested:
            return "shutdown"
        if len(self._conns) >= self.config.max_clients:
            self.counters["rejected_full"] += 1
            return "server_full"
        return None

    def _accepted(self, sock: socket.socket, peer: str) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = ThreadConn(self._next_id, sock, peer, self.config, self.hooks)
        self._next_id += 1
        conn.thread = threading.Thread(
            target=self._serve, args=(conn,), name=f"conn-{conn.id}", daemon=True
        )
        self._conns[conn.id] = conn
        try:
            conn.thread.start()
        except RuntimeError as exc:  # "can't start new thread": out of threads or memory
            self._conns.pop(conn.id, None)
            self.counters["rejected_full"] += 1
            log.error("refused %s: cannot start its thread (%s)", peer, exc)
            try:
                sock.send(encode(Bye("server_full"), TEXT), socket.MSG_DONTWAIT)
            except OSError:
                pass
            sock.close()
            return
        self.counters["accepted"] += 1
        log.info("connection %d from %s", conn.id, peer)

    def _shutdown(self) -> None:
        """Stop accepting; let each connection answer what it has sent (its
        socket is shut for reading: its thread reads what is buffered, runs
        it, then sees end of input and says `bye shutdown`); wait for the
        threads at most SHUTDOWN_GRACE_SECONDS, then cut what is left."""
        log.info("shutting down: answering what is in flight")
        self._listener.close()
        end = time.monotonic() + limits.SHUTDOWN_GRACE_SECONDS
        conns = list(self._conns.values())
        for conn in conns:
            with conn.out:
                conn.stopping = True
            self.output.shut(conn, socket.SHUT_RD)  # wakes a reader blocked in recv()
        for conn in conns:
            conn.thread.join(max(0.0, end - time.monotonic()))
        for conn in conns:  # late ones, and write-behind threads still at work
            self.output.shut(conn, socket.SHUT_RDWR)
            for thread in (conn.thread, conn.writer):
                if thread is not None:
                    thread.join(max(0.0, end + limits.SHUTDOWN_LINGER_SECONDS - time.monotonic()))

    def close(self) -> None:
        """Release the selector and the wake-up pair."""
        self._sel.close()
        self._wakeup.close()

    def statistics(self) -> dict:
        return {"open": len(self._conns), **self.counters}

    def locks(self) -> list[NamedLock]:
        """The ``outbuf`` lock of every open connection (for /stats)."""
        return [c.out for c in list(self._conns.values())]

    def busy(self) -> int:
        """Connection threads running a batch now (a snapshot)."""
        return sum(c.running for c in list(self._conns.values()))

    # --- one connection's thread -------------------------------------------------

    def _serve(self, conn: ThreadConn) -> None:
        tracer = self.tracer
        if tracer is not None:
            tracer.thread_start()
        try:
            self._read_loop(conn)
        except Exception:
            log.exception("connection %d failed", conn.id)
        try:
            self._batch(conn, [act.Disconnect()])
        except Exception:
            log.exception("connection %d: logging out failed", conn.id)
        finally:
            self._conns.pop(conn.id, None)
            with conn.out:
                conn.owner_done = True
                last = not conn.writing
                if last:
                    conn.closed = True
            if last:
                conn.sock.close()
            log.info("connection %d closed (%s)", conn.id, conn.user or "not logged in")
            if tracer is not None:
                tracer.thread_end()

    def _read_loop(self, conn: ThreadConn) -> None:
        with conn.out:
            conn.append(encode(WELCOME, TEXT))
        self.output.flush(conn)
        login_by = time.monotonic() + self.config.login_timeout
        timeout = None
        while True:
            wanted = 0.0  # wait forever (a bye's linger ends by shutdown())
            # `user` is read unlocked: only this thread's own login sets it.
            if conn.user is None and not conn.bye_sent:
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
                with conn.out:
                    stopping = conn.stopping and not conn.bye_sent
                if stopping:  # shut for reading by the shutdown: all is answered
                    self._bye(conn, "shutdown")
                return
            self._check_login(conn, login_by)  # however much it sends meanwhile
            items = conn.intake.take_lines(data, time.monotonic())
            if not items:
                continue
            with conn.out:
                if conn.bye_sent or conn.dead:
                    continue  # input after a bye is discarded
                conn.running = True
            self._batch(conn, items)

    def _check_login(self, conn: ThreadConn, login_by: float) -> None:
        if conn.user is None and not conn.bye_sent and time.monotonic() >= login_by:
            log.info("connection %d did not log in in time", conn.id)
            self._bye(conn, "idle")

    def _batch(self, conn: ThreadConn, items: list) -> None:
        traced = None
        if self.tracer is not None:
            traced = [self.tracer.new_task(item_name(i), conn.id) for i in items]
        run_batch(self.chat, self.post, self.tracer, conn.state, items, traced)
        self.output.flush_touched()

    def _bye(self, conn: ThreadConn, reason: str | None) -> None:
        with conn.out:
            if conn.bye_sent:
                return
            conn.say_bye(reason)
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
            with conn.out:
                self._apply(conn, action)

    def _apply(self, conn: ThreadConn, action: act.Action) -> None:
        if isinstance(action, act.Emit):
            conn.append(encode(action.event, conn.mode), exempt=True)
        elif isinstance(action, act.Replay):
            for m in action.messages:
                conn.append_message(m, encode(m, conn.mode), exempt=True)
        elif isinstance(action, act.SetMode):
            conn.mode = action.mode
        elif isinstance(action, act.LoggedIn):
            conn.user = action.user
        elif isinstance(action, act.Close):
            if not conn.bye_sent:
                conn.say_bye(action.reason)
                self.output.later(self._linger, conn)
        elif isinstance(action, act.Done):
            conn.running = False
            held, conn.held = conn.held, []
            for msg in held:
                conn.append_message(msg, encode(msg, conn.mode))

    def _deliver(self, action: act.Deliver) -> None:
        msg = action.message
        encoded: dict[str, bytes] = {}
        for cid in action.conns:
            conn = self._conns.get(cid)
            if conn is None:
                continue
            self.output.touch(conn)
            with conn.out:
                if conn.bye_sent or conn.dead:
                    continue
                if conn.held or (conn.running and msg.sender == conn.user):
                    conn.held.append(msg)  # its `ok` first (see Reactor._deliver)
                    continue
                data = encoded.get(conn.mode)
                if data is None:
                    data = encoded[conn.mode] = encode(msg, conn.mode)
                conn.append_message(msg, data)
                if conn.behind and len(conn.buf) - conn.exempt > self.config.max_outbuf:
                    self._slow_consumer(conn)

    def _slow_consumer(self, conn: ThreadConn) -> None:
        """Caller holds `conn.out`: the kernel refused bytes and what waits
        is over the limit. Its messages stay stored for replay."""
        self.counters["slow_consumers"] += 1
        who, queued = conn.user or f"connection {conn.id}", len(conn.buf)
        conn.cut()
        conn.say_bye("slow_consumer")
        note = "%s is not reading (%d bytes queued): dropped as slow consumer"
        self.output.later(log.warning, note, who, queued)
        self.output.later(self._linger, conn)

    def _linger(self, conn: ThreadConn) -> None:
        """After a bye: the accepting thread wakes the reader if the peer has
        not closed within CLOSE_LINGER_SECONDS."""
        self._wakeup.post([(time.monotonic() + limits.CLOSE_LINGER_SECONDS, conn.id)])
