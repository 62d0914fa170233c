"""One client connection as the reactor sees it.

Owns: the per-connection record of the reactor thread: socket and its
registration with the selector, intake
(framing and the rate limit, reactor/net/intake.py), queued work, output
queue (reactor/net/outqueue.py), and its life cycle: one `Life` flags word
(Redis keeps one flags word per client the same way) changed only by the
transition methods below, and the steps of a lingering close
(`close_step`, which says what the loop must do next). Must not: be read
or written by any thread but the reactor's; workers see only `session`,
and only while they run this connection's batch.

Life cycle::

    HANDSHAKING --handshake_done--> open --peer_closed------> CLOSING (+PEER_EOF)
                                      |  --say_bye----------> CLOSING (+BYE_SENT)
                                      |  --stop_reading-----> no input (shutdown)
    CLOSING --start_draining--> DRAINING (FIN sent) --> socket closed (`sock` None)

RUNNING (a batch is on the pool) and LOGIN_EXPIRED (the login timer fired
while one ran) come and go in any state.
"""

from __future__ import annotations

import enum
import selectors
import socket
import ssl
from collections.abc import Callable

from reactor import limits
from reactor.actions import Item, TextAck
from reactor.config import Config
from reactor.frontend import Session
from reactor.kinds import ByeReason
from reactor.net.intake import Intake, IrcIntake
from reactor.net.outqueue import OutQueue, Written
from reactor.protocol.ircsession import IrcSession

# A non-blocking socket (plain or TLS) that cannot go on right now.
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)

READ, WRITE = 1, 2  # selectors.EVENT_READ, selectors.EVENT_WRITE


class Life(enum.Flag):
    """Where a connection is in its life; several may hold at once."""

    OPEN = 0
    HANDSHAKING = enum.auto()  # TLS: no application data until this is done
    RUNNING = enum.auto()  # a batch of this connection is on the pool
    NO_INPUT = enum.auto()  # after EOF, a bye or the shutdown: input is discarded
    CLOSING = enum.auto()  # close once output is flushed and work is done
    PEER_EOF = enum.auto()  # the peer sent FIN: it will send nothing more
    BYE_SENT = enum.auto()  # a bye is queued: nothing more is written
    DRAINING = enum.auto()  # we sent FIN; discarding input until the peer's
    LOGIN_EXPIRED = enum.auto()  # the login timer fired while a batch ran


class Closing(enum.Enum):
    """What the loop does after `Connection.close_step`."""

    WAIT = 0  # nothing yet
    DROP = 1  # close the socket now
    DRAINING = 2  # our FIN is out: watch the socket anew
    GONE = 3  # closed and idle: forget the connection


class Connection:
    """Reactor-side state of one client."""

    def __init__(
        self,
        conn_id: int,
        sock: socket.socket,
        session: Session,
        config: Config,
        now: float,
        irc: bool = False,
    ) -> None:
        self.id = conn_id
        self.sock: socket.socket | None = sock  # None once closed
        self.handler: Callable[[int], None] | None = None  # selector key.data
        self.mask = 0  # events registered with the selector; 0 = not registered
        self.write_waits = False  # the last write left bytes queued: watch for WRITE
        # Framing and the rate limit; on the IRC port, IRC's (`irc` is its
        # protocol state: the codec of `out` too).
        self.irc: IrcSession | None = None
        self.intake: Intake | IrcIntake
        if irc:
            self.irc = IrcSession(config.irc_name, config.irc_name, config.auth == "none")
            self.intake = IrcIntake(config, now, self.irc)
        else:
            self.intake = Intake(config, now)
        self.session = session
        self.address = ""  # the peer's IP address, for the per-address limits
        self.out = OutQueue(self.irc)
        self.life = Life.OPEN
        # Queued work, handed to the pool as one batch when not RUNNING.
        # Invariant: at most one batch of this connection is in the pool.
        self.pending: list[Item] = []
        self.want = READ  # during a handshake: the selector event it waits for

    # --- the life cycle: every change of `life` is one of these ------------------

    def handshake_started(self) -> None:
        """TLS: the handshake must finish before any application data."""
        self.life |= Life.HANDSHAKING

    def handshake_done(self) -> None:
        """TLS: the handshake finished; serve as usual."""
        self.life &= ~Life.HANDSHAKING

    def batch_started(self) -> None:
        """The pending items went to the pool as one batch."""
        self.life |= Life.RUNNING

    def batch_done(self) -> None:
        """The pool finished this connection's batch."""
        self.life &= ~Life.RUNNING

    def login_expired(self) -> None:
        """The login timer fired while a batch ran: decided when it is done."""
        self.life |= Life.LOGIN_EXPIRED

    def peer_closed(self) -> None:
        """The peer sent FIN: finish its commands, flush replies, then close."""
        self.life |= Life.NO_INPUT | Life.PEER_EOF | Life.CLOSING

    def say_bye(self, reason: ByeReason | None) -> None:
        """Queue the last line (if `reason`); read and write nothing more after it."""
        self.out.bye(reason)
        self.life |= Life.BYE_SENT | Life.NO_INPUT | Life.CLOSING

    def stop_reading(self) -> None:
        """The shutdown: take no more input."""
        self.life |= Life.NO_INPUT

    def start_draining(self) -> None:
        """Our FIN is sent: discard input until the peer's."""
        self.life |= Life.DRAINING

    def close_step(self) -> Closing:
        """Take the next step of closing, if one is due, and say what the
        loop must do: close the socket now, watch it anew (our FIN went out),
        forget the connection (closed and idle), or nothing yet."""
        idle = self.bye_sent or (not self.pending and not self.running)
        if self.sock is not None and self.closing and not len(self.out) and idle:
            if Life.PEER_EOF in self.life:
                return Closing.DROP
            if Life.DRAINING in self.life:
                return Closing.WAIT
            # Lingering close: FIN after our last byte, then discard input
            # till the peer closes (or the linger timer): an RST (close with
            # unread input) can destroy the `bye` still in flight.
            self.start_draining()
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                return Closing.DROP
            return Closing.DRAINING
        if self.sock is None and not self.running and not self.pending:
            return Closing.GONE
        return Closing.WAIT

    # --- reading the life cycle -------------------------------------------------------

    @property
    def running(self) -> bool:
        """A batch of this connection is on the pool."""
        return Life.RUNNING in self.life

    @property
    def reading(self) -> bool:
        """Input is still accepted."""
        return Life.NO_INPUT not in self.life

    @property
    def registered(self) -> bool:
        """Logged in and, over IRC, registered (the welcome is out): the login
        timer no longer applies."""
        return self.out.user is not None and (self.irc is None or self.irc.ready)

    @property
    def handshaking(self) -> bool:
        """TLS: the handshake is not done."""
        return Life.HANDSHAKING in self.life

    @property
    def closing(self) -> bool:
        """The connection closes once its output is flushed and its work done."""
        return Life.CLOSING in self.life

    @property
    def bye_sent(self) -> bool:
        """A bye is queued: nothing more is written."""
        return Life.BYE_SENT in self.life

    # --- socket I/O ----------------------------------------------------------------------

    def send_some(self, cap: int) -> Written:
        """Write up to `cap` queued bytes without blocking. Raises OSError if
        the socket failed. On TLS a refused write is retried later with the
        same bytes first, as OpenSSL requires."""
        sock = self.sock
        assert sock is not None

        def send(data: memoryview) -> int:
            try:
                return sock.send(data)
            except _WOULD_BLOCK:
                return 0

        written = self.out.write_to(send, cap)
        self.write_waits = len(self.out) > 0
        return written

    def recv_some(self, size: int) -> bytes | None:
        """Read what is there without blocking (None: nothing yet; b"": EOF).
        Raises OSError if the socket failed. On TLS, bytes already decrypted
        inside the SSL object do not wake the selector, so they are taken
        now too (`pending()`)."""
        sock = self.sock
        assert sock is not None
        try:
            data = sock.recv(size)
            pending = getattr(sock, "pending", None)
            while data and pending is not None and (more := pending()) > 0:
                data += sock.recv(more)
            return data
        except _WOULD_BLOCK:
            return None

    def handshake(self) -> int:
        """Advance a TLS handshake: 0 when done, else the selector event it
        waits for. Raises OSError if it failed."""
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            return READ
        except ssl.SSLWantWriteError:
            return WRITE
        self.handshake_done()
        return 0

    def interest(self, max_outbuf: int) -> int:
        """The selector events to watch now. Input backpressure: a
        connection with many commands queued, or with more output than
        --max-outbuf waiting, is not read for now."""
        if self.handshaking:
            return self.want
        mask = 0
        queued = len(self.out)
        if Life.DRAINING in self.life or (
            self.reading
            and len(self.pending) < limits.MAX_PENDING_COMMANDS
            and queued <= max_outbuf
        ):
            mask |= READ
        # Writability is watched only while a write has left bytes behind
        # (the kernel's buffer was full, or WRITE_CAP was reached): new
        # output is written at the end of the loop pass anyway, so watching
        # for it would cost two epoll_ctl calls a pass for nothing.
        return mask | WRITE if queued and self.write_waits else mask

    def watch(self, sel: selectors.BaseSelector, max_outbuf: int) -> None:
        """Register (or modify, or unregister) the socket with `sel` for the
        events `interest` says, if they changed."""
        mask = self.interest(max_outbuf)
        if self.sock is None or mask == self.mask:
            return
        if self.mask == 0:
            sel.register(self.sock, mask, self.handler)
        elif mask == 0:
            sel.unregister(self.sock)
        else:
            sel.modify(self.sock, mask, self.handler)
        self.mask = mask

    def close_socket(self, sel: selectors.BaseSelector) -> bool:
        """Unregister and close the socket now, dropping queued output;
        False if it was closed already."""
        if self.sock is None:
            return False
        if self.mask:
            sel.unregister(self.sock)
            self.mask = 0
        self.sock.close()
        self.sock = None
        self.out.drop()
        return True

    def queue_text_ack(self, acked: int) -> None:
        """Text mode: messages up to `acked` are on the wire; tell a worker
        (one pending TextAck at most, raised as more is written)."""
        pending = self.pending
        last = pending[-1] if pending else None
        if isinstance(last, TextAck):
            pending[-1] = TextAck(max(acked, last.id))
        else:
            pending.append(TextAck(acked))
