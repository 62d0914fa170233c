"""The client's connection to a chat server: asyncio streams, JSON mode,
replies matched to commands, acks, and reconnecting.

Owns: the socket (an asyncio stream), the login, the FIFO of commands
waiting for their reply, batched `/ack`s, and the reconnect loop.
Must not: print or know about prompt_toolkit; the UI registers callbacks.

The server answers every command exactly once, in order (docs/protocol.md §4),
so replies are matched to commands with a FIFO of futures. Everything else
(`message`, `bye`, unknown types) goes to `on_event`. Every message received
is acknowledged (cumulatively, at most every ACK_EVERY messages or
ACK_DELAY seconds), so a reconnect replays exactly what was not seen and
nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("client.connection")

#: Acknowledge at least every this many messages, or after this long.
ACK_EVERY = 20
ACK_DELAY = 0.2
#: Reconnect back-off: first wait, doubling up to the cap.
BACKOFF_FIRST = 0.2
BACKOFF_CAP = 5.0


#: A command's reply, once the server sends it.
Reply = asyncio.Future[dict[str, Any]]


class ChatError(Exception):
    """The server answered a command with an error."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"{reply.get('code')}: {reply.get('message')}")
        self.reply = reply
        self.code = reply.get("code")


class Disconnected(Exception):
    """The connection is down; the command was not answered."""


@dataclass
class Account:
    """Who logs in: a name, the password (None for a server run with
    `--auth none`), and whether to register the name first."""

    name: str
    password: str | None
    register: bool = False


class Connection:
    """One logged-in session that survives reconnects."""

    def __init__(
        self, host: str, port: int, account: Account, tls: ssl.SSLContext | None = None
    ) -> None:
        self.host, self.port, self.account = host, port, account
        self.tls = tls  # an ssl.SSLContext for a TLS server, else None
        self.user: str | None = None
        self.state = "disconnected"  # connecting | connected | reconnecting | closed
        self.groups: list[str] = []
        # Events that arrive before a UI listens (the replay right after the
        # login reply) wait here and are handed over when one does.
        self._on_event: Callable[[dict[str, Any]], None] | None = None
        self._early: list[dict[str, Any]] = []
        self.on_state: Callable[[str], None] = lambda s: None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: deque[Reply] = deque()
        self._last_seen = 0  # highest message id received
        self._acked = 0
        self._ack_task: asyncio.Task[None] | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()  # acks sent now, the reconnect
        self._closing = False
        # Reconnect tries since the connection was lost (0 while connected),
        # so a UI can update one status line instead of logging each try.
        self.attempts = 0

    @property
    def on_event(self) -> Callable[[dict[str, Any]], None] | None:
        """The UI's handler of events (messages, bye, notices), if one listens."""
        return self._on_event

    @on_event.setter
    def on_event(self, handler: Callable[[dict[str, Any]], None]) -> None:
        """Listen for events; those that came before are handed over first."""
        self._on_event = handler
        early, self._early = self._early, []
        for event in early:
            handler(event)

    # --- life cycle ---------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Connect and log in (registering first if asked); return the login reply."""
        return await self._connect(first=True)

    async def _connect(self, first: bool = False) -> dict[str, Any]:
        if first:
            self._set_state("connecting")
        else:  # the state stays "reconnecting"; only the count of tries moves
            self.attempts += 1
            self.on_state("reconnecting")
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.tls)
        # Each connection has its own reader task and its own FIFO of
        # commands waiting for replies: a dying one cannot touch the next.
        self._reader, self._writer, self._pending = reader, writer, deque()
        self._read_task = asyncio.create_task(self._read_loop(reader, writer, self._pending))
        await self.call("/mode json")
        if first and self.account.register:
            await self.call(f"/register {self.account.name} {self.account.password}")
        creds = self.account.name + (f" {self.account.password}" if self.account.password else "")
        reply = await self.call(f"/login {creds}")
        self.user = reply["user"]
        self.groups = list(reply.get("groups", []))
        self.attempts = 0
        self._set_state("connected")
        return reply

    async def close(self) -> None:
        """Say /exit (if connected), flush acks, and close."""
        self._closing = True
        if self.state == "connected":
            await self._send_ack()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.call("/exit"), 2)
        self._set_state("closed")
        if self._writer is not None:
            self._writer.close()
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._background.discard)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.on_state(state)

    # --- commands ---------------------------------------------------------------------

    async def call(self, line: str) -> dict[str, Any]:
        """Send one command line; return its `ok` reply or raise ChatError."""
        if self._writer is None or self._writer.is_closing():
            raise Disconnected("not connected")
        future: Reply = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        self._writer.write(line.encode() + b"\n")
        await self._writer.drain()
        reply = await future
        if reply["type"] == "error":
            raise ChatError(reply)
        return reply

    # --- reading ------------------------------------------------------------------------

    async def _read_loop(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: deque[Reply]
    ) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # the welcome line, sent before /mode json took effect
                self._dispatch(event, pending)
        except (ConnectionError, OSError) as exc:
            log.info("connection lost: %s", exc)
        finally:
            writer.close()
            for future in pending:
                if not future.done():
                    future.set_exception(Disconnected("connection lost"))
            pending.clear()
        # Only a session that was up starts the reconnect loop; a failed
        # attempt inside that loop just ends here.
        if not self._closing and self.state == "connected" and writer is self._writer:
            self._in_background(self._reconnect())

    def _dispatch(self, event: dict[str, Any], pending: deque[Reply]) -> None:
        kind = event.get("type")
        if kind in ("ok", "error") and pending:
            future = pending.popleft()
            if not future.done():
                future.set_result(event)
            return
        if kind == "message":
            if event["id"] <= self._last_seen:
                return  # shown before a reconnect, replayed because not yet acked
            self._last_seen = event["id"]
            self._schedule_ack()
        if kind == "bye" and event.get("reason") == "replaced":
            self._closing = True  # another login took over: do not fight it
        if self._on_event is None:
            self._early.append(event)
        else:
            self._on_event(event)

    # --- acks -----------------------------------------------------------------------------

    def _schedule_ack(self) -> None:
        if self._last_seen - self._acked >= ACK_EVERY:
            self._in_background(self._send_ack())
        elif self._ack_task is None or self._ack_task.done():
            self._ack_task = asyncio.create_task(self._ack_later())

    async def _ack_later(self) -> None:
        await asyncio.sleep(ACK_DELAY)  # batching acks is the point of this wait
        await self._send_ack()

    async def _send_ack(self) -> None:
        upto = self._last_seen
        if upto > self._acked and self.state == "connected":
            self._acked = upto
            with contextlib.suppress(ChatError, Disconnected, ConnectionError):
                await self.call(f"/ack {upto}")

    # --- reconnecting -----------------------------------------------------------------------

    async def _reconnect(self) -> None:
        delay = BACKOFF_FIRST
        self._set_state("reconnecting")
        while not self._closing:
            try:
                await self._connect()
                return
            except (OSError, Disconnected, ChatError) as exc:
                if self._writer is not None:
                    self._writer.close()  # ends that attempt's reader task
                log.info("reconnect failed (%s); next try in %.1f s", exc, delay)
                await asyncio.sleep(delay)  # back-off between tries
                delay = min(delay * 2, BACKOFF_CAP)
