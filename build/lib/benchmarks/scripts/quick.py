"""Quick throughput check: N clients send private messages for a few seconds.

Starts a real server per locking strategy on a free loopback port (with
--auth none and no rate limit), drives it with the load generator (closed
loop, a window of in-flight messages per client, one load process), and
prints delivered messages per second for each strategy and their ratio
(measured in the same run, since a small machine is noisy). The benchmark
matrix (`chat-bench`) measures every design; this is the smoke-sized check.

    .venv/bin/python -m benchmarks.scripts.quick --clients 100 --seconds 5
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import Client, ServerProcess
from loadgen.run import LoadSpec, Summary
from loadgen.run import run as run_load


def run(addr: tuple[str, int], clients: int, seconds: float, window: int) -> Summary:
    """`clients` users of one load process send each other private messages
    for `seconds`, `window` in flight each, against the server at `addr`.
    Raises loadgen.run.LoadError when the load cannot run."""
    spec = LoadSpec(host=addr[0], port=addr[1], clients=clients, duration=seconds,
                    window=window, procs=1, prefix="b")  # fmt: skip
    return run_load(spec)


def lock_table(addr: tuple[str, int]) -> str:
    """The server's /stats table (text mode) after a run."""
    c = Client(addr, json_mode=False)
    c.send("/login stats_reader", "/stats", "/exit")
    lines = [line.rstrip("\n") for line in c.until_closed()]
    start = next(i for i, x in enumerate(lines) if "Lock statistics" in x)
    end = next(i for i, x in enumerate(lines) if x.startswith("locking "))
    return "\n".join(lines[start : end + 1])


def start_server(db: Path, *args: str) -> ServerProcess:
    """A server with --auth none and no rate limit (and `args`), started."""
    return ServerProcess(db, "--auth", "none", "--rate-limit", "0", *args).start()


def main() -> None:
    """Run the check under `global` then `fine` locking and print both and their ratio."""
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
            srv = start_server(Path(tmp) / f"{locking}.db", "--locking", locking,
                               "--workers", str(args.workers))  # fmt: skip
            try:
                results[locking] = run(srv.addr, args.clients, args.seconds, args.window)
                if args.stats:
                    tables[locking] = lock_table(srv.addr)
            finally:
                srv.stop()
    for locking, r in results.items():
        print(
            f"{locking:6}  {args.clients} clients  delivered {r.delivered_per_s:9.0f} msg/s"
            f"  acked sends {r.acked / r.seconds:9.0f}/s"
            + ("" if r.ok else f"  errors {r.errors}, undelivered {r.undelivered}")
        )
    for locking, table in tables.items():
        print(f"\n--- {locking}: /stats after the run\n{table}")
    g, f = results["global"].delivered_per_s, results["fine"].delivered_per_s
    print(f"fine / global = {f / g:.2f}")


if __name__ == "__main__":
    main()
