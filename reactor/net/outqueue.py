"""A connection's output queue and wire state, sans-IO, shared by every I/O
model (h11's `Connection` is the model: no socket, no thread, no lock).

Owns: the bytes waiting for one peer and their accounting: events encoded
in the connection's mode (a delivery once per mode, however many readers)
or by its own codec (IRC),
bytes exempt from --max-outbuf (replies to the connection's own commands, a
login's replay), where each text-mode message ends (so that once written it
counts as seen), echoes held back while the connection's own batch runs,
the `bye` that closes the queue, cutting a slow consumer after the line
being written, and the slow-consumer judgement. Must not: touch a socket,
take a lock or know which thread calls it: the reactor calls it from its
own thread; the thread-per-client model under the connection's ``outbuf``
lock.

Two ways out, one per kind of writer:
- `write_to(send, cap)`: the reactor's, "try to send now" (asyncio's
  `_SelectorSocketTransport.write`): `send` gets a view of the head and
  says how much it took; the rest stays, and is offered first next time
  (TLS requires the same bytes again).
- `take()` then `written(n)`: a writer that sends outside the lock takes
  everything queued, then says how much of it reached the socket.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import NamedTuple, Protocol

from reactor.actions import Action, Emit, LoggedIn, Replay, SetMode
from reactor.kinds import ByeReason, Mode
from reactor.protocol import Bye, Event, Message, encode

_NL = 0x0A

#: Sends what it is given without blocking; returns how many bytes it took.
Send = Callable[[memoryview], int]


class Codec(Protocol):
    """A connection's own encoding of events, with state (IRC's: the nick,
    negotiated capabilities, the contexts of queued commands); messages are
    held until it is `ready` (its welcome is out)."""

    ready: bool

    def encode(self, event: Event) -> bytes:
        """One reply, bye or notice in the codec's wire format."""
        ...

    def message(self, m: Message) -> bytes:
        """One chat message in the codec's wire format."""
        ...


class Written(NamedTuple):
    """One write attempt: bytes sent, bytes offered, and the highest
    text-mode message id now wholly written (0 if none)."""

    sent: int
    offered: int
    acked: int


class OutQueue:
    """Output of one connection, and the wire state that shapes it."""

    __slots__ = ("_appended", "_buf", "_exempt", "_held", "_mid_line", "_sent", "_unacked",
                 "closed", "codec", "mode", "refused", "user")  # fmt: skip

    def __init__(self, codec: Codec | None = None) -> None:
        self.mode = Mode.TEXT  # encoding of the next event appended
        # Another wire protocol's encoder (IRC), in place of `mode`'s; its
        # messages count as seen once written, as in text mode.
        self.codec = codec
        self.user: str | None = None  # set when the login reply passes through
        self._buf = bytearray()
        # Invariant: _appended - len(_buf) bytes have left the queue (written,
        # or taken by a writer); _sent of them are known to be written.
        self._appended = 0
        self._sent = 0
        # Text mode: (end offset in _appended terms, message id) of messages
        # not yet wholly written.
        self._unacked: deque[tuple[int, int]] = deque()
        # Bytes in _buf that answer this connection's own commands (replies,
        # a login's replay). They do not count against --max-outbuf: the
        # client asked for them, and reading stops while the buffer is over
        # the limit, so it cannot ask for more. Approximate: writing is
        # assumed to drain these last.
        self._exempt = 0
        # Echoes of this user's own messages (and every message after them,
        # to keep id order) held back while its batch runs: its `ok` first.
        self._held: list[Message] = []
        # Invariant: True when the head of _buf is the rest of a line whose
        # start is already on the wire.
        self._mid_line = False
        self.closed = False  # a bye is queued, or output dropped: nothing more is appended
        self.refused = False  # the kernel refused bytes at the last write

    def __len__(self) -> int:
        return len(self._buf)

    # --- appending -----------------------------------------------------------

    def apply(self, action: Action) -> bool:
        """Apply an action that concerns only this queue (a reply, a replay,
        a mode change, a login); False if `action` is not one of those."""
        if isinstance(action, Emit):
            self.emit(action.event)
        elif isinstance(action, Replay):
            for m in action.messages if not self.closed else ():
                if self.codec is not None and not self.codec.ready:
                    self._held.append(m)
                else:
                    self._append_message(m, self._encode_message(m), exempt=True)
        elif isinstance(action, SetMode):
            self.mode = action.mode
        elif isinstance(action, LoggedIn):
            self.user = action.user
        else:
            return False
        return True

    def emit(self, event: Event) -> None:
        """Queue a reply to the connection's own command (exempt)."""
        if not self.closed:
            waiting = self._waiting()
            self._append(self._encode(event), exempt=True)
            if waiting and not self._waiting():  # the codec's welcome is out:
                self.release_held(exempt=True)  # the replay follows it at once

    def deliver(self, msg: Message, cache: dict[Mode, bytes], batch_running: bool) -> bool:
        """Queue a message pushed to this reader, encoded once per mode via
        `cache`. While the connection's own batch runs, the echo of its own
        message is held (and everything after it) until `release_held`.
        True if bytes were queued."""
        if self.closed:
            return False
        if self._held or (batch_running and msg.sender == self.user) or self._waiting():
            self._held.append(msg)
            return False
        if self.codec is not None:
            self._append_message(msg, self.codec.message(msg))
            return True
        data = cache.get(self.mode)
        if data is None:
            data = cache[self.mode] = encode(msg, self.mode)
        self._append_message(msg, data)
        return True

    def release_held(self, exempt: bool = False) -> bool:
        """The connection's batch ended: queue the held echoes (encoded now:
        the batch may have changed the mode). True if any were."""
        if self._waiting():
            return False
        held, self._held = self._held, []
        if not held or self.closed:
            return False
        for msg in held:
            self._append_message(msg, self._encode_message(msg), exempt)
        return True

    def bye(self, reason: ByeReason | None) -> None:
        """Queue the last line (none if `reason` is None) and close the queue."""
        if self.closed:
            return
        if reason is not None:
            self._append(self._encode(Bye(reason)), exempt=True)
        self._held = []
        self.closed = True

    def drop(self) -> None:
        """The socket is gone: forget every byte and close the queue."""
        self._appended -= len(self._buf)
        self._buf.clear()
        self._exempt = 0
        self._held = []
        self._unacked.clear()
        self.closed = True

    # --- writing ---------------------------------------------------------------

    def write_to(self, send: Send, cap: int) -> Written:
        """Offer up to `cap` bytes of the head to `send`; account what it took."""
        buf = self._buf
        offered = min(len(buf), cap)
        if not offered:
            return Written(0, 0, 0)
        with memoryview(buf) as view, view[:offered] as part:
            n = send(part)
        if n:
            self._mid_line = buf[n - 1] != _NL
            del buf[:n]
            self._exempt = min(self._exempt, len(buf))
        self.refused = n < offered
        return Written(n, offered, self._account(n))

    def take(self) -> bytes:
        """Hand everything queued to a writer (`written` says what got out)."""
        data = bytes(self._buf)
        self._buf.clear()
        self._exempt = 0
        self._mid_line = False  # whole lines only are taken
        return data

    def written(self, n: int) -> int:
        """A writer wrote `n` more bytes of what it took; returns the highest
        text-mode message id now wholly written (0 if none)."""
        return self._account(n)

    # --- limits ------------------------------------------------------------------

    def over_limit(self, max_outbuf: int) -> bool:
        """True if what others sent waits beyond `max_outbuf` bytes."""
        return len(self._buf) - self._exempt > max_outbuf

    def slow(self, max_outbuf: int) -> bool:
        """The slow-consumer judgement: the kernel refused bytes (the peer
        is not reading) and more than the limit waits behind them."""
        return not self.closed and self.refused and self.over_limit(max_outbuf)

    def cut(self) -> None:
        """Slow consumer: drop what is queued but the rest of a line already
        partly on the wire; dropped messages are never acknowledged."""
        keep = self._buf.find(b"\n") + 1 if self._mid_line else 0
        self._appended -= len(self._buf) - keep
        del self._buf[keep:]
        while self._unacked and self._unacked[-1][0] > self._appended:
            self._unacked.pop()
        self._exempt = 0
        self._held = []

    # --- encoding -------------------------------------------------------------------

    def _encode(self, event: Event) -> bytes:
        return self.codec.encode(event) if self.codec is not None else encode(event, self.mode)

    def _encode_message(self, msg: Message) -> bytes:
        return self.codec.message(msg) if self.codec is not None else encode(msg, self.mode)

    def _waiting(self) -> bool:
        """The codec's welcome is not out yet: messages wait."""
        return self.codec is not None and not self.codec.ready

    # --- accounting ----------------------------------------------------------------

    def _append(self, data: bytes, exempt: bool = False) -> None:
        self._buf += data
        self._appended += len(data)
        if exempt:
            self._exempt += len(data)

    def _append_message(self, msg: Message, data: bytes, exempt: bool = False) -> None:
        self._append(data, exempt)
        if self.mode is Mode.TEXT:
            self._unacked.append((self._appended, msg.id))

    def _account(self, n: int) -> int:
        self._sent += n
        acked = 0
        unacked = self._unacked
        while unacked and unacked[0][0] <= self._sent:
            acked = unacked.popleft()[1]
        return acked
