"""One client connection as the thread-per-client model sees it.

Owns: the record of one connection of `--model threaded`
(reactor/net/threaded/server.py): its socket and parsing state, which only
its own thread touches, and its output queue (reactor/net/outqueue.py) with
the flags of its life cycle, guarded by its ``outbuf:<id>`` lock and shared
by every thread that writes to it. Must not: do I/O or take
any other lock (``outbuf`` is a leaf lock: it may be taken under ``delivery``
and nothing is taken under it).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from reactor.config import Config
from reactor.frontend import Session
from reactor.net.intake import Intake
from reactor.net.outqueue import OutQueue
from reactor.sync.instrument import LockHooks
from reactor.sync.locks import NamedLock


def timeval(seconds: float) -> bytes:
    """An SO_RCVTIMEO value; 0 means wait forever."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


class ThreadConn:
    """One client. Its own thread reads `sock` and alone closes it (unless a
    writer is still at work: the last one out closes); other threads write
    it and may `shutdown()` it, under `lock` while it is open. `intake` and
    `session` are its thread's, except that whoever writes text-mode
    messages runs their acknowledgement with `session` (it reads only the
    user id, set before any message is routed here). `out` and every flag
    below `lock` are guarded by `lock`."""

    def __init__(
        self, cid: int, sock: socket.socket, session: Session, config: Config, hooks: LockHooks
    ) -> None:
        self.id = cid
        self.sock = sock
        self.session = session
        self.address = ""  # the peer's IP address, for the per-address limits
        self.intake = Intake(config, time.monotonic())
        self.thread: threading.Thread | None = None
        self.writer: threading.Thread | None = None  # the last write-behind thread
        # Guards this connection's output queue and life-cycle flags. Leaf
        # lock: taken under ``delivery`` (or none), never while taking another.
        self.lock = NamedLock(f"outbuf:{cid}", hooks)
        self.out = OutQueue()  # its `refused`: a write-behind thread is at work
        self.running = False  # its thread is running a batch
        self.writing = False  # a thread is writing the queue (at most one)
        self.stopping = False  # server shutdown: bye at the end of its input
        self.dead = False  # writing failed: output is dropped
        self.owner_done = False  # its thread has ended; the last user closes
        self.closed = False  # the socket is closed (by the last user)
