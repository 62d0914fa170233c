"""`chat-server`: command-line options and wiring only (PROTOCOL.md §8).

Owns: argument parsing, log set-up and signal handling. Must not: contain
server logic.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from reactor import limits, logs
from reactor.config import Config
from reactor.server import Server

log = logging.getLogger("reactor.cli")


def _positive(kind):
    def convert(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return convert


def _non_negative(kind):
    def convert(text: str):
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
        return value

    return convert


def build_parser() -> argparse.ArgumentParser:
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
    a("--db", default="chat.db", help="SQLite file for users, groups and history")
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
        "--locking",
        choices=["global", "fine"],
        default="global",
        help="global: one lock around all shared state; fine: one lock per structure",
    )
    a("--trace", metavar="FILE", help="write a concurrency trace (not available yet)")
    a("--trace-sample", type=float, default=1.0, metavar="P", help="fraction of tasks traced")
    a(
        "--auth",
        choices=["password", "none"],
        default="password",
        help="password accounts, or classroom mode (/login <name> claims the name)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.loglevel)
    if args.trace:
        print("chat-server: --trace is not available in this version yet", file=sys.stderr)
        return 2
    config = Config(**{k: v for k, v in vars(args).items()})
    try:
        server = Server(config)
        server.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1

    def on_signal(signum: int, frame: object) -> None:
        log.info("%s received", signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server.serve()
    return 0
