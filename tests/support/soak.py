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

    .venv/bin/python -m tests.support.soak --seconds 60
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import socket
import struct
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness import Client, ServerProcess

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
#: Any single blocking socket operation of the load; a stall beyond this is
#: reported as an error of the server.
IO_TIMEOUT = 15.0

PASSWORD = "pw"
CHAT_USERS = 10
SLOW_USERS = 3
CHURN_USERS = 8
GROUP = "soak"
#: A slow reader's socket: a tiny receive buffer, and a small MSS, because
#: over loopback (MTU 64 KiB) the server's send buffer autotunes to ~2 MB
#: otherwise, and the feeder would have to fill that before any drop.
SLOW_RCVBUF = 2048  # the kernel doubles it
SLOW_MSS = 1024
#: Seconds a dropped slow reader waits before it logs in again: each stall
#: stores ~max_outbuf of big messages, so this bounds the database's growth.
SLOW_PAUSE = (1.0, 3.0)
BIG_TEXT = "s" * 3800  # a /send line stays under the 4096-byte line limit
FEED_WINDOW = 16  # big messages pipelined by the feeder before reading replies
FLOOD_BATCH = 1000  # pings per pipelined batch: below MAX_PENDING_COMMANDS
FLOOD_PAUSE = 0.05  # between batches: a flood, not the whole of the server's work
DROPPED = re.compile(r"(\S+) is not reading .* dropped as slow consumer")


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


class Ledger:
    """What the load saw, shared by its threads: ids `ok`'ed per recipient,
    ids received per user, counters and errors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards every field below
        self.expected: dict[str, set[int]] = collections.defaultdict(set)
        self.received: dict[str, set[int]] = collections.defaultdict(set)
        self.counts: collections.Counter[str] = collections.Counter()
        self.errors: list[str] = []

    def sent(self, msg_id: int, recipients) -> None:
        with self._lock:
            self.counts["messages_sent"] += 1
            for name in recipients:
                self.expected[name].add(msg_id)

    def got(self, name: str, events) -> int:
        """Record the messages among `events` as received by `name`; return
        the highest id among them (0 if none)."""
        ids = [e["id"] for e in events if e.get("type") == "message"]
        with self._lock:
            self.received[name].update(ids)
        return max(ids, default=0)

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n

    def error(self, where: str, exc: BaseException | str) -> None:
        with self._lock:
            self.errors.append(f"{where}: {exc!r}")


class DropWatch:
    """Follows the server log for slow-consumer drops, to tell a slow reader
    that it was dropped without it having to read."""

    def __init__(self, server: ServerProcess) -> None:
        self._server = server
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _armed
        self._armed: dict[str, threading.Event] = {}
        self._seen = len(server.log)  # log lines read so far (only by our thread)
        self._thread = threading.Thread(target=self._run, name="dropwatch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def arm(self, name: str) -> threading.Event:
        """An event set at the next drop of `name` logged from now on."""
        event = threading.Event()
        with self._lock:
            self._armed[name] = event
        return event

    def _run(self) -> None:
        while not self._stop.is_set():
            # Woken by each new line; the timeout only bounds how late `close` is seen.
            lines = self._server.lines_from(self._seen, timeout=0.1)
            self._seen += len(lines)
            for line in lines:
                m = DROPPED.search(line)
                if m:
                    with self._lock:
                        event = self._armed.pop(m.group(1), None)
                    if event is not None:
                        event.set()


@dataclass
class Load:
    """Everything the load threads share."""

    addr: tuple[str, int]
    ledger: Ledger
    stop: threading.Event
    watch: DropWatch
    chat_rate: float
    # Slow readers not reading now, each with the event set at its drop; the
    # feeder sends to those not yet dropped.
    stalled: dict[str, threading.Event]


def login(load: Load, name: str, slow: bool = False) -> tuple[Client, list[dict]]:
    """A json-mode client logged in as `name`, and its replay (recorded); a
    `slow` one has small kernel buffers (SLOW_RCVBUF, SLOW_MSS)."""
    small = {"rcvbuf": SLOW_RCVBUF, "mss": SLOW_MSS} if slow else {}
    c = Client(load.addr, timeout=IO_TIMEOUT, **small)
    reply = c.ok(f"/login {name} {PASSWORD}")
    replay = c.messages(reply["unread"])
    load.ledger.got(name.lower(), replay)
    return c, replay


def close_with_rst(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def guarded(where: str, load: Load, body, *args) -> None:
    """Run a load thread's body; an exception is an error of the run."""
    try:
        body(load, *args)
    except Exception as exc:
        load.ledger.error(where, exc)


# --- the four loads ----------------------------------------------------------------


def chatter(load: Load, name: str, names: list[str], seed: int) -> None:
    rng = random.Random(seed)
    me = name.lower()
    others = [n for n in names if n != name]
    c, _ = login(load, name)
    top = acked = n = 0
    try:
        while not load.stop.is_set():
            n += 1
            if rng.random() < 0.3:
                reply = c.ok(f"/sendgroup {GROUP} {name} says {n} to all")
                load.ledger.sent(reply["id"], [x.lower() for x in names])
            else:
                to = rng.choice(others)
                reply = c.ok(f"/send {to} {name} says {n}")
                load.ledger.sent(reply["id"], [to.lower()])
            inbox, c.inbox = c.inbox, []
            top = max(top, load.ledger.got(me, inbox))
            if top - acked >= 50:  # batched acks, as the real client does
                acked = c.ok(f"/ack {top}")["id"]
            load.stop.wait(rng.expovariate(load.chat_rate))
    finally:
        c.close()


def slow_reader(load: Load, name: str, seed: int) -> None:
    rng = random.Random(seed)
    me = name.lower()
    while not load.stop.is_set():
        c, replay = login(load, name, slow=True)
        try:
            load.ledger.count("slow_replayed", len(replay))
            if replay:
                c.ok(f"/ack {replay[-1]['id']}")
            dropped = load.stalled[name] = load.watch.arm(name)
            while not dropped.wait(0.05) and not load.stop.is_set():
                pass
            del load.stalled[name]
            if not dropped.is_set():
                break  # the run ended first
            # Read what is left: messages written before the cut, then `bye`.
            events = [json.loads(line) for line in c.until_closed()]
            load.ledger.got(me, events + c.inbox)
            if not any(e.get("reason") == "slow_consumer" for e in events):
                load.ledger.error(name, f"dropped without bye slow_consumer: {events[-1:]}")
            load.ledger.count("slow_drops")
        finally:
            c.close()
        load.stop.wait(rng.uniform(*SLOW_PAUSE))


def feeder(load: Load) -> None:
    c, _ = login(load, "feeder")
    try:
        while not load.stop.is_set():
            targets = sorted(n for n, dropped in list(load.stalled.items()) if not dropped.is_set())
            if not targets:
                load.stop.wait(0.01)
                continue
            sent = [targets[i % len(targets)] for i in range(FEED_WINDOW)]
            c.sock.sendall(b"".join(f"/send {to} {BIG_TEXT}\n".encode() for to in sent))
            for to in sent:
                reply = c.reply()
                assert reply["type"] == "ok", reply
                load.ledger.sent(reply["id"], [to.lower()])
    finally:
        c.close()


def flood(load: Load) -> None:
    # Logged in: a connection that has not logged in is closed after
    # --login-timeout (30 s), however busy it is.
    c, _ = login(load, "flood")
    n = 0
    try:
        while not load.stop.is_set():
            batch = range(n, n + FLOOD_BATCH)
            c.sock.sendall(b"".join(b"/ping %d\n" % i for i in batch))
            for i in batch:
                reply = c.read()
                if reply.get("token") != str(i):
                    raise AssertionError(f"ping {i} answered {reply}")
            n += FLOOD_BATCH
            load.ledger.count("pings", FLOOD_BATCH)
            load.stop.wait(FLOOD_PAUSE)
    finally:
        c.close()


def churner(load: Load, seed: int, chat_names: list[str]) -> None:
    rng = random.Random(seed)
    kinds = ["fin", "rst", "midline", "bad_input", "anonymous", "login"]
    while not load.stop.is_set():
        kind = rng.choices(kinds, weights=[2, 2, 2, 1, 2, 2])[0]
        if kind in ("fin", "rst", "midline"):
            sock = socket.create_connection(load.addr, timeout=IO_TIMEOUT)
            if kind == "midline":
                sock.sendall(b"/send " + rng.choice(chat_names).encode() + b" half a li")
            if rng.random() < 0.5:
                close_with_rst(sock)
            else:
                sock.close()
        else:
            churn_session(load, rng, kind, chat_names)
        load.ledger.count("churned")
        load.ledger.count(f"churn_{kind}")
        load.stop.wait(rng.uniform(0.0, 0.01))


def churn_session(load: Load, rng: random.Random, kind: str, chat_names: list[str]) -> None:
    c = Client(load.addr, timeout=IO_TIMEOUT)
    try:
        if kind == "bad_input":
            c.error(b"\xff\xfe not utf-8", "bad_encoding")
            c.error(b"/ping " + b"x" * 5000, "line_too_long")
            c.ok("/ping still-open")
        elif kind == "anonymous":
            c.error("/users", "not_logged_in")
            c.ok("/ping 1")
        elif not churn_login(load, rng, chat_names, c):
            return
        if rng.random() < 0.5:
            close_with_rst(c.sock)
    except EOFError:
        # Another churner logged in as the same user: this session was replaced.
        if not any(e.get("reason") == "replaced" for e in c.inbox):
            raise
        load.ledger.count("churn_replaced")
    finally:
        c.close()


def churn_login(load: Load, rng: random.Random, chat_names: list[str], c: Client) -> bool:
    """Log in, run one command, maybe leave; False if the session is over."""
    c.ok(f"/login churn{rng.randrange(CHURN_USERS)} {PASSWORD}")
    to = rng.choice(chat_names)
    line = rng.choice([f"/send {to} churn hello", "/users", "/whoami", f"/history {to}"])
    if rng.random() < 0.3:  # reset with the command in flight
        c.send(line)
        close_with_rst(c.sock)
        return False
    reply = c.ok(line)
    if "id" in reply:
        load.ledger.sent(reply["id"], [to.lower()])
    if rng.random() < 0.5:
        c.ok("/exit")
        c.until_closed()
        return False
    return True


# --- the run ----------------------------------------------------------------------------


def run_load(load: Load, seconds: float, chat_names: list[str], seed: int) -> None:
    """Run every load for `seconds`, then stop it and close every client."""
    jobs = [(f"chat {n}", chatter, n, chat_names, seed + i) for i, n in enumerate(chat_names)]
    jobs += [(f"slow{i}", slow_reader, f"slow{i}", seed + 50 + i) for i in range(SLOW_USERS)]
    jobs += [("feeder", feeder), ("flood", flood)]
    jobs += [(f"churn {i}", churner, seed + 100 + i, chat_names) for i in range(3)]
    threads = [
        threading.Thread(target=guarded, args=(job[0], load, *job[1:]), name=job[0]) for job in jobs
    ]
    for t in threads:
        t.start()
    load.stop.wait(seconds)
    load.stop.set()
    for t in threads:
        t.join(2 * IO_TIMEOUT)
        if t.is_alive():
            load.ledger.error(t.name, "load thread did not stop")


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


def replay_all(load: Load, names) -> None:
    """Log every recipient in once more and record its replay."""
    for name in sorted(names):
        c, replay = login(load, name)
        load.ledger.count("final_replayed", len(replay))
        try:
            c.ok("/exit")
            c.until_closed()
        finally:
            c.close()


def register(addr: tuple[str, int], names: list[str]) -> None:
    def one(name: str) -> None:
        c = Client(addr, timeout=IO_TIMEOUT)
        try:
            c.ok(f"/register {name} {PASSWORD}")
        finally:
            c.close()

    with ThreadPoolExecutor(4) as pool:  # scrypt on several workers at once
        list(pool.map(one, names))


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
