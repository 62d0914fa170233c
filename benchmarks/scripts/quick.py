"""Quick throughput check: N clients send private messages for a few seconds.

Starts a real server per locking strategy on a free loopback port (with
--auth none and no rate limit), drives it from one selectors loop in this
process with a window of in-flight messages per client, and prints
delivered messages per second for each strategy and their ratio (measured in
the same run, since this 2-core machine is noisy). The full load generator
and benchmark matrix are separate work; this is the smoke-sized version.

    .venv/bin/python -m benchmarks.scripts.quick --clients 100 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import random
import selectors
import socket
import tempfile
import time
from pathlib import Path

from tests.support.chatclient import ServerProcess


class SimClient:
    def __init__(self, addr, name: str) -> None:
        self.name = name
        self.sock = socket.create_connection(addr)
        self.sock.setblocking(False)
        self.buf = b""
        self.out = bytearray(f"/mode json\n/login {name}\n".encode())
        self.inflight = 0
        self.ready = False
        self.delivered = 0
        self.unacked = 0
        self.last_id = 0


def run(addr, clients: int, seconds: float, window: int) -> dict:
    sel = selectors.DefaultSelector()
    sims = [SimClient(addr, f"b{i}") for i in range(clients)]
    for s in sims:
        sel.register(s.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, s)
    names = [s.name for s in sims]
    rng = random.Random(1)
    start = None
    end = None
    sent = oks = 0
    while True:
        now = time.monotonic()
        if start is None and all(s.ready for s in sims):
            start, end = now, now + seconds
        if end is not None and now >= end:
            break
        for key, mask in sel.select(0.5):
            s = key.data
            if mask & selectors.EVENT_READ:
                data = s.sock.recv(65536)
                if not data:
                    raise SystemExit(f"{s.name}: server closed")
                s.buf += data
                *lines, s.buf = s.buf.split(b"\n")
                for line in lines:
                    if not line.startswith(b"{"):
                        continue
                    ev = json.loads(line)
                    if ev["type"] == "message":
                        s.delivered += start is not None
                        s.last_id = ev["id"]
                        s.unacked += 1
                    elif ev["type"] == "ok" and ev["cmd"] == "send":
                        s.inflight -= 1
                        oks += start is not None
                    elif ev["type"] == "ok" and ev["cmd"] == "login":
                        s.ready = True
                    elif ev["type"] == "error":
                        raise SystemExit(f"{s.name}: {ev}")
            if s.ready and start is not None:
                while s.inflight < window:
                    to = names[rng.randrange(clients)]
                    s.out += f"/send {to} {time.monotonic():.6f} hello\n".encode()
                    s.inflight += 1
                    sent += 1
                if s.unacked >= 50:  # batched acks, as the real client does
                    s.out += f"/ack {s.last_id}\n".encode()
                    s.unacked = 0
            if s.out and mask & selectors.EVENT_WRITE:
                n = s.sock.send(s.out)
                del s.out[:n]
    delivered = sum(s.delivered for s in sims)
    for s in sims:
        s.sock.close()
    return {"delivered_per_s": delivered / seconds, "ok_per_s": oks / seconds}


def lock_table(addr) -> str:
    """The server's /stats table (text mode) after a run."""
    with socket.create_connection(addr) as sock:
        f = sock.makefile("rwb")
        f.write(b"/login stats_reader\n/stats\n/exit\n")
        f.flush()
        lines = [line.decode().rstrip("\n") for line in f]
    start = next(i for i, x in enumerate(lines) if "Lock statistics" in x)
    end = next(i for i, x in enumerate(lines) if x.startswith("locking "))
    return "\n".join(lines[start : end + 1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--window", type=int, default=8, help="messages in flight per client")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--stats", action="store_true", help="print /stats after each run")
    args = p.parse_args()
    results, tables = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for locking in ("global", "fine"):
            srv = ServerProcess(
                Path(tmp) / f"{locking}.db",
                "--auth",
                "none",
                "--rate-limit",
                "0",
                "--locking",
                locking,
                "--workers",
                str(args.workers),
            )
            srv.start()
            try:
                results[locking] = run(srv.addr, args.clients, args.seconds, args.window)
                if args.stats:
                    tables[locking] = lock_table(srv.addr)
            finally:
                srv.stop()
    for locking, r in results.items():
        print(
            f"{locking:6}  {args.clients} clients  delivered {r['delivered_per_s']:9.0f} msg/s"
            f"  acked sends {r['ok_per_s']:9.0f}/s"
        )
    for locking, table in tables.items():
        print(f"\n--- {locking}: /stats after the run\n{table}")
    g, f = results["global"]["delivered_per_s"], results["fine"]["delivered_per_s"]
    print(f"fine / global = {f / g:.2f}")


if __name__ == "__main__":
    main()
