"""The thread-per-client I/O model (`--model threaded`): the course project's
design done right, so students and the benchmark can compare it with the
reactor on equal terms (same protocol, handlers, locks, storage and batch
procedure, reactor/workers.py `run_batch`).

Owns: the accepting thread (which also ends lingering closes and runs the
graceful shutdown), one thread per connection that reads its blocking socket
and runs its commands in place, each connection's output queue and the rule
for who writes it, text-mode acks, slow consumers and login timeouts for
this model. Must not: run chat logic, hold a named chat lock while writing
to a socket, or close a socket from any thread but the last one using it
(others only `shutdown()` it, which wakes its reader).

Output: any thread may append to any connection's queue (under its leaf
lock ``outbuf:<id>``, possibly under ``delivery``, so in id order); it writes
only after releasing every chat lock, without blocking, and hands what the
kernel refused to a write-behind thread. See docs/architecture.md.
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
from reactor.commands import Chat
from reactor.config import Config
from reactor.listener import Listener
from reactor.locks import Hooks, NamedLock
from reactor.loop import WELCOME
from reactor.protocol import TEXT, encode
from reactor.threadconn import ThreadConn, timeval
from reactor.wakeup import Wakeup
from reactor.workers import item_name, run_batch

log = logging.getLogger("reactor.threaded")


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
        self._touched = threading.local()  # per thread: connections appended to
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
                    self._shut(conn, socket.SHUT_RDWR)  # linger over: wake its reader
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
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(limits.SEND_TIMEOUT_SECONDS))
        conn = ThreadConn(self._next_id, sock, peer, self.config, self.hooks)
        self._next_id += 1
        self.counters["accepted"] += 1
        self._conns[conn.id] = conn
        conn.thread = threading.Thread(
            target=self._serve, args=(conn,), name=f"conn-{conn.id}", daemon=True
        )
        conn.thread.start()
        log.info("connection %d from %s", conn.id, peer)

    def _shutdown(self) -> None:
        log.info("shutting down: answering what is in flight")
        self._listener.close()
        conns = list(self._conns.values())
        for conn in conns:
            with conn.out:
                conn.stopping = True
                idle = not conn.running and not conn.bye_sent
                if idle:
                    conn.say_bye("shutdown")
            if idle:  # a busy one says bye itself when its batch is done
                self._flush(conn)
        start = time.monotonic()
        end = start + limits.SHUTDOWN_GRACE_SECONDS
        lingered = start + limits.SHUTDOWN_LINGER_SECONDS
        for conn in conns:  # peers close after their bye...
            conn.thread.join(max(0.0, lingered - time.monotonic()))
        for conn in conns:  # peers that keep their end open
            self._shut(conn, socket.SHUT_RDWR)
        for conn in conns:
            conn.thread.join(max(0.0, end - time.monotonic()))

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
        finally:
            self._batch(conn, [act.Disconnect()])
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
        self._flush(conn)
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
                if conn.user is None and time.monotonic() >= login_by:
                    log.info("connection %d did not log in in time", conn.id)
                    self._bye(conn, "idle")
                continue
            except OSError as exc:
                log.info("connection %d reset: %s", conn.id, exc)
                return
            if not data:
                return
            items = conn.intake.take_lines(data, time.monotonic())
            if not items:
                continue
            with conn.out:
                if conn.bye_sent or conn.dead or conn.stopping:
                    continue  # input after a bye (or during shutdown) is discarded
                conn.running = True
            self._batch(conn, items)

    def _batch(self, conn: ThreadConn, items: list) -> None:
        traced = None
        if self.tracer is not None:
            traced = [self.tracer.new_task(item_name(i), conn.id) for i in items]
        run_batch(self.chat, self.post, self.tracer, conn.state, items, traced)
        self._flush_touched()

    def _bye(self, conn: ThreadConn, reason: str | None) -> None:
        with conn.out:
            if conn.bye_sent:
                return
            conn.say_bye(reason)
        self._linger(conn)
        self._touch(conn)
        self._flush_touched()

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
            self._touch(conn)
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
                self._linger(conn)
        elif isinstance(action, act.Done):
            conn.running = False
            held, conn.held = conn.held, []
            for msg in held:
                conn.append_message(msg, encode(msg, conn.mode))
            if conn.stopping and not conn.bye_sent:
                conn.say_bye("shutdown")

    def _deliver(self, action: act.Deliver) -> None:
        msg = action.message
        encoded: dict[str, bytes] = {}
        for cid in action.conns:
            conn = self._conns.get(cid)
            if conn is None:
                continue
            self._touch(conn)
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
        log.warning(
            "%s is not reading (%d bytes queued): dropped as slow consumer",
            conn.user or f"connection {conn.id}", len(conn.buf),
        )  # fmt: skip
        conn.cut()
        conn.say_bye("slow_consumer")
        self._linger(conn)

    def _linger(self, conn: ThreadConn) -> None:
        """After a bye: the accepting thread wakes the reader if the peer has
        not closed within CLOSE_LINGER_SECONDS."""
        self._wakeup.post([(time.monotonic() + limits.CLOSE_LINGER_SECONDS, conn.id)])

    # --- writing (no chat lock held) -----------------------------------------------

    def _touch(self, conn: ThreadConn) -> None:
        touched = getattr(self._touched, "conns", None)
        if touched is None:
            touched = self._touched.conns = {}
        touched[conn.id] = conn

    def _flush_touched(self) -> None:
        touched = getattr(self._touched, "conns", None)
        while touched:  # text acks may commit, and so touch more connections
            self._touched.conns = {}
            for conn in touched.values():
                self._flush(conn)
            touched = self._touched.conns

    def _flush(self, conn: ThreadConn) -> None:
        """Write `conn`'s queue unless another thread is writing it, without
        blocking: what the kernel does not take at once goes to a
        write-behind thread, so no producer ever waits for a slow peer."""
        with conn.out:
            if conn.writing or conn.closed or conn.dead or not conn.buf:
                return
            conn.writing = True
        self._write(conn, False, b"")

    def _write(self, conn: ThreadConn, block: bool, data: bytes) -> None:
        """Write `data`, then the queue, until it is empty. The caller set
        `writing`; `block` is True in the write-behind thread."""
        while True:
            if not data:
                with conn.out:
                    data, conn.buf = bytes(conn.buf), bytearray()
                    conn.taken = conn.appended
                    conn.exempt = 0
                    if not data or conn.dead:
                        conn.writing = conn.behind = False
                        finished = conn.bye_sent and not conn.dead
                        close = conn.owner_done and not conn.closed
                        conn.closed = conn.closed or close
                        break
            try:
                if block:
                    conn.sock.sendall(data)
                    n = len(data)
                else:
                    try:
                        n = conn.sock.send(data, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        n = 0
            except OSError as exc:  # reset, or SO_SNDTIMEO: stuck for too long
                log.info("connection %d write failed: %s", conn.id, exc)
                with conn.out:
                    conn.dead = True
                    conn.buf.clear()
                self._shut(conn, socket.SHUT_RDWR)  # wakes its reader
                data = b""
                continue
            self._written(conn, n, block)
            data = data[n:]
            if data and not block:  # the kernel's buffer is full: write behind
                with conn.out:
                    conn.behind = True
                threading.Thread(
                    target=self._write_behind, args=(conn, data), name=f"conn-{conn.id}-writer",
                    daemon=True,
                ).start()  # fmt: skip
                return
        if finished and not close:
            self._shut(conn, socket.SHUT_WR)  # our last byte: FIN (lingering close)
        if close:
            conn.sock.close()

    def _write_behind(self, conn: ThreadConn, data: bytes) -> None:
        if self.tracer is not None:
            self.tracer.thread_start()
        try:
            self._write(conn, True, data)
        finally:
            if self.tracer is not None:
                self.tracer.thread_end()

    def _written(self, conn: ThreadConn, n: int, block: bool) -> None:
        """Account `n` bytes written. Text mode: messages wholly written
        count as seen (PROTOCOL §6)."""
        acked = 0
        with conn.out:
            conn.sent += n
            unacked = conn.unacked
            while unacked and unacked[0][0] <= conn.sent:
                acked = unacked.popleft()[1]
        if acked:
            # Only the user id is read from the connection's state: it is set
            # under ``delivery`` before any message is routed here.
            task = [self.tracer.new_task("text_ack", conn.id)] if self.tracer else None
            run_batch(
                self.chat, self.post, self.tracer, conn.state, [act.TextAck(acked)], task,
                done=False,
            )  # fmt: skip
            if block:  # the write-behind thread: nobody else flushes for it
                self._flush_touched()

    def _shut(self, conn: ThreadConn, how: int) -> None:
        """shutdown() the socket unless it is closed (under `out`, so the fd
        cannot be closed and reused meanwhile)."""
        with conn.out:
            if conn.closed:
                return
            try:
                conn.sock.shutdown(how)
            except OSError:
                pass
