"""One load process: its simulated users' sockets, the event loop, its side of the phases.

Owns the sockets of one load process's users and the process's event loop over
them (`_Worker.serve`: `selectors`, no thread per client, no asyncio), the
process's side of the phases that loadgen/run.py drives over the pipe, the
entry point `worker_main`, and the deadlines both sides share (SETUP_SECONDS,
FINAL_ACK_SECONDS, PARENT_SLACK, `run_budget`). What the users say and what the
server's lines mean is loadgen/wire.py's `Crowd` (sans-IO), which this
module feeds what the sockets read. Must not: parse or build protocol lines,
import loadgen/run.py (it imports us; what a run is comes from loadgen/spec.py),
talk to the parent other than through its pipe, connect anywhere but the
address the parent checked (or that host on the spec's `extra_ports`: client i
connects to the (i mod n)-th of the n addresses), or wait on the server or the
parent without a deadline.

Each user acks like the real client (a cumulative `/ack` once loadgen/wire.py
ACK_EVERY messages are unacked or ACK_DELAY after the first, then everything before
closing, so nothing is replayed at a later login). A socket is closed only by `_close`, once the
`Crowd` has dropped its user, so the counters' invariants hold however a user
ends: a lost socket, a refused login, the end of the run, an abort.
"""

from __future__ import annotations

import enum
import errno
import os
import resource
import selectors
import socket
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any, cast

from loadgen.spec import LoadSpec
from loadgen.stats import ProcessReport
from loadgen.wire import Crowd, User, UserState

__all__ = ["FINAL_ACK_SECONDS", "PARENT_SLACK", "SETUP_SECONDS", "run_budget", "worker_main"]

# Connect, log in and make groups within this (plus 5 ms a client): the server's
# own --login-timeout defaults to 30 s, so a healthy server is far quicker.
SETUP_SECONDS = 30.0
# After the drain, time allowed for the final acks' replies before closing.
FINAL_ACK_SECONDS = 5.0
# The parent waits this much past a process's own deadline before calling it stuck.
PARENT_SLACK = 10.0
# Connects in flight per process: well under a listen backlog, so 10,000 idle
# clients do not fall into SYN retries.
MAX_CONNECTING = 256
RECV_BYTES = 256 * 1024


def run_budget(spec: LoadSpec) -> float:
    """The longest a whole run may take, in seconds: every phase's allowance and the
    parent's slack at each of its gathers. A load process that has waited for the
    parent's next step this long after its start gives up: the parent is stuck."""
    setup = 2 * SETUP_SECONDS + 0.005 * spec.clients
    return setup + spec.warmup + spec.duration + spec.drain + FINAL_ACK_SECONDS + 5 * PARENT_SLACK


class _Phase(enum.Enum):
    LOGIN = 1
    WAIT = 2  # waiting for the parent's next step (until `give_up`)
    GROUPS = 3
    RUN = 4
    DRAIN = 5  # waiting for the replies to our sends
    DELIVER = 6  # waiting for the deliveries we are owed
    FINAL = 7  # final acks
    DONE = 8


CONNECTING, LOGIN, READY, DEAD = UserState


class _Sim(User):
    """One simulated user (see `User`) and its socket."""

    __slots__ = ("sock", "watch_write")

    def __init__(self, index: int, name: str, group: int) -> None:
        super().__init__(index, name, group)
        self.sock: socket.socket | None = None  # while registered with the selector
        self.watch_write = False  # the selector watches it for writability


class _Worker:
    """The sockets of one load process's users, its event loop (`serve`) and phases."""

    def __init__(
        self, spec: LoadSpec, family: int, addr: tuple[Any, ...], k: int, procs: int,
        conn: Connection,
    ) -> None:  # fmt: skip
        self.spec, self.family, self.addr, self.conn = spec, family, addr, conn
        # Client i connects to addrs[i % len(addrs)]: the checked address, then its host
        # on each extra port (an IPv6 address keeps its flow info and scope id).
        self.addrs = [addr, *((addr[0], port, *addr[2:]) for port in spec.extra_ports)]
        self.k, self.procs = k, procs  # this is process k of procs; client i lives in i % procs
        self.crowd = Crowd(spec, k, procs, make_user=_Sim)
        # The crowd made its users with `_Sim`: its lists hold nothing else.
        self.sims = cast("list[_Sim]", self.crowd.users)
        self.dirty = cast("set[_Sim]", self.crowd.dirty)  # bytes to write or a selector change due
        self.tally = self.crowd.tally
        self.sel = selectors.DefaultSelector()
        self.sel.register(conn.fileno(), selectors.EVENT_READ, None)
        self.phase = _Phase.LOGIN
        now = time.monotonic()
        self.deadline = now + SETUP_SECONDS + 0.005 * spec.clients
        self.give_up = now + run_budget(spec)  # the WAIT phase's deadline
        self.next_connect = 0
        # Invariant: connecting == the CONNECTING users with a socket (a connect in flight).
        self.connecting = 0
        self.t0 = self.t1 = self.next_tick = self.drain_end = float("inf")
        self.cpu0: float | None = None
        self.cpu1 = 0.0
        self.owed = 0  # deliveries every process's acked window sends owe us (from the parent)

    # --- the event loop ------------------------------------------------------------

    def serve(self) -> None:
        """Run the event loop until the parent has our result (or aborts)."""
        select, read_flag = self.sel.select, selectors.EVENT_READ
        while self.phase is not _Phase.DONE:
            for key, mask in select(self._timeout(time.monotonic())):
                sim = key.data
                if sim is None:
                    self._control(self.conn.recv())
                elif sim.state is CONNECTING:
                    self._connected(sim)
                elif sim.state is not DEAD:
                    if mask & read_flag:
                        self._read(sim)
                    if sim.watch_write:
                        self.dirty.add(sim)
            now = time.monotonic()
            self.crowd.timed_acks(now)
            while self._advance(now):
                pass
            self._flush()

    def _timeout(self, now: float) -> float:
        p = self.phase
        if p is _Phase.RUN:
            t0 = self.t0 if self.cpu0 is None else float("inf")
            when = min(t0, self.t1, self.crowd.next_t, self.next_tick)
        elif p in (_Phase.DRAIN, _Phase.DELIVER):
            when = self.drain_end
        else:  # LOGIN, WAIT, GROUPS, FINAL
            when = self.deadline
        when = min(when, self.crowd.next_ack())
        return min(1.0, max(0.0, when - now))

    def _flush(self) -> None:
        for sim in self.dirty:
            if sim.state is DEAD:
                continue
            sock = sim.sock
            assert sock is not None  # a live user's socket is registered
            if sim.out:
                try:
                    del sim.out[: sock.send(sim.out)]
                except BlockingIOError:
                    pass
                except OSError:
                    self._lost(sim)
                    continue
            want = bool(sim.out)
            if want != sim.watch_write:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
                self.sel.modify(sock, events, sim)
                sim.watch_write = want
        self.dirty.clear()

    def _read(self, sim: _Sim) -> None:
        assert sim.sock is not None  # a live user's socket is registered
        try:
            data = sim.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost(sim)
            return
        self.crowd.received(sim, data, time.monotonic())
        if sim.state is DEAD:  # the server refused its login
            self._close(sim)

    # --- connections ---------------------------------------------------------------

    def _start_connects(self) -> None:
        while self.next_connect < len(self.sims) and self.connecting < MAX_CONNECTING:
            sim = self.sims[self.next_connect]
            self.next_connect += 1
            try:
                sock = socket.socket(self.family, socket.SOCK_STREAM)
            except OSError as e:
                self._fail(sim, "connect", f"socket(): {e}")
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            addr = self._addr_of(sim)
            err = sock.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                self._fail(sim, "connect", f"connect to {addr}: {os.strerror(err)}")
                continue
            self.sel.register(sock, selectors.EVENT_WRITE, sim)
            sim.sock = sock
            self.connecting += 1

    def _addr_of(self, sim: _Sim) -> tuple[Any, ...]:
        return self.addrs[sim.index % len(self.addrs)]

    def _connected(self, sim: _Sim) -> None:
        assert sim.sock is not None  # a connect in flight is registered
        err = sim.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(sim, "connect", f"connect to {self._addr_of(sim)}: {os.strerror(err)}")
            return
        self.connecting -= 1
        self.sel.modify(sim.sock, selectors.EVENT_READ, sim)
        self.crowd.connected(sim)

    def _fail(self, sim: _Sim, what: str, note: str) -> None:
        self.tally.error(what, note)
        self._drop(sim)

    def _lost(self, sim: _Sim) -> None:
        if sim.state is not DEAD:
            self._fail(sim, "closed", f"the server closed the connection of {sim.name}")

    def _drop(self, sim: _Sim) -> None:
        """The one way a user ends: the crowd forgets it, its socket is closed."""
        if sim.state is CONNECTING and sim.sock is not None:
            self.connecting -= 1
        self.crowd.drop(sim)
        self._close(sim)

    def _close(self, sim: _Sim) -> None:
        if sim.sock is not None:
            self.sel.unregister(sim.sock)
            sim.sock.close()
            sim.sock = None

    def _close_all(self) -> None:
        """Drop every user and end the event loop."""
        for sim in self.sims:
            self._drop(sim)
        self.phase = _Phase.DONE

    # --- phases --------------------------------------------------------------------

    def _control(self, msg: tuple[Any, ...]) -> None:
        what = msg[0]
        if what == "groups":
            self.phase, self.deadline = _Phase.GROUPS, time.monotonic() + SETUP_SECONDS
            self.crowd.make_groups()
        elif what == "go":
            self.t0, self.t1, self.drain_end = msg[1:4]
            self.next_tick = self.t0 + 0.95 if self.spec.progress else float("inf")
            self.phase = _Phase.RUN
            self.crowd.go(self.t0, self.t1, time.monotonic())
        elif what == "expect":
            self.owed, self.phase = msg[1], _Phase.DELIVER
        else:  # "abort"
            self._close_all()

    def _advance(self, now: float) -> bool:
        """Move on to the next phase if this one is over; True if it moved."""
        p, crowd, tally = self.phase, self.crowd, self.tally
        if p is _Phase.LOGIN:
            self._start_connects()
            if crowd.login_waiting and now < self.deadline:
                return False
            for sim in self.sims:
                if sim.state in (CONNECTING, LOGIN):
                    self._fail(sim, "login_timeout", f"{sim.name}: no login reply in time")
            self._tell("ready", crowd.logged_in, dict(tally.errors), tally.note)
        elif p is _Phase.WAIT:
            if now < self.deadline:
                return False
            self._close_all()
            budget = run_budget(self.spec)
            self.conn.send(("gave_up", f"no next step from the parent in the run's {budget:g} s"))
        elif p is _Phase.GROUPS:
            if crowd.group_waiting > 0 and now < self.deadline:
                return False
            if crowd.group_waiting > 0:
                tally.error("group_timeout", "no reply to /group in time", crowd.group_waiting)
                crowd.group_failed += crowd.group_waiting
            self._tell("grouped", crowd.group_failed, tally.note)
        elif p is _Phase.RUN:
            if self.cpu0 is None and now >= self.t0:
                self.cpu0 = time.process_time()
            if now >= crowd.next_t:
                crowd.open_sends(now)
            if now >= self.next_tick:
                self.next_tick += 1.0
                self.conn.send(("progress", tally.sent, tally.delivered, tally.errors.total()))
            if now < self.t1:
                return False
            self.cpu1 = time.process_time()
            self.cpu0 = self.cpu1 if self.cpu0 is None else self.cpu0
            self.phase = _Phase.DRAIN
            return True
        elif p is _Phase.DRAIN:
            if crowd.sends_pending > 0 and now < self.drain_end:
                return False
            if crowd.sends_pending > 0:
                note = "sends without a reply after the drain"
                tally.error("no_reply", note, crowd.sends_pending)
            tally.close_oks()
            self._tell("expect", tally.owes)
        elif p is _Phase.DELIVER:
            if tally.delivered < self.owed and now < self.drain_end and crowd.n_ready:
                return False
            self.phase, self.deadline = _Phase.FINAL, now + FINAL_ACK_SECONDS
            crowd.final_acks()
            return True
        elif p is _Phase.FINAL:
            busy = (s.state is READY and (s.pending or s.ack_sent < s.last_id) for s in self.sims)
            if any(busy) and now < self.deadline:  # the final acks are not all answered
                return False
            self._close_all()
            self.conn.send(("result", self._report()))
        return False

    def _tell(self, *msg: object) -> None:
        self.conn.send(msg)
        self.phase, self.deadline = _Phase.WAIT, self.give_up

    def _report(self) -> ProcessReport:
        return self.tally.report(self.crowd.logged_in, self.cpu1 - (self.cpu0 or 0.0), self.owed)


def worker_main(
    spec: LoadSpec, family: int, addr: tuple[Any, ...], k: int, procs: int, conn: Connection
) -> None:
    """Entry point of load process `k` of `procs` (module level, so "spawn" can start it).

    Raises the soft fd limit to the hard one, pins to `spec.cpus`, runs the
    process's users; reports a crash to the parent instead of dying silently.
    """
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if spec.cpus:
            os.sched_setaffinity(0, spec.cpus)
        _Worker(spec, family, addr, k, procs, conn).serve()
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the parent went away or was interrupted
    except BaseException:
        conn.send(("crash", traceback.format_exc()))
