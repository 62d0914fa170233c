"""Soak: churn, slow readers, a flood and chat against one server, then check
that the server gave back what it took and lost no acknowledged message.

Starts a real server (loopback only, `--rate-limit 0`, a temporary database,
glibc's mmap threshold pinned: see PINNED_MALLOC), warms it up with the same
load and records its RSS, open fds and threads with no client connected.
Then, for `--seconds`, threads of this process run four loads at once
(blocking sockets, paced, so the load generator stays cheap):

- churn: connections that come and go: closed at once (FIN, or RST through
  SO_LINGER 0), cut mid-line, bad input, a command without logging in, or a
  login followed by a command and a close or `/exit`;
- slow: users with a tiny SO_RCVBUF (and MSS) that stop reading while a
  feeder sends them big messages; the server drops them as slow consumers,
  and they log in again and catch up from the replay;
- flood: one connection pipelining batches of `/ping`, answers checked in order;
- chat: ten users sending private and group messages; every `ok`'ed id is
  recorded with its recipients.

At the end it stops the load, closes every client, logs every recipient in
once more (its replay plus what it received must hold every `ok`'ed message
addressed to it), waits a bounded time for the server to close its side of
the sockets, stops the server, and checks fds, threads, RSS and the log.

Owns: the run (`soak`: the server, the baseline, the measured phase, the
wait for the server to settle, the checks and their margins), the server's
usage read from /proc, and the command line. The loads and their record are
tests/support/soak_loads.py. Must not: connect anywhere but the loopback
server it started.

    .venv/bin/python -m tests.support.soak --seconds 60
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness import Client, ServerProcess
from tests.support.soak_loads import (
    CHAT_USERS,
    CHURN_USERS,
    GROUP,
    IO_TIMEOUT,
    PASSWORD,
    SLOW_USERS,
    DropWatch,
    Ledger,
    Load,
    register,
    replay_all,
    run_load,
)

#: Margins of the final check. Fds: a few sockets may still be in the
#: server's lingering close when we look. Threads: the server's thread count
#: is fixed (reactor, workers, watchdog), so none may be left over.
FD_MARGIN = 5
THREAD_MARGIN = 0
#: RSS may stay above the baseline without a leak: SQLite's page cache fills
#: up to its cache_size (~2 MB) as the database grows; Python's allocators
#: keep freed memory for reuse (a pymalloc arena goes back to the OS only when
#: all of it is free, glibc keeps up to its trim threshold per malloc arena,
#: one per worker thread); login timers of the last 30 s of connections stay
#: in the reactor's heap. A leak grows with the run; these stop growing.
RSS_MARGIN_KB = 20 * 1024
#: glibc raises its mmap threshold to the size of the largest block freed
#: (up to 32 MiB). After the first scrypt (16 MiB, reactor/chat/passwords.py) each
#: worker's malloc arena keeps 16-32 MiB it no longer uses, and the RSS moves
#: by 16 MiB steps with which worker hashed last: +35 MB in 5 s with no leak.
#: Setting the threshold (to glibc's default, 128 KiB) turns that off, so the
#: RSS follows the memory in use. Only the server's environment gets it.
PINNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}
#: The server closes a dropped slow consumer after its 5 s close linger
#: (reactor/limits.py CLOSE_LINGER_SECONDS); we wait a little longer than that.
SETTLE_SECONDS = 15.0


@dataclass(frozen=True)
class Usage:
    """What the server process holds, from /proc."""

    rss_kb: int
    fds: int
    threads: int


def usage(pid: int) -> Usage:
    """The RSS, open fds and threads of process `pid`."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return Usage(
        rss_kb=int(fields["VmRSS"].split()[0]),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(fields["Threads"]),
    )


def settle(pid: int, fds: int, timeout: float = SETTLE_SECONDS) -> Usage:
    """Poll the server until it holds at most `fds` open fds (it closes
    sockets asynchronously, dropped slow consumers after a linger), or
    `timeout` has passed; return its usage then."""
    deadline = time.monotonic() + timeout
    now = usage(pid)
    while now.fds > fds and time.monotonic() < deadline:
        time.sleep(0.1)
        now = usage(pid)
    return now


def soak(
    seconds: float = 60.0,
    *,
    warmup: float = 2.0,
    chat_rate: float = 20.0,
    max_outbuf: int = 256 * 1024,
    seed: int = 1,
    locking: str = "global",
    pin_malloc: bool = True,
    db_dir: str | None = None,
) -> dict:
    """Run the soak against a fresh server; return its figures and checks.

    Args:
        seconds: how long the measured load runs.
        warmup: seconds of the same load before the baseline is taken, so that
            caches, allocator arenas and every code path exist by then.
        chat_rate: messages per second sent by each chat user (on average).
        max_outbuf: the server's --max-outbuf; smaller than the default 1 MiB
            so a slow reader is dropped after ~80 big messages, not ~290.
        seed: seeds the random choices of the load.
        locking: the server's --locking strategy.
        pin_malloc: run the server with PINNED_MALLOC in its environment.
        db_dir: where the temporary database goes (a new temp dir if None).

    The result's "ok" is True when every check in "checks" passed.
    """
    args = ["--rate-limit", "0", "--max-outbuf", str(max_outbuf), "--locking", locking]
    with tempfile.TemporaryDirectory(dir=db_dir) as tmp:
        env = PINNED_MALLOC if pin_malloc else {}
        srv = ServerProcess(Path(tmp) / "soak.db", *args, env=env).start()
        watch = DropWatch(srv)
        try:
            return _soak(srv, watch, seconds, warmup, chat_rate, seed)
        finally:
            watch.close()
            if srv.proc.poll() is None:
                srv.kill()


def _soak(
    srv: ServerProcess, watch: DropWatch, seconds: float, warmup: float, rate: float, seed: int
) -> dict:
    pid = srv.proc.pid
    idle = usage(pid)
    ledger = Ledger()
    chat_names = [f"chat{i}" for i in range(CHAT_USERS)]
    slow_names = [f"slow{i}" for i in range(SLOW_USERS)]
    register(srv.addr, chat_names + slow_names + ["feeder", "flood"])
    register(srv.addr, [f"churn{i}" for i in range(CHURN_USERS)])
    founder = Client(srv.addr, timeout=IO_TIMEOUT)
    founder.ok(f"/login {chat_names[0]} {PASSWORD}")
    founder.ok(f"/group {GROUP} {' '.join(chat_names[1:])}")
    founder.close()

    def load() -> Load:
        return Load(srv.addr, ledger, threading.Event(), watch, rate, {})

    run_load(load(), warmup, chat_names, seed + 1000)
    before = settle(pid, idle.fds)
    warm, first_conn = ledger.counts.copy(), _last_connection(srv.log_text())
    start = time.monotonic()
    run_load(load(), seconds, chat_names, seed)
    elapsed = time.monotonic() - start
    replay_all(load(), ledger.expected)
    after = settle(pid, before.fds)
    code = srv.stop()
    log = srv.log_text()

    missing = {n: sorted(ledger.expected[n] - ledger.received[n]) for n in ledger.expected}
    missing = {n: ids for n, ids in missing.items() if ids}
    counts = ledger.counts - warm  # the measured phase and the final logins
    counts["server_connections"] = _last_connection(log) - first_conn
    checks = {
        "fds": (after.fds <= before.fds + FD_MARGIN, f"{before.fds} -> {after.fds}"),
        "threads": (
            after.threads <= before.threads + THREAD_MARGIN,
            f"{before.threads} -> {after.threads}",
        ),
        "rss": (
            after.rss_kb <= before.rss_kb + RSS_MARGIN_KB,
            f"{before.rss_kb} kB -> {after.rss_kb} kB (margin {RSS_MARGIN_KB} kB)",
        ),
        "acknowledged messages stored": (
            not missing,
            f"{ledger.counts['messages_sent']} ok'ed (warm-up included), missing {_head(missing)}",
        ),
        "no Traceback in the log": ("Traceback" not in log, _traceback(log)),
        "load ran without errors": (not ledger.errors, "; ".join(ledger.errors[:5]) or "none"),
        "every load took place": (
            all(counts[k] for k in ("churned", "slow_drops", "pings", "messages_sent")),
            f"churned {counts['churned']}, slow drops {counts['slow_drops']}, "
            f"pings {counts['pings']}, messages {counts['messages_sent']}",
        ),
        "clean shutdown": (code == 0, f"exit code {code}"),
    }
    return {
        "seconds": round(elapsed, 1),
        "idle": idle.__dict__,
        "before": before.__dict__,
        "after": after.__dict__,
        "counts": dict(counts),
        "errors": ledger.errors,
        "missing": missing,
        "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()},
        "ok": all(ok for ok, _ in checks.values()),
    }


def _last_connection(log: str) -> int:
    """The id of the last connection the server logged (ids count up from 1)."""
    ids = re.findall(r"connection (\d+) from", log[-20000:])
    return int(ids[-1]) if ids else 0


def _head(missing: dict[str, list[int]]) -> str:
    return ", ".join(f"{n}: {ids[:5]}" for n, ids in list(missing.items())[:5]) or "none"


def _traceback(log: str) -> str:
    at = log.find("Traceback")
    return "none" if at < 0 else log[max(0, at - 200) : at + 1500]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="length of the measured load")
    p.add_argument("--warmup", type=float, default=2.0, help="load before the baseline")
    p.add_argument("--chat-rate", type=float, default=20.0, help="messages/s per chat user")
    p.add_argument("--max-outbuf", type=int, default=256 * 1024, help="server --max-outbuf")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--locking", choices=["global", "fine"], default="global")
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's dynamic mmap threshold on (RSS then moves in 16 MiB steps)",
    )
    args = p.parse_args()
    r = soak(
        args.seconds, warmup=args.warmup, chat_rate=args.chat_rate, max_outbuf=args.max_outbuf,
        seed=args.seed, locking=args.locking, pin_malloc=not args.default_malloc,
    )  # fmt: skip
    c = r["counts"]
    print(f"soak: {r['seconds']} s of load after {args.warmup} s of warm-up ({args.locking})")
    print(f"  {'server':8} {'RSS kB':>10} {'fds':>6} {'threads':>8}")
    for label in ("idle", "before", "after"):
        u = r[label]
        print(f"  {label:8} {u['rss_kb']:>10} {u['fds']:>6} {u['threads']:>8}")
    print(
        f"  connections: {c.get('churned', 0)} churned, {c.get('server_connections', 0)} accepted"
        f" in all; messages ok'ed {c.get('messages_sent', 0)}; slow-consumer drops"
        f" {c.get('slow_drops', 0)}; pings {c.get('pings', 0)}"
    )
    print("  counters: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    for name, check in r["checks"].items():
        print(f"  {'PASS' if check['ok'] else 'FAIL'}  {name}: {check['detail']}")
    sys.exit(0 if r["ok"] else 1)


if __name__ == "__main__":
    main()
