"""The event loop: one thread, one `selectors` selector, every socket.

Owns: the selector and every client connection (non-blocking read and
write), rate limits, output buffers and slow consumers, timers (login
timeout, close linger), graceful shutdown, and the scheduling of each
connection's commands on the pool, one batch at a time per connection.
Accepting is reactor/net/listener.py's, the wake-up channel reactor/net/wakeup.py's.
Must not: run a chat command, take a named lock, or block. Workers talk to
it only through `post()`.

One pass of the loop: wait for events; read what is readable (lines become
queued commands); apply the actions workers posted, in order; fire due
timers; hand every idle connection with queued commands to the pool as one
batch; then write every connection whose output grew, at most WRITE_CAP
bytes each, watching for writability only while bytes remain.
"""

from __future__ import annotations

import functools
import heapq
import logging
import selectors
import socket
import time
from collections.abc import Sequence

from reactor import actions as act
from reactor import limits
from reactor.chat.pool import Pool, item_name
from reactor.config import Config
from reactor.net.connection import Connection
from reactor.net.listener import Listener
from reactor.net.wakeup import Wakeup
from reactor.protocol import Bye, Notice, encode

log = logging.getLogger("reactor.net.loop")

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
WELCOME = Notice("Welcome to the chat server! Type /help for commands.")


class Reactor:
    """The loop. Create, `bind()`, then `run()` in the thread that owns it;
    `close()` after the pool has stopped."""

    def __init__(self, config: Config, pool: Pool, tracer=None, tls=None) -> None:
        self.config = config
        self.tls = tls  # an ssl.SSLContext, or None for plain TCP
        self.pool = pool
        self.tracer = tracer
        self._trace_io = tracer if tracer is not None and config.trace_io else None
        self._sel = selectors.DefaultSelector()
        self._conns: dict[int, Connection] = {}
        self._next_id = 1
        self._timers: list[tuple[float, int, str]] = []
        self._wakeup = Wakeup()
        self._dirty: set[Connection] = set()
        self._ready: set[Connection] = set()
        self._listener: Listener | None = None
        self._open = 0  # open client sockets (closed ones may still have work)
        self._bye_at = 0.0
        self._stop_requested = False
        self._stopping_since: float | None = None
        self._said_bye = False
        self.counters = {"accepted": 0, "slow_consumers": 0, "rejected_full": 0}
        self._sel.register(self._wakeup, READ, self._on_wake)

    # --- set-up and shutdown -------------------------------------------------------

    def bind(self) -> tuple[str, int]:
        """Open the listening socket; return the address really bound."""
        address = (self.config.ip, self.config.port)
        self._listener = Listener(
            self._sel, address, self._accepted, self._refusal, say_bye=self.tls is None
        )
        return self._listener.address

    def post(self, actions: Sequence[act.Action]) -> None:
        """Hand actions to the loop; safe from any thread."""
        self._wakeup.post(actions)

    def request_stop(self) -> None:
        """Begin a graceful shutdown; safe from any thread or a signal handler."""
        self._stop_requested = True
        self._wakeup.wake()

    def _on_wake(self, mask: int) -> None:
        for action in self._wakeup.drain():
            self._apply(action)

    # --- the loop -------------------------------------------------------------------

    def run(self) -> None:
        """Serve until a requested stop has finished."""
        if self.tracer is not None:
            self.tracer.thread_start()
        while True:
            now = time.monotonic()
            timeout = limits.MAX_POLL_SECONDS
            if self._timers:
                timeout = min(timeout, max(0.0, self._timers[0][0] - now))
            if self._listener is not None and self._listener.paused_until:
                timeout = min(timeout, max(0.0, self._listener.paused_until - now))
            for key, mask in self._sel.select(timeout):
                key.data(mask)
            self._on_wake(0)  # actions posted while we handled events
            now = time.monotonic()
            if self._listener is not None:
                self._listener.resume_if_due(now)
            self._fire_timers(now)
            if self._stop_requested and self._shutdown_step():
                break
            self._schedule()
            self._flush()
        self._close_all()

    def _schedule(self) -> None:
        for conn in self._ready:
            if conn.pending and not conn.running:
                items, conn.pending = conn.pending, []
                conn.running = True
                traced = None
                if self.tracer is not None:
                    new_task = self.tracer.new_task
                    traced = [new_task(item_name(i), conn.id) for i in items]
                self.pool.submit(conn.state, items, traced)
                self._update_mask(conn)  # reading may resume
        self._ready.clear()

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            if conn.sock is not None and not conn.handshaking:
                self._write(conn)

    # --- accept ----------------------------------------------------------------------

    def _refusal(self) -> str | None:
        """Why a new connection is turned away right now, if it is."""
        if self._stop_requested:
            return "shutdown"
        if self._open >= self.config.max_clients:
            self.counters["rejected_full"] += 1
            return "server_full"
        return None

    def _accepted(self, sock: socket.socket, peer: str) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        conn = Connection(self._next_id, sock, peer, self.config, time.monotonic())
        conn.handshaking = self.tls is not None
        conn.handler = functools.partial(self._on_conn_event, conn)
        self._next_id += 1
        self._conns[conn.id] = conn
        self._open += 1
        self.counters["accepted"] += 1
        self._sel.register(sock, READ, conn.handler)
        conn.mask = READ
        deadline = time.monotonic() + self.config.login_timeout
        heapq.heappush(self._timers, (deadline, conn.id, "login"))
        log.info("connection %d from %s", conn.id, peer)
        conn.append(encode(WELCOME, conn.mode))
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
            self._end_of_input(conn)
            return
        if self._trace_io is not None:
            self._trace_io.io("io_read", conn.id, len(data))
        if not conn.reading:
            return  # closing: input after a bye is discarded
        now = time.monotonic()
        conn.pending.extend(conn.intake.take_lines(data, now))
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

    def _end_of_input(self, conn: Connection) -> None:
        """The peer sent FIN: finish its commands, flush replies, then close."""
        conn.reading, conn.peer_eof, conn.closing = False, True, True
        self._update_mask(conn)
        self._maybe_close(conn)

    # --- actions from workers ------------------------------------------------------------

    def _apply(self, action: act.Action) -> None:
        if isinstance(action, act.Deliver):
            self._deliver(action)
            return
        conn = self._conns.get(action.conn)
        if conn is None:
            return
        if isinstance(action, act.Done):
            conn.running = False
            if conn.release_held():
                self._dirty.add(conn)
            if conn.login_expired and conn.user is None and not conn.closing:
                self._login_timeout(conn)
            if conn.pending:
                self._ready.add(conn)
            self._maybe_close(conn)
        elif conn.sock is None or conn.bye_sent:
            return  # output for a closed connection is dropped
        elif isinstance(action, act.Emit):
            conn.append(encode(action.event, conn.mode), exempt=True)
            self._dirty.add(conn)
        elif isinstance(action, act.Replay):
            for m in action.messages:
                conn.append_message(m, encode(m, conn.mode), exempt=True)
            self._dirty.add(conn)
        elif isinstance(action, act.SetMode):
            conn.mode = action.mode
        elif isinstance(action, act.LoggedIn):
            conn.user = action.user
        elif isinstance(action, act.Close):
            conn.pending = [i for i in conn.pending if isinstance(i, (act.TextAck, act.Disconnect))]
            self._say_bye(conn, action.reason)

    def _deliver(self, action: act.Deliver) -> None:
        msg = action.message
        encoded: dict[str, bytes] = {}
        for cid in action.conns:
            conn = self._conns.get(cid)
            if conn is None or conn.sock is None or conn.bye_sent:
                continue
            if conn.held or (conn.running and msg.sender == conn.user):
                # The echo of the user's own message: its `ok` is still in
                # the running batch. Hold it, and everything after it (to
                # keep id order), until that batch is done.
                conn.held.append(msg)
                continue
            data = encoded.get(conn.mode)
            if data is None:
                data = encoded[conn.mode] = encode(msg, conn.mode)
            conn.append_message(msg, data)
            self._dirty.add(conn)  # judged slow or not after the write attempt

    def _slow_consumer(self, conn: Connection) -> None:
        self.counters["slow_consumers"] += 1
        log.warning(
            "%s is not reading (%d bytes queued): dropped as slow consumer",
            conn.user or f"connection {conn.id}",
            len(conn.outbuf),
        )
        # Its messages stay stored and are replayed at the next login.
        conn.cut_after_current_line()
        self._say_bye(conn, "slow_consumer")

    def _say_bye(self, conn: Connection, reason: str | None) -> None:
        if reason is not None:
            conn.append(encode(Bye(reason), conn.mode), exempt=True)
            self._dirty.add(conn)
        conn.held = []
        conn.bye_sent = True
        conn.reading = False
        conn.closing = True
        self._update_mask(conn)
        deadline = time.monotonic() + limits.CLOSE_LINGER_SECONDS
        heapq.heappush(self._timers, (deadline, conn.id, "linger"))

    # --- write ----------------------------------------------------------------------------

    def _write(self, conn: Connection) -> None:
        if conn.outbuf:
            try:
                sent, offered = conn.send_some(limits.WRITE_CAP)
            except OSError as exc:
                log.info("connection %d write failed: %s", conn.id, exc)
                self._drop(conn)
                return
            if self._trace_io is not None and sent:
                self._trace_io.io("io_write", conn.id, sent)
            acked = conn.sent_bytes(sent)
            if acked and conn.mode == "text":  # after a bye too: the bytes got out
                conn.queue_text_ack(acked)
                self._ready.add(conn)
            if sent < offered and not conn.bye_sent and conn.over_limit(self.config.max_outbuf):
                # The kernel's buffer is full and more than the limit of what
                # others sent is still waiting: the peer is not reading.
                self._slow_consumer(conn)
        self._update_mask(conn)
        self._maybe_close(conn)

    def _update_mask(self, conn: Connection) -> None:
        if conn.sock is None:
            return
        mask = conn.interest(self.config.max_outbuf)
        if mask == conn.mask:
            return
        if conn.mask == 0:
            self._sel.register(conn.sock, mask, conn.handler)
        elif mask == 0:
            self._sel.unregister(conn.sock)
        else:
            self._sel.modify(conn.sock, mask, conn.handler)
        conn.mask = mask

    # --- closing ----------------------------------------------------------------------------

    def _maybe_close(self, conn: Connection) -> None:
        """Close once a closing connection has nothing left to send or run."""
        idle = conn.bye_sent or (not conn.pending and not conn.running)
        if conn.sock is not None and conn.closing and not conn.outbuf and idle:
            if conn.peer_eof:
                self._drop(conn)
                return
            if not conn.draining:
                # Lingering close: FIN after our last byte, then discard input
                # till the peer closes (or the linger timer): an RST (close
                # with unread input) can destroy the `bye` still in flight.
                conn.draining = True
                try:
                    conn.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    self._drop(conn)
                    return
                self._update_mask(conn)
            return
        if conn.sock is None and not conn.running and not conn.pending:
            self._conns.pop(conn.id, None)
            self._dirty.discard(conn)

    def _drop(self, conn: Connection) -> None:
        """Close the socket now; the connection's last work still runs."""
        if conn.sock is None:
            return
        if conn.mask:
            self._sel.unregister(conn.sock)
            conn.mask = 0
        conn.sock.close()
        conn.sock = None
        self._open -= 1
        conn.outbuf.clear()
        conn.held = []
        log.info("connection %d closed (%s)", conn.id, conn.user or "not logged in")
        conn.pending = [i for i in conn.pending if not isinstance(i, act.Disconnect)]
        conn.pending.append(act.Disconnect())
        self._ready.add(conn)
        self._maybe_close(conn)

    # --- timers ---------------------------------------------------------------------------------

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, cid, kind = heapq.heappop(timers)
            conn = self._conns.get(cid)
            if conn is None or conn.sock is None:
                continue
            if kind == "login" and conn.handshaking:
                log.info("connection %d: TLS handshake not done in time", conn.id)
                self._drop(conn)
            elif kind == "login" and conn.user is None and not conn.closing:
                if conn.running:
                    conn.login_expired = True  # decided when its batch is done
                else:
                    self._login_timeout(conn)
            elif kind == "linger" and conn.closing:
                self._drop(conn)

    def _login_timeout(self, conn: Connection) -> None:
        log.info("connection %d did not log in in time", conn.id)
        conn.pending = [i for i in conn.pending if isinstance(i, act.Disconnect)]
        self._say_bye(conn, "idle")

    def _shutdown_step(self) -> bool:
        """One pass of a graceful stop; True once the loop may end."""
        now = time.monotonic()
        if self._stopping_since is None:
            self._stopping_since = now
            log.info("shutting down: answering what is in flight")
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for conn in self._conns.values():
                conn.reading = False
                self._update_mask(conn)
        late = now - self._stopping_since > limits.SHUTDOWN_GRACE_SECONDS
        if not self._said_bye:
            busy = any(c.running or c.pending for c in self._conns.values() if c.sock)
            if busy and not late:
                return False
            self._said_bye = True
            for conn in list(self._conns.values()):
                if conn.sock is not None and not conn.bye_sent:
                    self._say_bye(conn, "shutdown")
            self._bye_at = now
        # Done once every peer has closed after its bye, or, for peers that
        # keep their end open, once every bye is on the wire and a short
        # linger has passed (closing with unread input would send RST).
        if all(c.sock is None for c in self._conns.values()):
            return True
        lingered = now - self._bye_at > limits.SHUTDOWN_LINGER_SECONDS
        flushed = all(c.sock is None or c.draining for c in self._conns.values())
        return late or (lingered and flushed)

    def _close_all(self) -> None:
        self._flush()
        for conn in list(self._conns.values()):
            self._drop(conn)
        if self._listener is not None:
            self._listener.close()

    def close(self) -> None:
        """Release the selector and the wake-up pair, once no worker posts."""
        self._sel.close()
        self._wakeup.close()

    def statistics(self) -> dict:
        """Open connections and the counters (read from any thread)."""
        return {"open": self._open, **self.counters}
