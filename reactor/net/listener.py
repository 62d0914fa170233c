"""The listening socket: non-blocking accept, with back-off when the process
runs out of file descriptors.

Owns: the listening socket, whether it is registered with the selector, and
turning a connection away (`bye` with the reason the reactor gives, e.g.
`server_full`). Must not: know about connections beyond handing each
accepted socket to the reactor's callback.

When accept() fails with EMFILE/ENFILE (or the kernel is short of buffers),
accepting pauses for ACCEPT_BACKOFF_SECONDS and the error is logged at most
once a second, while open connections keep being served. (asyncio, in the
same situation, logged 63 MB of tracebacks in 8 s here.)
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import time
from collections.abc import Callable

from reactor import limits
from reactor.kinds import ByeReason
from reactor.protocol import TEXT, Bye, encode

log = logging.getLogger("reactor.net.listener")

_SHORT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Listener:
    """The listening socket, registered with the selector while accepting."""

    def __init__(
        self,
        sel: selectors.BaseSelector,
        address: tuple[str, int],
        on_socket: Callable[[socket.socket, str], None],
        refusal: Callable[[str], ByeReason | None],
        say_bye: bool = True,
    ) -> None:
        self._sel = sel
        self._on_socket = on_socket
        self._refusal = refusal
        self._say_bye = say_bye  # False on TLS: a plain bye would be noise there
        self.sock: socket.socket | None = socket.create_server(address, backlog=1024)
        self.sock.setblocking(False)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.paused_until = 0.0  # monotonic time accepting resumes; 0 if not paused
        self._logged_at = -1e9
        self._sel.register(self.sock, selectors.EVENT_READ, self._on_ready)

    def _on_ready(self, mask: int) -> None:
        listening = self.sock
        if listening is None:
            return
        for _ in range(64):  # bounded, so a connect storm cannot starve the loop
            try:
                sock, addr = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _SHORT_OF_RESOURCES:
                    self._pause(exc)
                else:
                    log.warning("accept failed: %s", exc)
                return
            sock.setblocking(False)
            peer = f"{addr[0]}:{addr[1]}"
            reason = self._refusal(addr[0])
            if reason is None:
                self._on_socket(sock, peer)
            else:
                self._refuse(sock, peer, reason)

    def _refuse(self, sock: socket.socket, peer: str, reason: ByeReason) -> None:
        if self._say_bye:
            try:
                sock.send(encode(Bye(reason), TEXT))  # best effort, never blocks
            except OSError:
                pass
        sock.close()
        log.warning("refused %s: %s", peer, reason)

    def _pause(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._logged_at >= 1.0:
            self._logged_at = now
            log.error("accept failed (%s); pausing accepts, still serving open connections", exc)
        if self.sock is not None:
            self._sel.unregister(self.sock)
        self.paused_until = now + limits.ACCEPT_BACKOFF_SECONDS

    def resume_if_due(self, now: float) -> None:
        """Accept again once a pause is over (called every loop pass)."""
        if self.paused_until and now >= self.paused_until and self.sock is not None:
            self.paused_until = 0.0
            self._sel.register(self.sock, selectors.EVENT_READ, self._on_ready)

    def close(self) -> None:
        """Stop accepting and close the listening socket (idempotent)."""
        if self.sock is None:
            return
        if not self.paused_until:
            self._sel.unregister(self.sock)
        self.sock.close()
        self.sock = None
