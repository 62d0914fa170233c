"""`chat-server`: command-line options and wiring only (docs/protocol.md §8).

Owns: argument parsing, log set-up and signal handling. Must not: contain
server logic.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import logging
import signal
import sqlite3
import ssl
from collections.abc import Callable
from typing import TypeVar

from reactor import limits, logs
from reactor.config import Config
from reactor.kinds import Auth, Model, Strategy
from reactor.server import Server

log = logging.getLogger("reactor.cli")

_Number = TypeVar("_Number", int, float)


def _positive(kind: Callable[[str], _Number]) -> Callable[[str], _Number]:
    def convert(text: str) -> _Number:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return convert


def _non_negative(kind: Callable[[str], _Number]) -> Callable[[str], _Number]:
    def convert(text: str) -> _Number:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
        return value

    return convert


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text}")
    return value


def _networks(text: str) -> tuple[str, ...]:
    if text.strip().lower() == "none":
        return ()
    nets = tuple(n.strip() for n in text.split(",") if n.strip())
    for n in nets:
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{n!r} is not an address or network") from None
    return nets


def build_parser() -> argparse.ArgumentParser:
    """The `chat-server` argument parser; its option names are `Config`'s fields."""
    p = argparse.ArgumentParser(
        prog="chat-server",
        description="Multi-user TCP chat server: one selectors reactor thread owns every "
        "socket, a worker pool runs the commands under named locks. "
        "Chat with `nc 127.0.0.1 9000`, then type /help.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a = p.add_argument
    a("--ip", default="127.0.0.1", help="address to listen on")
    a("--port", type=_non_negative(int), default=9000, help="TCP port (0 picks a free one)")
    a(
        "--store",
        "--db",
        dest="db",
        default="chat.db",
        metavar="STORE",
        help="where users, groups and history live: a SQLite file, or postgresql://HOST/DB "
        "shared by the nodes of a cluster (with --bus; docs/cluster.md)",
    )
    a(
        "--bus",
        metavar="URL",
        help="redis://HOST:PORT/N: the cluster's notifications between nodes (with a "
        "postgresql:// --store)",
    )
    a("--node", metavar="NAME", help="this cluster node's name (default: host:port)")
    a(
        "--loglevel",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="console log level",
    )
    a(
        "--max-line",
        type=_positive(int),
        default=limits.MAX_LINE,
        metavar="BYTES",
        help="longest accepted line, terminator included",
    )
    a(
        "--max-outbuf",
        type=_positive(int),
        default=limits.MAX_OUTBUF,
        metavar="BYTES",
        help="output buffered per connection before it is dropped as a slow consumer",
    )
    a(
        "--rate-limit",
        type=_non_negative(float),
        default=limits.RATE_LIMIT,
        metavar="N",
        help="commands per second per connection (0 turns the limit off)",
    )
    a(
        "--rate-burst",
        type=_positive(int),
        default=limits.RATE_BURST,
        metavar="N",
        help="commands a connection may send at once above the rate",
    )
    a(
        "--login-timeout",
        type=_positive(float),
        default=limits.LOGIN_TIMEOUT,
        metavar="S",
        help="seconds a new connection has to log in",
    )
    a(
        "--max-login-failures",
        type=_positive(int),
        default=limits.MAX_LOGIN_FAILURES,
        metavar="N",
        help="failed logins on one connection before it is closed",
    )
    a(
        "--max-clients",
        type=_positive(int),
        default=limits.MAX_CLIENTS,
        metavar="N",
        help="open connections before new ones are refused (bye server_full)",
    )
    a(
        "--workers",
        type=_positive(int),
        default=limits.WORKERS,
        metavar="N",
        help="worker threads running commands",
    )
    a(
        "--login-lane",
        type=_positive(int),
        default=limits.LANE_CAPACITY,
        metavar="N",
        help="batches with a /register or /login (password hashing) held at once; "
        "one more is answered busy",
    )
    a(
        "--max-unauthenticated",
        type=_non_negative(int),
        default=limits.MAX_UNAUTHENTICATED_PER_ADDRESS,
        metavar="N",
        help="connections not logged in per client address; one more gets bye server_full "
        "(0: no limit)",
    )
    a(
        "--login-rate",
        type=_non_negative(float),
        default=limits.LOGINS_PER_ADDRESS_RATE,
        metavar="N",
        help="/login and /register per second per client address, burst "
        f"{limits.LOGINS_PER_ADDRESS_BURST}; over it: rate_limited (0: no limit)",
    )
    a(
        "--limit-exempt",
        type=_networks,
        default=limits.LIMIT_EXEMPT,
        metavar="CIDRS",
        help="comma-separated networks the per-address limits skip ('none': no exemption)",
    )
    a(
        "--locking",
        choices=[s.value for s in Strategy],
        default="global",
        help="global: one lock around all shared state; fine: one lock per structure; "
        "inverted: fine with a deliberate lock-order bug, for the lock-order demo",
    )
    a("--trace", metavar="FILE", help="write a concurrency trace (JSON Lines, docs/trace.md)")
    a(
        "--trace-sample",
        type=_fraction,
        default=1.0,
        metavar="P",
        help="fraction of tasks traced, whole tasks only (0 < P <= 1)",
    )
    a(
        "--trace-io",
        action="store_true",
        help="also trace io_read/io_write (one event per recv and send)",
    )
    a(
        "--lockdep",
        action="store_true",
        help="check lock order, warn of possible deadlocks (always on with --trace)",
    )
    a(
        "--watchdog",
        type=_non_negative(float),
        default=limits.WATCHDOG_SECONDS,
        metavar="S",
        help="report lock waits longer than S seconds with the wait-for graph (0: off)",
    )
    a(
        "--model",
        choices=[m.value for m in Model],
        default="reactor",
        help="I/O model: one selectors thread and a worker pool; the course project's "
        "thread per client (blocking sockets); or one selectors thread that runs every "
        "command itself (inline); the same commands, locks and storage in all three",
    )
    a("--tls-cert", metavar="FILE", help="serve TLS with this certificate (PEM); needs --tls-key")
    a("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    a(
        "--irc-port",
        type=_non_negative(int),
        default=None,
        metavar="PORT",
        help="also serve IRC clients on PORT (0: any free port; off by default; docs/irc.md)",
    )
    a(
        "--irc-name",
        default="reactor-chat",
        metavar="NAME",
        help="the IRC server's and network's name (default reactor-chat)",
    )
    a(
        "--auth",
        choices=[a.value for a in Auth],
        default="password",
        help="password accounts, or classroom mode (/login <name> claims the name)",
    )
    return p


def _cluster_installed() -> bool:
    """True if the cluster's drivers (psycopg, redis-py) can be imported."""
    return all(
        importlib.util.find_spec(m) is not None for m in ("psycopg", "psycopg_pool", "redis")
    )


def main(argv: list[str] | None = None) -> int:
    """Run `chat-server` with `argv` (default: the command line) until a
    signal stops it; returns the exit status (1: the server could not start)."""
    args = build_parser().parse_args(argv)
    logs.setup(args.loglevel)
    if bool(args.tls_cert) != bool(args.tls_key):
        build_parser().error("--tls-cert and --tls-key go together")
    if args.tls_cert and args.model == "threaded":
        # One SSL object may not be read and written by two threads at once,
        # and this model writes from any thread: TLS is the reactor's.
        build_parser().error("--model threaded does not serve TLS; use --model reactor")
    if args.irc_port is not None and args.model == "threaded":
        build_parser().error("--irc-port needs --model reactor or inline")
    if not args.irc_name or any(c in args.irc_name for c in " :!@\r\n"):
        build_parser().error("--irc-name: one word without : ! @")
    config = Config(**{k: v for k, v in vars(args).items()})
    if config.clustered != bool(config.bus):
        build_parser().error("a postgresql:// --store and --bus redis://... go together")
    if config.clustered and not _cluster_installed():
        log.error("cannot start: a cluster node needs: pip install 'reactor-chat[cluster]'")
        return 1
    try:
        server = Server(config)
        server.start()
    except (OSError, sqlite3.Error, ssl.SSLError) as exc:
        log.error("cannot start: %s", exc)
        return 1

    def on_signal(signum: int, frame: object) -> None:
        log.info("%s received", signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server.serve()
    return 0
