"""The simulated users' side of the chat protocol, sans-IO: bytes in, records and bytes out.

Owns: classifying a server line (`parse_line`), and the protocol state of one
load process's users (`Crowd` of `User`s: what they send, logins, groups, the
commands awaiting replies, ids seen and acked, window counts in a `Tally`, the
counters the phases wait on). Must not: import socket, selectors or time, or
reach the parent: loadgen/users.py owns the sockets, the clock and the
phases, and feeds a `Crowd` what its sockets read.

A malformed server line becomes a `BadLine` record, counted as "bad_line" and
never raised: the server is at fault, and one bad line must not end a load
process. Lines that are not JSON objects (the text greeting and bye before
`/mode json`) and JSON lines of types we do not use (notices) are skipped.
"""

from __future__ import annotations

import enum
import json
import math
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadgen.spec import LoadSpec
from loadgen.stats import BEHIND_SECONDS, Tally

__all__ = ["OK", "BadLine", "Bye", "Cmd", "Crowd", "Delivery", "Reply", "User", "UserState"]
__all__ += ["group_lines", "parse_line"]

# Acknowledge like the real client (client/connection.py): cumulatively, once this
# many messages are unacknowledged, or ACK_DELAY seconds after the first message
# that found no ack timer running, whichever comes first.
ACK_EVERY = 20
ACK_DELAY = 0.2
# A user's unsent bytes stop growing here: if the server stops reading, an open loop
# would otherwise buffer all the load it offers. Past it a send is skipped and counted
# (`send_buffer_full`, and `behind`). 1 MiB is ~20,000 sends of the default size.
MAX_OUT_BYTES = 1 << 20
# Names of one /group line stay within this many bytes, so the whole line stays under
# the server's default 4096-byte line limit (the head adds at most ~50 bytes).
GROUP_LINE_BYTES = 3000
# The server's usual key order; lines that start so take the fast paths below.
MSG_HEAD = b'{"type":"message","id":'
OK_HEAD = b'{"type":"ok"'
GROUP_OK_HEAD = b'{"type":"ok","cmd":"group"'


# What a command awaiting its reply was. The sends come first: `cmd <= SENDGROUP`.
Cmd = enum.IntEnum("Cmd", "SEND SENDGROUP LOGIN REGISTER MODE GROUP ACK", start=0)


# A message delivered: (its id, the send stamp its text starts with; 0.0 if none: not one
# of ours). A plain tuple, the one record that is not a class: one is built per delivered
# line, where even a NamedTuple's constructor costs half as much as the parsing (~0.3 us).
# `Crowd.received` tells one from the records by `type(record) is tuple`.
Delivery = tuple[int, float]


@dataclass(frozen=True)
class Reply:
    """The server's answer to the oldest command still awaiting one."""

    code: str | None = None  # None: ok; else the error code ("bad_line" if it had none)
    members: tuple[str, ...] | None = None  # an ok to /group: the group's members
    line: bytes = b""  # the line itself, for notes (empty for a plain ok)


OK = Reply()  # every plain ok in the server's key order: the fast path builds nothing


@dataclass(frozen=True)
class Bye:
    """The server's last line before it closes the connection."""

    reason: str


@dataclass(frozen=True)
class BadLine:
    """A line from the server we cannot use (the server's fault); `why` in words."""

    line: bytes
    why: str


def _stamp_of(text: bytes | str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0  # not one of ours


def parse_line(line: bytes) -> Delivery | Reply | Bye | BadLine | None:
    """Classify one line (without its newline); None for a line we skip. The hot path:
    slicing out id and stamp takes ~0.45 us a line, json.loads ~2.4 us, so lines in
    the server's usual key order are not decoded."""
    if line.startswith(MSG_HEAD):
        comma = line.find(b",", 23)
        raw = line[23:comma]
        if comma < 0 or not raw.isdigit():
            return BadLine(line, "message without a numeric id")
        p = line.find(b'"text":"', comma) + 8
        return (int(raw), _stamp_of(line[p : line.find(b" ", p)]) if p > 7 else 0.0)
    if line.startswith(OK_HEAD) and not line.startswith(GROUP_OK_HEAD):
        return OK
    if not line.startswith(b"{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return BadLine(line, "not JSON")
    kind = event.get("type")
    if kind == "message":  # not in the usual key order: the slow path
        mid, text = event.get("id"), event.get("text")
        if type(mid) is not int or mid < 0:
            return BadLine(line, "message without a numeric id")
        return (mid, _stamp_of(text.split(" ", 1)[0]) if isinstance(text, str) else 0.0)
    if kind == "ok":
        members = event.get("members")
        good = isinstance(members, list) and all(isinstance(m, str) for m in members)
        return Reply(None, tuple(members) if good else None, line)
    if kind == "error":
        code = event.get("code")
        return Reply(code if isinstance(code, str) and code else "bad_line", None, line)
    if kind == "bye":
        return Bye(str(event.get("reason")))
    return None


def group_lines(group: str, names: list[str]) -> list[bytes]:
    """`/group` lines adding `names` to `group`, their names in at most GROUP_LINE_BYTES each."""
    parts, part = [], ""
    for name in names:
        if part and len(part) + 1 + len(name) > GROUP_LINE_BYTES:
            parts.append(part)
            part = ""
        part += f" {name}"
    return [f"/group {group}{part}\n".encode() for part in (*parts, part)]


class UserState(enum.Enum):
    """Where a user's connection is."""

    CONNECTING = 1  # not connected yet
    LOGIN = 2  # connected, login commands sent
    READY = 3  # logged in
    DEAD = 4  # closed, or never connected


CONNECTING, LOGIN, READY, DEAD = UserState
SEND, SENDGROUP, C_LOGIN, REGISTER, MODE, GROUP, ACK = Cmd


class User:
    """One simulated user's side of its connection: a record that a `Crowd` keeps."""

    __slots__ = ("ack_sent", "ack_timer", "group", "index", "last_id", "name", "out", "pending",
                 "relogin", "rest", "state", "unacked")  # fmt: skip

    def __init__(self, index: int, name: str, group: int) -> None:
        self.index, self.name, self.group = index, name, group  # group -1: none
        self.state = CONNECTING
        self.out = bytearray()  # bytes for the caller to write to the socket
        # The commands awaiting a reply, oldest first (the server answers each in turn):
        # (command, send stamp, what its reply settles: the deliveries a send owes, a group).
        self.pending: deque[tuple[Cmd, float, Any]] = deque()
        self.rest = b""  # the unfinished last line received
        self.last_id = self.unacked = self.ack_sent = 0  # message ids seen, acked
        self.ack_timer = False  # an ACK_DELAY ack is due (in the crowd's `ack_due`)
        self.relogin = False  # a `busy` /register: its /login's answer says nothing


class Crowd:
    """The users of load process `k` of `procs`, sans-IO: what they send (seeded from
    the prefix and `k`, so a run's choices repeat), what the server's lines to them
    mean, the counts (`tally`) and the counters the phases wait on. The caller owns
    sockets and clocks: it calls `connected` and `received` for a user's socket, writes
    the `out` of every `dirty` user, calls `drop` when it loses a socket, and closes
    the socket of a user that `received` turned DEAD."""

    def __init__(
        self, spec: LoadSpec, k: int, procs: int, make_user: Callable[[int, str, int], User] = User
    ) -> None:
        self.spec, self.k, self.procs, size = spec, k, procs, spec.group_size
        self.group_weight = dict(spec.mix).get("group", 0.0) if spec.mode != "idle" else 0.0
        self.groups = spec.groups if self.group_weight > 0 else 0  # groups used, 0..groups-1
        self.users = [  # users past groups*group_size are in no group (-1): private only
            make_user(i, f"{spec.prefix}{i}", i // size if i < self.groups * size else -1)
            for i in range(k, spec.clients, procs)
        ]
        # A send is a head, a stamp, and a tail: its text is "<stamp> xxx", ~text_bytes long.
        self.send_heads = [f"/send {spec.prefix}{i} ".encode() for i in range(spec.clients)]
        self.group_heads = [f"/sendgroup {spec.prefix}g{j} ".encode() for j in range(self.groups)]
        self.tail = b" " + b"x" * max(1, spec.text_bytes - 14) + b"\n"
        # What an acked send owes, as (process, deliveries there) pairs: a private send to a
        # user of process p; a send to group j (each member, the sender's echo included).
        self.private_owes = [((p, 1),) for p in range(procs)]
        self.group_owes = [
            tuple(Counter(i % procs for i in range(j * size, (j + 1) * size)).items())
            for j in range(self.groups)
        ]
        self.rng = random.Random(f"{spec.prefix}/{k}")
        self.ready: list[User] = []  # logged in, in login order (open loop: round robin)
        self.dirty: set[User] = set()  # users with new bytes in `out`
        self.tally = Tally(procs)
        # Invariant: login_waiting == the CONNECTING and LOGIN users; n_ready == the READY ones.
        self.login_waiting, self.n_ready, self.logged_in = len(self.users), 0, 0
        # Invariant: group_waiting == the /group entries in the pending deques of live users.
        self.group_waiting = self.group_failed = 0
        # Invariant: sends_pending == the send entries in the pending deques of live users.
        self.sends_pending = 0
        self.ack_every = ACK_EVERY  # 1 once the final acks are out
        # (when, user): ack timers in the order they were set, so in deadline order.
        self.ack_due: deque[tuple[float, User]] = deque()
        self.t0 = self.t1 = self.next_t = math.inf  # the window; the next open-loop send
        self.resend_until = -math.inf  # closed loop: until then a send's reply brings the next
        self.rr = 0  # open loop: the next user's turn, an index into `ready`

    # --- the caller's events ---------------------------------------------------------

    def connected(self, user: User) -> None:
        """`user`'s socket is connected: `/mode json`, `/register` with a password, `/login`."""
        user.state = LOGIN
        self._queue(user, MODE, b"/mode json\n")
        self._login(user)

    def _login(self, user: User) -> None:
        pw = self.spec.password
        if pw is not None:
            self._queue(user, REGISTER, f"/register {user.name} {pw}\n".encode())
        self._queue(user, C_LOGIN, f"/login {user.name}{'' if pw is None else ' ' + pw}\n".encode())

    def received(self, user: User, data: bytes, now: float) -> None:
        """`data` arrived for `user` at `now`. Every problem is counted, never raised."""
        if user.rest:
            data = user.rest + data
        lines = data.split(b"\n")
        user.rest = lines.pop()
        tally = self.tally
        for record in map(parse_line, lines):
            if type(record) is tuple:  # a Delivery, the most common line first
                mid, ts = record
                if mid > user.last_id:  # ids rise per recipient
                    user.last_id = mid
                else:
                    why = "duplicate" if mid == user.last_id else "order"
                    tally.error(why, f"{user.name}: message {mid} after {user.last_id}")
                user.unacked += 1
                tally.delivery(ts, now)
                if user.state is READY:
                    if user.unacked >= self.ack_every:
                        self._ack(user, now)
                    elif not user.ack_timer:
                        user.ack_timer = True
                        self.ack_due.append((now + ACK_DELAY, user))
            elif type(record) is Reply:
                self._reply(user, record, now)
                if user.state is DEAD:
                    return
            elif type(record) is Bye:
                tally.error(f"bye_{record.reason}", f"{user.name}: the server said bye")
            elif type(record) is BadLine:
                self._bad_line(user, record)

    def drop(self, user: User) -> None:
        """`user` has no connection (lost, or never made): forget what it awaits."""
        state = user.state
        if state is DEAD:
            return
        if state is CONNECTING or state is LOGIN:
            self.login_waiting -= 1
        elif state is READY:
            self.n_ready -= 1
        groups = sum(1 for c, _, _ in user.pending if c is GROUP)
        self.sends_pending -= sum(1 for c, _, _ in user.pending if c <= SENDGROUP)
        self.group_waiting -= groups
        self.group_failed += groups
        user.pending.clear()
        user.state = DEAD

    # --- the phases' steps -------------------------------------------------------------

    def make_groups(self) -> None:
        """The first member of each group, if it lives here, sends the `/group` lines."""
        size, prefix = self.spec.group_size, self.spec.prefix
        for j in range(self.groups):
            first = j * size
            user = self.users[first // self.procs] if first % self.procs == self.k else None
            if user is None or user.state is not READY:
                continue
            names = [f"{prefix}{i}" for i in range(first + 1, first + size)]
            lines = group_lines(f"{prefix}g{j}", names)
            for n, line in enumerate(lines, 1):  # the last one's reply lists the members
                self._queue(user, GROUP, line, float(n == len(lines)), j)
            self.group_waiting += len(lines)

    def go(self, t0: float, t1: float, now: float) -> None:
        """Measure the window [t0, t1); send until t1, from t0 - warmup, which is about `now`
        (open loop: the processes' schedules interleave from that shared start)."""
        self.t0, self.t1 = t0, t1
        self.tally.open(t0, t1)
        if self.spec.mode == "open":
            self.next_t = t0 - self.spec.warmup + self.k / self.spec.rate
        elif self.spec.mode == "closed":
            self.resend_until = t1
            for user in self.users:
                if user.state is READY:
                    for _ in range(self.spec.window):
                        self.send(user, now)

    def send(self, user: User, when: float) -> None:
        """Queue `user`'s next send, stamped `when`: to its group or to another user."""
        text = b"%.6f" % when
        ts = float(text)  # what every recipient parses: both sides agree on the window
        j = user.group
        if j >= 0 and (self.group_weight >= 1 or self.rng.random() < self.group_weight):
            user.out += self.group_heads[j] + text + self.tail
            user.pending.append((SENDGROUP, ts, self.group_owes[j]))
        else:
            to = self.rng.randrange(len(self.send_heads) - 1)
            to += to >= user.index
            user.out += self.send_heads[to] + text + self.tail
            user.pending.append((SEND, ts, self.private_owes[to % self.procs]))
        self.tally.send(ts)
        self.sends_pending += 1
        self.dirty.add(user)

    def open_sends(self, now: float) -> None:
        """Open loop: every send due by `now`, stamped with its scheduled time. A user
        with MAX_OUT_BYTES unsent skips its turn: counted, and behind."""
        interval, ready, tally = self.procs / self.spec.rate, self.ready, self.tally
        while self.next_t <= now and self.next_t < self.t1 and self.n_ready:
            ts, self.next_t = self.next_t, self.next_t + interval
            user = ready[self.rr % len(ready)]
            while user.state is not READY:  # skip users the server dropped
                self.rr += 1
                user = ready[self.rr % len(ready)]
            self.rr += 1
            full = len(user.out) >= MAX_OUT_BYTES
            if ts >= self.t0 and (full or now - ts > BEHIND_SECONDS):
                tally.behind += 1
            if not full:
                self.send(user, ts)
            else:
                tally.error("send_buffer_full", f"{user.name}: the server stopped reading")

    def next_ack(self) -> float:
        """When the next ack timer is due (inf: none is set)."""
        return self.ack_due[0][0] if self.ack_due else math.inf

    def timed_acks(self, now: float) -> None:
        """Every ack timer due by `now`: ack what its user has not acked yet."""
        due = self.ack_due
        while due and due[0][0] <= now:
            user = due.popleft()[1]
            user.ack_timer = False
            if user.state is READY and user.unacked:
                self._ack(user, now)

    def final_acks(self) -> None:
        """The drain is over: count no more deliveries, ack all seen, from now on at once."""
        self.tally.close_deliveries()
        self.ack_every = 1
        for user in self.users:
            if user.state is READY and user.last_id > user.ack_sent:
                self._ack(user, math.inf)

    # --- the lines' effects -------------------------------------------------------------

    def _queue(
        self, user: User, cmd: Cmd, line: bytes, ts: float = 0.0, settles: object = None
    ) -> None:
        user.out += line
        user.pending.append((cmd, ts, settles))
        self.dirty.add(user)

    def _ack(self, user: User, now: float) -> None:
        self.tally.ack(now)
        self._queue(user, ACK, b"/ack %d\n" % user.last_id)
        user.ack_sent, user.unacked = user.last_id, 0

    def _bad_line(self, user: User, bad: BadLine) -> None:
        self.tally.error("bad_line", f"{user.name}: bad line ({bad.why}): {bad.line[:200]!r}")

    def _reply(self, user: User, reply: Reply, now: float) -> None:
        if not user.pending:
            self.tally.error("unexpected_reply", f"{user.name}: a reply to no command")
            return
        cmd, ts, settles = user.pending.popleft()
        code = reply.code
        if code == "busy" and cmd is REGISTER:  # PROTOCOL.md §7: the lane is full, retry
            user.relogin = True
            return
        if cmd is C_LOGIN and (code == "busy" or (code is not None and user.relogin)):
            user.relogin = False
            self.tally.retried += 1
            self._login(user)  # at once: the server answers `busy` without hashing
            return
        if code is not None and not (cmd is REGISTER and code == "name_taken"):
            text = reply.line[:200].decode(errors="replace")
            self.tally.error(code, f"{user.name}: error {code} ({text})")
        if cmd <= SENDGROUP:
            self.sends_pending -= 1
            if code is None:
                self.tally.ok(ts, now, settles)
            if now < self.resend_until:
                self.send(user, now)
        elif cmd is C_LOGIN and code is not None:
            self.drop(user)
        elif cmd is C_LOGIN:
            user.state = READY
            self.login_waiting -= 1
            self.logged_in += 1
            self.n_ready += 1
            self.ready.append(user)
        elif cmd is GROUP:
            self.group_waiting -= 1
            if code is not None:
                self.group_failed += 1
            elif ts:  # the last /group line of this group: check who is in it
                self._check_members(user, settles, reply)

    def _check_members(self, user: User, j: int, reply: Reply) -> None:
        if reply.members is None:
            self._bad_line(user, BadLine(reply.line, "ok to /group without members"))
            return
        size, prefix = self.spec.group_size, self.spec.prefix
        want = {f"{prefix}{i}".lower() for i in range(j * size, (j + 1) * size)}
        extra = sorted({m.lower() for m in reply.members} - want)
        if extra or len(reply.members) != size:
            self.group_failed += 1
            note = f"group {prefix}g{j} also has members {extra[:5]} from an earlier run"
            self.tally.error("stale_group", note + "; use another --prefix or a fresh database")
