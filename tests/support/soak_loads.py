"""The four loads of the soak, and the record of what they saw.

Owns: the loads that run at once against the server, from threads of this
process over blocking sockets:

- churn: connections that come and go: closed at once (FIN, or RST through
  SO_LINGER 0), cut mid-line, bad input, a command without logging in, or a
  login followed by a command and a close or `/exit`;
- slow: users with a tiny SO_RCVBUF (and MSS) that stop reading while a
  feeder sends them big messages; the server drops them as slow consumers
  (`DropWatch` sees it in the server log), and they log in again and catch
  up from the replay;
- flood: one connection pipelining batches of `/ping`, answers checked in order;
- chat: ten users sending private and group messages;

and `run_load`, which runs them for a while; the `Ledger` of ids `ok`'ed
per recipient and received per user, counters and errors; the accounts they
use (`register`) and the final logins that collect each recipient's replay
(`replay_all`). Must not: start or stop the server, or judge the run
(tests/support/soak.py does both).
"""

from __future__ import annotations

import collections
import json
import random
import re
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from harness import Client, ServerProcess

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


# --- running them ------------------------------------------------------------------


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
