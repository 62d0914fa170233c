"""A reference chat relay in plain asyncio streams: the benchmark's outside
yardstick, "what does a trivial relay in asyncio cost on this machine".

Owns: the relay's program: `serve` (the listening socket on `ip:port`,
SIGINT and SIGTERM, then `bye shutdown` to every connection) and its
command line (`python -m benchmarks.relay`). The relay itself (its state,
connections and commands) is benchmarks/relay_core.py.

Must not: hold chat state or speak the protocol (benchmarks/relay_core.py
does); import the real server's machinery (loop, workers, locks, storage),
which it is measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from benchmarks.relay_core import Relay
from reactor import limits, logs

log = logging.getLogger("benchmarks.relay")


async def serve(ip: str, port: int) -> None:
    """Run the relay on `ip:port` until SIGINT or SIGTERM, then say `bye
    shutdown` to every connection and return once they are closed.

    Raises:
        OSError: the address cannot be bound.
    """
    relay = Relay()
    # readuntil() refuses a line whose "\n" sits past `limit`: MAX_LINE - 1
    # bytes before it means MAX_LINE with the terminator, PROTOCOL §1's limit.
    server = await asyncio.start_server(relay.handle, ip, port, limit=limits.MAX_LINE - 1)
    host, bound = server.sockets[0].getsockname()[:2]
    log.info("listening on %s:%d (benchmark relay: asyncio streams, stores nothing)", host, bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _on_signal, signum, stop)
    await stop.wait()
    server.close()  # (no wait_closed: from 3.12 it also waits for every connection)
    await relay.shutdown()
    log.info("stopped")


def _on_signal(signum: int, stop: asyncio.Event) -> None:
    log.info("%s received", signal.Signals(signum).name)
    stop.set()


def build_parser() -> argparse.ArgumentParser:
    """The relay's options: the real server's --ip, --port and --loglevel."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.relay",
        description="Reference chat relay for the benchmark: plain asyncio streams, "
        "the same wire protocol, nothing stored.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=9000, help="TCP port (0 picks a free one)")
    levels = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    p.add_argument("--loglevel", default="INFO", type=str.upper, choices=levels, help="log level")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the relay from the command line; returns the exit status (0 after
    SIGINT/SIGTERM, 1 if the address cannot be bound)."""
    args = build_parser().parse_args(argv)
    logs.setup(args.loglevel)
    try:
        asyncio.run(serve(args.ip, args.port))
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
