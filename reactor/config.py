"""The server's settings, one frozen record built by the CLI (or tests).

Owns: `Config` and its defaults (from reactor/limits.py). Must not: parse
command lines (reactor/cli.py does) or hold runtime state.
"""

from __future__ import annotations

from dataclasses import dataclass

from reactor import limits
from reactor.kinds import Auth, Model, Strategy


@dataclass(frozen=True)
class Config:
    """Every setting of one server (see `chat-server --help`). The names of
    kinds may be given as their spellings ("fine"); they become enums."""

    ip: str = "127.0.0.1"
    port: int = 9000
    db: str = "chat.db"  # --store: a SQLite file, or postgresql://... for a cluster node
    bus: str | None = None  # redis://host:port/n, with a postgresql:// store
    node: str | None = None  # the cluster node's name (default host:port)
    loglevel: str = "INFO"
    max_line: int = limits.MAX_LINE
    max_outbuf: int = limits.MAX_OUTBUF
    rate_limit: float = limits.RATE_LIMIT  # 0 turns the limit off
    rate_burst: int = limits.RATE_BURST
    login_timeout: float = limits.LOGIN_TIMEOUT
    max_login_failures: int = limits.MAX_LOGIN_FAILURES
    max_clients: int = limits.MAX_CLIENTS
    workers: int = limits.WORKERS
    login_lane: int = limits.LANE_CAPACITY  # batches held by the lane, running or waiting
    max_unauthenticated: int = limits.MAX_UNAUTHENTICATED_PER_ADDRESS  # 0: off
    login_rate: float = limits.LOGINS_PER_ADDRESS_RATE  # per address; 0: off
    limit_exempt: tuple[str, ...] = limits.LIMIT_EXEMPT
    locking: Strategy = Strategy.GLOBAL
    model: Model = Model.REACTOR
    trace: str | None = None
    trace_sample: float = 1.0
    trace_io: bool = False  # io_read/io_write events (one per recv/send)
    lockdep: bool = False  # also on whenever tracing is
    watchdog: float = limits.WATCHDOG_SECONDS  # 0 turns it off
    auth: Auth = Auth.PASSWORD
    tls_cert: str | None = None  # with tls_key: serve TLS only (no plain port)
    tls_key: str | None = None
    irc_port: int | None = None  # also listen for IRC clients here (0: any free port)
    irc_name: str = "reactor-chat"  # the IRC server's and network's name

    @property
    def clustered(self) -> bool:
        """True if the store is a PostgreSQL database shared by nodes."""
        return self.db.startswith(("postgresql://", "postgres://"))

    def __post_init__(self) -> None:
        for name, kind in (("locking", Strategy), ("model", Model), ("auth", Auth)):
            object.__setattr__(self, name, kind(getattr(self, name)))
