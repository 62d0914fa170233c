"""One client connection as the thread-per-client model sees it.

Owns: the record of one connection of `--model threaded` (reactor/net/threaded/server.py):
its socket and parsing state, which only its own thread touches, and its
output queue with the flags of its life cycle, guarded by its ``outbuf:<id>``
lock and shared by every thread that writes to it. Must not: do I/O or take
any other lock (``outbuf`` is a leaf lock: it may be taken under ``delivery``
and nothing is taken under it).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque

from reactor.chat.sessions import ConnState
from reactor.config import Config
from reactor.net.intake import Intake
from reactor.protocol import TEXT, Bye, Message, encode
from reactor.sync.locks import Hooks, NamedLock


def timeval(seconds: float) -> bytes:
    """An SO_RCVTIMEO value; 0 means wait forever."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


class ThreadConn:
    """One client. Its own thread reads `sock` and alone closes it (unless a
    writer is still at work: the last one out closes); other threads write
    it and may `shutdown()` it, under `out` while it is open. `intake` and
    `state` are its thread's, except that whoever writes text-mode messages
    reads `state.user_id` for their acknowledgement (set before any message
    is routed here). Every field below `out` is guarded by `out`."""

    def __init__(self, cid: int, sock: socket.socket, peer: str, config: Config, hooks: Hooks):
        self.id = cid
        self.sock = sock
        self.peer = peer
        self.state = ConnState(cid, peer)
        self.intake = Intake(config, time.monotonic())
        self.thread: threading.Thread | None = None
        self.writer: threading.Thread | None = None  # the last write-behind thread
        # Guards this connection's output and life-cycle flags. Leaf lock:
        # taken under ``delivery`` (or none), never while taking another.
        self.out = NamedLock(f"outbuf:{cid}", hooks)
        self.buf = bytearray()
        self.mode = TEXT  # encoding of the next event appended
        self.user: str | None = None
        self.exempt = 0  # bytes of buf answering its own commands (see connection.py)
        self.appended = 0  # bytes ever appended; writers took `taken`, sent `sent`
        self.taken = 0
        self.sent = 0
        # Text mode: (end offset in `appended` terms, message id) not yet written.
        self.unacked: deque[tuple[int, int]] = deque()
        self.held: list[Message] = []  # own group echoes held while a batch runs
        self.running = False  # its thread is running a batch
        self.writing = False  # a thread is writing buf (at most one)
        self.behind = False  # the kernel refused bytes: a write-behind thread runs
        self.bye_sent = False  # a bye is queued: nothing more is appended
        self.stopping = False  # server shutdown: bye at the end of its input
        self.dead = False  # writing failed: output is dropped
        self.owner_done = False  # its thread has ended; the last user closes
        self.closed = False  # the socket is closed (by the last user)

    # All methods below: caller holds `out`.

    def append(self, data: bytes, exempt: bool = False) -> None:
        if self.bye_sent or self.dead:
            return
        self.buf += data
        self.appended += len(data)
        if exempt:
            self.exempt += len(data)

    def append_message(self, msg: Message, data: bytes, exempt: bool = False) -> None:
        if self.bye_sent or self.dead:
            return
        self.append(data, exempt)
        if self.mode == TEXT:
            self.unacked.append((self.appended, msg.id))

    def say_bye(self, reason: str | None) -> None:
        if reason is not None:
            self.append(encode(Bye(reason), self.mode), exempt=True)
        self.held = []
        self.bye_sent = True

    def cut(self) -> None:
        """Slow consumer: drop what no writer has taken yet (never acked)."""
        self.appended = self.taken
        self.buf.clear()
        self.exempt = 0
        while self.unacked and self.unacked[-1][0] > self.appended:
            self.unacked.pop()
