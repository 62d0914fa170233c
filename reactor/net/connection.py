"""One client connection as the reactor sees it.

Owns: the per-connection record of the reactor thread: socket, intake
(framing and the rate limit, reactor/net/intake.py), queued commands, output
buffer and its accounting (bytes appended and sent, text-mode messages not
yet written), and the flags of its life cycle. Must not: be read or written
by any thread but the reactor's; workers see only `state` (a `ConnState`),
and only while they run this connection's batch.
"""

from __future__ import annotations

import socket
import ssl
from collections import deque
from collections.abc import Callable

from reactor import limits
from reactor.actions import TextAck
from reactor.chat.sessions import ConnState
from reactor.config import Config
from reactor.net.intake import Intake
from reactor.protocol import TEXT, Message, encode

# A non-blocking socket (plain or TLS) that cannot go on right now.
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Connection:
    """Reactor-side state of one client."""

    def __init__(
        self, conn_id: int, sock: socket.socket, peer: str, config: Config, now: float
    ) -> None:
        self.id = conn_id
        self.sock: socket.socket | None = sock  # None once closed
        self.peer = peer
        self.handler: Callable[[int], None] | None = None  # selector key.data
        self.mask = 0  # events registered with the selector; 0 = not registered
        self.intake = Intake(config, now)  # framing and the rate limit
        self.state = ConnState(conn_id, peer)
        self.mode = TEXT  # encoding of the next event written
        self.user: str | None = None  # set when a login reply passes through
        # Queued work, handed to the pool as one batch when not `running`.
        # Invariant: at most one batch of this connection is in the pool.
        self.pending: list = []
        self.running = False
        self.reading = True  # False after EOF or bye: no more input accepted
        self.closing = False  # close once output is flushed and work is done
        self.peer_eof = False  # the peer sent FIN: it will send nothing more
        self.draining = False  # we sent FIN; discarding input until the peer's
        self.handshaking = False  # TLS: no application data until this is done
        self.want = 1  # during a handshake: the selector event it waits for
        self.bye_sent = False  # a bye is queued: nothing more is written
        self.outbuf = bytearray()
        self.appended = 0  # bytes ever appended to outbuf
        self.sent = 0  # bytes ever sent; appended - sent == len(outbuf)
        # Text mode: (end offset in `appended` terms, message id) of messages
        # not yet fully written; written ones become a TextAck for the worker.
        self.unacked: deque[tuple[int, int]] = deque()
        # Bytes in outbuf that answer this connection's own commands (replies,
        # a login's replay). They do not count against --max-outbuf: the
        # client asked for them, and reading stops while the buffer is over
        # the limit, so it cannot ask for more. Approximate: sending is
        # assumed to drain these last.
        self.exempt = 0
        # Echoes of this user's own messages (and every message after them)
        # held back while a batch runs, so the sender sees its `ok` first.
        self.held: list[Message] = []
        self.login_expired = False  # login timer fired while a batch ran

    # --- output accounting ------------------------------------------------

    def append(self, data: bytes, exempt: bool = False) -> None:
        self.outbuf += data
        self.appended += len(data)
        if exempt:
            self.exempt += len(data)

    def append_message(self, msg: Message, data: bytes, exempt: bool = False) -> None:
        self.append(data, exempt)
        if self.mode == TEXT:
            self.unacked.append((self.appended, msg.id))

    def release_held(self) -> bool:
        """Append the held-back echoes (a batch ended); True if any were.
        Encoded now: the batch may have changed the mode."""
        held, self.held = self.held, []
        if not held or self.sock is None or self.bye_sent:
            return False
        for msg in held:
            self.append_message(msg, encode(msg, self.mode))
        return True

    def over_limit(self, max_outbuf: int) -> bool:
        """True if what others sent us waits beyond `max_outbuf` bytes."""
        return len(self.outbuf) - self.exempt > max_outbuf

    def send_some(self, cap: int) -> tuple[int, int]:
        """Write up to `cap` bytes of outbuf without blocking; return
        (bytes sent, bytes offered). Raises OSError if the socket failed.
        On TLS a refused write is retried later with the same bytes first,
        as OpenSSL requires."""
        buf = self.outbuf
        offered = min(len(buf), cap)
        try:
            if len(buf) <= cap:
                return self.sock.send(buf), offered
            with memoryview(buf) as view, view[:offered] as part:
                return self.sock.send(part), offered
        except _WOULD_BLOCK:
            return 0, offered

    def recv_some(self, size: int) -> bytes | None:
        """Read what is there without blocking (None: nothing yet; b"": EOF).
        Raises OSError if the socket failed. On TLS, bytes already decrypted
        inside the SSL object do not wake the selector, so they are taken
        now too (`pending()`)."""
        try:
            data = self.sock.recv(size)
            pending = getattr(self.sock, "pending", None)
            while data and pending is not None and (more := pending()) > 0:
                data += self.sock.recv(more)
            return data
        except _WOULD_BLOCK:
            return None

    def handshake(self) -> int:
        """Advance a TLS handshake: 0 when done, else the selector event
        (1 read, 2 write) it waits for. Raises OSError if it failed."""
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            return 1
        except ssl.SSLWantWriteError:
            return 2
        self.handshaking = False
        return 0

    def interest(self, max_outbuf: int) -> int:
        """The selector events to watch now (1 read, 2 write). Input
        backpressure: a connection with many commands queued, or with more
        output than --max-outbuf waiting, is not read for now."""
        if self.handshaking:
            return self.want
        mask = 0
        if self.draining or (
            self.reading
            and len(self.pending) < limits.MAX_PENDING_COMMANDS
            and len(self.outbuf) <= max_outbuf
        ):
            mask |= 1
        return mask | 2 if self.outbuf else mask

    def queue_text_ack(self, acked: int) -> None:
        """Text mode: messages up to `acked` are on the wire; tell a worker
        (one pending TextAck at most, raised as more is written)."""
        pending = self.pending
        if pending and isinstance(pending[-1], TextAck):
            pending[-1] = TextAck(max(acked, pending[-1].id))
        else:
            pending.append(TextAck(acked))

    def sent_bytes(self, n: int) -> int:
        """Account `n` bytes written; return the highest text-mode message id
        now fully written (0 if none)."""
        del self.outbuf[:n]
        self.sent += n
        self.exempt = min(self.exempt, len(self.outbuf))
        acked = 0
        unacked = self.unacked
        while unacked and unacked[0][0] <= self.sent:
            acked = unacked.popleft()[1]
        return acked

    def cut_after_current_line(self) -> None:
        """Drop queued output but the line being written (its head may be on
        the wire already); dropped messages are not acknowledged."""
        end = self.outbuf.find(b"\n") + 1
        self.appended -= len(self.outbuf) - end
        del self.outbuf[end:]
        while self.unacked and self.unacked[-1][0] > self.appended:
            self.unacked.pop()
        self.exempt = 0
        self.held = []
