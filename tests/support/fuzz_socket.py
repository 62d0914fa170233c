"""Socket fuzzer: hostile bytes on many connections while a well-behaved pair chats.

For a bounded time, `connections` fuzz connections send random bytes, valid
command lines and mutations of them (bit flips, truncations, huge lines,
lines at the length limit, invalid UTF-8, NULs, lone CRs, pipelined bursts,
byte-at-a-time trickles), log in now and then as throwaway users, stop
reading, half-close, hang up mid-line, reset, and reconnect; short-lived
connections come and go beside them. Meanwhile one pair of users sends
private and group messages over ordinary blocking clients and records every
acknowledged id. At the end the server must still answer `/ping` on a new
connection, and every acknowledged message of the pair must be in `/history`
and must have reached its recipients. Only loopback addresses are used;
every count and buffer is bounded.

    .venv/bin/python -m tests.support.fuzz_socket --start --seconds 30
    .venv/bin/python -m tests.support.fuzz_socket --port 9000 --seconds 10

`fuzz(addr, seconds, connections, seed)` runs it against a server that is
already up and returns the volume and the list of failures (empty if all
checks passed), so a test can call it.

Owns: the run (`fuzz`: the accounts, the threads, the final probe and the
result) and its command line. The parts it runs have modules of their own:
the fuzz connections (tests/support/fuzz_driver.py), what they send
(fuzz_inputs.py), the oracle (fuzz_oracle.py) and the pair (fuzz_pair.py).
Must not: fuzz an address that is not loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import Client, ServerProcess
from tests.support.chatclient import fresh_name
from tests.support.fuzz_driver import Fuzzer
from tests.support.fuzz_inputs import Vocabulary
from tests.support.fuzz_oracle import MAX_FAILURES, Oracle
from tests.support.fuzz_pair import PAIR_TIMEOUT, Pair

MAX_LINE = 4096  # the server's default --max-line: lines are made at and around it
FUZZ_USERS = 8


def _loopback(addr) -> tuple[str, int]:
    host, port = addr
    if not host.startswith("127."):
        raise ValueError(f"fuzzing only loopback addresses, not {host}")
    return host, int(port)


def fuzz(
    addr, seconds: float = 10.0, connections: int = 20, seed: int = 0, *, max_line: int = MAX_LINE
) -> dict:
    """Fuzz the server at `addr` (a loopback address) for `seconds` with
    `connections` fuzz connections, while a well-behaved pair chats.
    `max_line` is the server's --max-line.

    Returns the volume (`connections`, `lines`, `bytes_sent`,
    `bytes_received`, ...), the pair's numbers (`pair_messages`, ...), and
    `failures`: a list of what went wrong, empty when every check passed.
    Raises ValueError for an address that is not loopback.
    """
    addr = _loopback(addr)
    rng = random.Random(seed)
    failures: list[str] = []
    setup = Client(addr)
    fuzz_users = [fresh_name("fzU") + os.urandom(2).hex() for _ in range(FUZZ_USERS)]
    for name in fuzz_users:
        setup.ok(f"/register {name} pw")
    setup.close()
    pair = Pair(addr, password=os.urandom(8).hex())
    pair.start()
    pair_names = [c.name for c in pair.clients]
    # Group names include users' names: users and groups share one namespace.
    groups = ["fzgroup", "FZGROUP", pair.group, pair.group.upper(), *pair_names]
    vocab = Vocabulary(rng, fuzz_users + pair_names, groups, max_line)
    fuzzer = Fuzzer(addr, connections, rng, vocab, fuzz_users)
    oracle_vocab = Vocabulary(random.Random(seed + 1), vocab.users, groups, max_line)
    oracle = Oracle(addr, oracle_vocab, pair.group)
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=pair.run, args=(deadline,), daemon=True),
        threading.Thread(target=oracle.run, args=(deadline,), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        fuzzer.run(deadline)
    finally:
        fuzzer.close()
        for thread in threads:
            thread.join(PAIR_TIMEOUT + 5)
    if any(thread.is_alive() for thread in threads):
        failures.append("pair or oracle: still waiting for a reply at the end")
    failures += pair.failures + oracle.failures + fuzzer.failures[:MAX_FAILURES]
    try:
        probe = Client(addr, timeout=10)
        if probe.call("/ping still-alive") != {"type": "ok", "cmd": "ping", "token": "still-alive"}:
            failures.append("a new connection's /ping was not answered")
        probe.close()
    except (OSError, EOFError, ValueError) as exc:
        failures.append(f"a new connection could not /ping: {type(exc).__name__}: {exc}")
    if not threads[0].is_alive():
        failures += pair.check()
    pair.close()
    oracle.close()
    v = fuzzer.volume
    return {
        "connections": v.connections + 2 + len(pair.clients),
        "lines": v.lines,
        "bytes_sent": v.bytes_sent,
        "bytes_received": v.bytes_received,
        "lines_received": v.lines_received,
        "resets": v.resets,
        "server_closed": v.server_closed,
        "pair_messages": pair.sent(),
        "pair_rate_limited": pair.rate_limited,
        "pair_max_latency": round(pair.max_latency, 3),
        "oracle_lines": oracle.lines,
        "failures": [f if len(f) <= 500 else f[:500] + "..." for f in failures],
    }


def tracebacks(log: str, context: int = 30) -> str:
    """The parts of a server log from each "Traceback" on, for a report."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if "Traceback" in line]
    return "\n...\n".join("\n".join(lines[max(0, i - 2) : i + context]) for i in starts[:5])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ip", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--start", action="store_true", help="start a server on a free port")
    ap.add_argument(
        "--server-args",
        default="--rate-limit 0",
        help="options for the server --start runs (default: %(default)s)",
    )
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--max-line",
        type=int,
        default=MAX_LINE,
        help="the server's --max-line (passed to it with --start)",
    )
    args = ap.parse_args(argv)
    if not 1 <= args.connections <= 1000 or not 0 < args.seconds <= 600:
        ap.error("--connections must be 1-1000 and --seconds 0-600")
    if args.max_line < 256:
        ap.error("--max-line must be at least 256: the pair's lines must fit")
    srv = None
    if args.start:
        db = Path(tempfile.mkdtemp(prefix="fuzz-")) / "chat.db"
        server_args = ["--ip", args.ip, "--max-line", str(args.max_line)]
        srv = ServerProcess(db, *server_args, *shlex.split(args.server_args)).start()
        addr = srv.addr
    else:
        addr = (args.ip, args.port)
    try:
        result = fuzz(addr, args.seconds, args.connections, args.seed, max_line=args.max_line)
        if srv is not None:
            if srv.proc.poll() is not None:
                result["failures"].append(f"the server exited with {srv.proc.returncode}")
            elif srv.stop() != 0:
                result["failures"].append(f"the server stopped with {srv.proc.returncode}")
            if "Traceback" in srv.log_text():
                result["failures"].append("the server log has a Traceback")
                print(tracebacks(srv.log_text()), file=sys.stderr)
    finally:
        if srv is not None and srv.proc.poll() is None:
            srv.kill()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if result["failures"]:
        print(f"FAILED: {len(result['failures'])} check(s)", file=sys.stderr)
        return 1
    print(
        f"ok: {result['connections']} connections, {result['lines']} lines, "
        f"{result['bytes_sent']} bytes sent, {result['bytes_received']} received; "
        f"{result['pair_messages']} messages of the pair all stored and delivered"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
