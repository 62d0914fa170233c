"""Writing in the thread-per-client model: who writes a connection's queue,
when, and without ever blocking a producer.

Owns: flushing the queues a thread appended to once it holds no chat lock
(a per-thread set of touched connections, and deferred work such as logging
that must not happen under ``outbuf``), the single-writer rule per
connection, write-behind threads for peers whose kernel buffer is full,
text-mode acknowledgements of written messages, and shutting or closing a
socket safely from any thread. Must not: append to queues (reactor/net/threaded/server.py
applies actions) or read from sockets.

One thread at a time writes a connection (`writing`, set under its
``outbuf`` lock). A producer that finds a writer busy leaves its bytes to
it; the writer re-checks the queue under the lock before it stops, so no
byte is stranded. Writes start with `send(MSG_DONTWAIT)`; what the kernel
refuses goes to a `conn-<id>-writer` thread that blocks in `sendall` for as
long as the peer takes (a slow consumer's linger, or the shutdown, ends it
with `shutdown()`).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

from reactor import actions as act
from reactor.frontend import Dispatch
from reactor.net.threaded.conn import ThreadConn
from reactor.tracing.hooks import TraceHooks

log = logging.getLogger("reactor.net.threaded.server")


class Output:
    """The writing side of every connection of the threaded model."""

    def __init__(self, dispatch: Dispatch, tracer: TraceHooks) -> None:
        self._dispatch = dispatch  # runs text acks (their commits may deliver more)
        self._tracer = tracer
        self._local = threading.local()  # per thread: .conns touched, .later work

    def later(self, fn: Callable[..., object], *args: object) -> None:
        """Run `fn(*args)` when this thread next flushes, off every lock
        (logging and the wake-up socket are I/O: not under ``outbuf``)."""
        later = getattr(self._local, "later", None)
        if later is None:
            later = self._local.later = []
        later.append((fn, args))

    def touch(self, conn: ThreadConn) -> None:
        """Remember that this thread appended to `conn` (flushed later)."""
        touched = getattr(self._local, "conns", None)
        if touched is None:
            touched = self._local.conns = {}
        touched[conn.id] = conn

    def flush_touched(self) -> None:
        """Write every connection this thread appended to (and run what it
        deferred); called holding no lock."""
        local = self._local
        while getattr(local, "conns", None) or getattr(local, "later", None):
            later, local.later = getattr(local, "later", None) or [], []
            for fn, args in later:
                fn(*args)
            touched, local.conns = getattr(local, "conns", None) or {}, {}
            for conn in touched.values():  # text acks may touch more: loop
                try:
                    self.flush(conn)
                except Exception:  # one connection's failure is not the others'
                    log.exception("connection %d: writing failed", conn.id)

    def flush(self, conn: ThreadConn) -> None:
        """Write `conn`'s queue unless another thread is writing it, without
        blocking: what the kernel does not take at once goes to a
        write-behind thread, so no producer ever waits for a slow peer."""
        with conn.lock:
            if conn.writing or conn.closed or conn.dead or not len(conn.out):
                return
            conn.writing = True
        self._write(conn, False, b"")

    def _write(self, conn: ThreadConn, block: bool, data: bytes) -> None:
        """Write `data`, then the queue, until it is empty. The caller set
        `writing`; `block` is True in the write-behind thread. Whatever
        fails, `writing` is given up and the socket closed or shut."""
        try:
            self._write_queue(conn, block, data)
        except Exception:
            log.exception("connection %d: writing failed; closing it", conn.id)
            with conn.lock:
                conn.dead = True
                conn.out.drop()
                conn.writing = conn.out.refused = False
                close = conn.owner_done and not conn.closed
                conn.closed = conn.closed or close
            if close:
                conn.sock.close()
            else:
                self.shut(conn, socket.SHUT_RDWR)

    def _write_queue(self, conn: ThreadConn, block: bool, data: bytes) -> None:
        while True:
            if not data:
                with conn.lock:
                    data = conn.out.take()
                    if not data or conn.dead:
                        conn.writing = conn.out.refused = False
                        finished = conn.out.closed and not conn.dead
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
            except OSError as exc:  # reset, or shut by a linger or the shutdown
                log.info("connection %d write failed: %s", conn.id, exc)
                with conn.lock:
                    conn.dead = True
                    conn.out.drop()
                self.shut(conn, socket.SHUT_RDWR)  # wakes its reader
                data = b""
                continue
            self._written(conn, n, block)
            data = data[n:]
            if data and not block:  # the kernel's buffer is full: write behind
                writer = threading.Thread(
                    target=self._write_behind, args=(conn, data), name=f"conn-{conn.id}-writer",
                    daemon=True,
                )  # fmt: skip
                with conn.lock:
                    conn.out.refused = True
                    conn.writer = writer
                try:
                    writer.start()
                    return
                except RuntimeError as exc:  # no thread to spare: block here instead
                    log.warning("connection %d: no write-behind thread (%s)", conn.id, exc)
                    block = True
        if finished and not close:
            self.shut(conn, socket.SHUT_WR)  # our last byte: FIN (lingering close)
        if close:
            conn.sock.close()

    def _write_behind(self, conn: ThreadConn, data: bytes) -> None:
        self._tracer.thread_start()
        try:
            self._write(conn, True, data)
        finally:
            self._tracer.thread_end()

    def _written(self, conn: ThreadConn, n: int, block: bool) -> None:
        """Account `n` bytes written. Text mode: messages wholly written
        count as seen (docs/protocol.md §6)."""
        with conn.lock:
            acked = conn.out.written(n)
        if acked:
            # Only the user id is read from the connection's session: it is
            # set under ``delivery`` before any message is routed here.
            try:
                self._dispatch.run(conn.session, [act.TextAck(acked)], done=False)
            except Exception:  # the bytes are out; a lost cursor means a replay
                log.exception("connection %d: text acknowledgement failed", conn.id)
            if block:  # the write-behind thread: nobody else flushes for it
                self.flush_touched()

    def shut(self, conn: ThreadConn, how: int) -> None:
        """shutdown() the socket unless it is closed (under `out`, so the fd
        cannot be closed and reused meanwhile)."""
        with conn.lock:
            if conn.closed:
                return
            try:
                conn.sock.shutdown(how)
            except OSError:
                pass
