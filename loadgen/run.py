"""Load generator: simulated chat users driving a running server over loopback.

Owns: the parent side of a run (starting the load processes, driving their
phases, the on_start/on_end callbacks, the result) and the `chat-loadgen`
CLI. What a run is (`LoadSpec`) and its checks live in loadgen/spec.py, the
load processes' sockets and event loop in loadgen/users.py (one `selectors`
loop per load process), what their users say and hear in loadgen/wire.py
(sans-IO), the numbers and their rendering in loadgen/stats.py. Must not:
open a socket to the server (only the load processes do), connect anywhere
but loopback, or wait without a deadline.

A run is a sequence of phases that the parent drives over one Pipe per
process; a phase ends when every process has answered, so each step is a
barrier:

1. connect, `/mode json`, (`/register`,) `/login`            -> "ready"
2. the first member of each group runs `/group`                -> "grouped"
3. "go" with t0, t1 on the shared CLOCK_MONOTONIC: warmup, then the window
   [t0, t1); the parent calls on_start() at t0 and on_end() at t1
4. sending stops; wait for the reply to every send          -> "expect"
   (the deliveries each process is owed by this process's acked sends)
5. the parent tells each process its total; the process waits for it, acks
   everything, closes                                         -> "result"

A send's timestamp (monotonic, in its text; the *scheduled* time in open loop)
decides whether it belongs to the window, on the sender's side and on every
recipient's, so `undelivered` is exact: 0 on a correct server.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections import Counter, deque
from multiprocessing.connection import Connection, wait
from typing import Any

from loadgen.spec import MODES, LoadSpec, check_spec, default_procs, loopback
from loadgen.stats import Summary, format_summary, percentiles, progress_line, summarize
from loadgen.users import FINAL_ACK_SECONDS, PARENT_SLACK, SETUP_SECONDS, worker_main

# LoadSpec, check_spec, Summary and percentiles are re-exported: a run's caller
# needs no other module.
__all__ = ["LoadError", "LoadSpec", "Summary", "check_spec", "main", "percentiles", "run"]


#: What to do when the server wants passwords and none was given.
NEEDS_PASSWORD = (
    "the server wants passwords (its default, --auth password): give --password PW "
    "(the users are registered with it), or start the server with --auth none"
)
#: What to do when the server's per-connection rate limit refused sends.
RATE_LIMITED = (
    "the server rate-limits each connection (--rate-limit, 20 lines/s by default): "
    "start it with --rate-limit 0 for a load test, or offer less with --mode open --rate N"
)


class LoadError(Exception):
    """The run could not be carried out: clients could not log in, a load process died,
    got stuck or gave up waiting for this one."""


# --- the parent: phases, callbacks, result ----------------------------------------


class _Procs:
    """The load processes as seen by the parent: their pipes, and waiting on them."""

    def __init__(self, spec: LoadSpec, family: int, addr: tuple, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.spec, self.pipes, self.procs = spec, [], []
        self.latest: dict[int, tuple] = {}  # the last progress report of each process
        self.inbox: list[deque[tuple]] = [deque() for _ in range(n)]  # other reports, in order
        self.finished: set[int] = set()  # processes that sent their result
        try:
            for k in range(n):
                mine, theirs = ctx.Pipe()
                args = (spec, family, addr, k, n, theirs)
                name = f"chat-loadgen-{k}"
                p = ctx.Process(target=worker_main, args=args, name=name, daemon=True)
                p.start()
                theirs.close()
                self.pipes.append(mine)
                self.procs.append(p)
        except BaseException:
            self.stop()
            raise

    def tell(self, *msgs: tuple) -> None:
        """Send msgs[k] to process k (or msgs[0] to every process)."""
        for k, pipe in enumerate(self.pipes):
            pipe.send(msgs[k] if len(msgs) > 1 else msgs[0])

    def gather(self, what: str, deadline: float) -> list[tuple]:
        """Each process's next `what` message; LoadError if one dies or misses `deadline`."""
        while not all(self.inbox):
            if time.monotonic() >= deadline:
                late = [k for k, box in enumerate(self.inbox) if not box]
                raise LoadError(f"load processes {late} did not report {what!r} in time")
            self.poll(deadline)
        msgs = [box.popleft() for box in self.inbox]
        for k, msg in enumerate(msgs):
            if msg[0] != what:
                raise LoadError(f"load process {k} sent {msg[0]!r}, expected {what!r}")
        return msgs

    def poll(self, until: float) -> None:
        """Wait until `until` or a message; keep progress reports, queue the others."""
        live = [k for k in range(len(self.procs)) if k not in self.finished]
        sentinels = {self.procs[k].sentinel: k for k in live}
        pipes = {self.pipes[k]: k for k in live}
        for ready in wait([*pipes, *sentinels], max(0.0, until - time.monotonic())):
            if isinstance(ready, int):  # a sentinel: process k has exited
                k = sentinels[ready]
                if not self.pipes[k].poll() and k not in self.finished:
                    code = self.procs[k].exitcode
                    raise LoadError(f"load process {k} died (exit code {code})")
                continue
            assert isinstance(ready, Connection)  # the rest are our pipes
            k = pipes[ready]
            try:
                msg: tuple[Any, ...] = ready.recv()
            except EOFError:
                raise LoadError(f"load process {k} closed its pipe") from None
            if msg[0] == "crash":
                raise LoadError(f"load process {k} crashed:\n{msg[1]}")
            if msg[0] == "gave_up":
                raise LoadError(f"load process {k} gave up waiting for this one: {msg[1]}")
            if msg[0] == "progress":
                self.latest[k] = msg[1:]
                continue
            if msg[0] == "result":
                self.finished.add(k)
            self.inbox[k].append(msg)

    def stop(self) -> None:
        """Ask the processes to stop, make sure they are gone, close our ends of the pipes."""
        for pipe in self.pipes:
            try:
                pipe.send(("abort",))
            except OSError:
                pass
        for p in self.procs:
            p.join(2.0)
            if p.is_alive():
                p.kill()
                p.join()
            try:
                p.close()  # its sentinel fd
            except ValueError:  # never started, or not reaped yet: the GC closes it
                pass
        for pipe in self.pipes:
            pipe.close()


def run(spec: LoadSpec, on_start=None, on_end=None) -> Summary:
    """Drive the server at `spec.host:spec.port` (and `spec.extra_ports`) and measure it.

    Calls `on_start()` in the calling process the moment the measured window
    starts (every client logged in, groups made, warmup done) and `on_end()` the
    moment it ends (before the drain): the benchmark samples the server there.
    Uses `default_procs(spec)` processes: `spec.procs`, or min(4, usable CPUs).

    Raises ValueError for a bad spec, LoadError when the run cannot be carried
    out (not every client could log in outside idle mode, a group holds members
    of an earlier run, a load process died, missed a deadline or gave up
    waiting for this one).
    """
    check_spec(spec)
    family, addr = loopback(spec.host, spec.port)
    n = default_procs(spec)
    procs = _Procs(spec, family, addr, n)
    try:
        setup = time.monotonic() + SETUP_SECONDS + 0.005 * spec.clients + PARENT_SLACK + 5
        ready = procs.gather("ready", setup)
        connected = sum(r[1] for r in ready)
        problem = next((r[3] for r in ready if r[3]), "")
        if spec.mode != "idle" and connected < spec.clients:
            errors: Counter[str] = Counter()
            for r in ready:
                errors.update(r[2])
            if errors.get("bad_args") and spec.password is None:
                raise LoadError(NEEDS_PASSWORD)
            raise LoadError(
                f"only {connected} of {spec.clients} clients logged in"
                f" (errors: {dict(errors)}); first problem: {problem}"
            )
        if spec.mode != "idle" and dict(spec.mix).get("group", 0) > 0:
            procs.tell(("groups",))
            grouped = procs.gather("grouped", time.monotonic() + SETUP_SECONDS + PARENT_SLACK)
            if any(g[1] for g in grouped):
                raise LoadError("making the groups failed: " + next(g[2] for g in grouped if g[2]))
        t0 = time.monotonic() + spec.warmup
        t1 = t0 + spec.duration
        drain_end = t1 + spec.drain
        procs.tell(("go", t0, t1, drain_end))
        while time.monotonic() < t0:
            procs.poll(t0)
        if on_start:
            on_start()
        _watch(procs, t0, t1)
        if on_end:
            on_end()
        expects = procs.gather("expect", drain_end + PARENT_SLACK)
        procs.tell(*[("expect", sum(e[1][k] for e in expects)) for k in range(n)])
        end = max(drain_end, time.monotonic()) + FINAL_ACK_SECONDS + PARENT_SLACK
        reports = [r[1] for r in procs.gather("result", end)]
    finally:
        procs.stop()
    return summarize(spec, t1 - t0, reports)


def _watch(procs: _Procs, t0: float, t1: float) -> None:
    """Wait out the window, printing the progress line once a second if asked."""
    tick, last = t0 + 1.0, 0
    while time.monotonic() < t1:
        procs.poll(min(tick, t1) if procs.spec.progress else t1)
        now = time.monotonic()
        if procs.spec.progress and now >= tick:
            tick += 1.0
            sent, delivered, errors = (sum(r[i] for r in procs.latest.values()) for i in range(3))
            line = progress_line(now - t0, sent, delivered, errors, delivered - last)
            print(line, file=sys.stderr)
            last = delivered


# --- the CLI ---------------------------------------------------------------------


def _parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    mix = []
    for part in text.split(","):
        kind, _, weight = part.strip().partition("=")
        try:
            mix.append((kind, float(weight) if weight else 1.0))
        except ValueError:
            raise ValueError(f"bad weight in mix {text!r}: {weight!r}") from None
    return tuple(mix)


def _parser() -> argparse.ArgumentParser:
    d = LoadSpec()
    p = argparse.ArgumentParser(
        prog="chat-loadgen",
        description="Drive a chat server on loopback with simulated users. Against a server "
        "started with its defaults (make run) give --password, and start it with "
        "--rate-limit 0, or its per-connection limit refuses most sends.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--ip", dest="host", default=d.host, help="server address (loopback)")
    p.add_argument("--host", dest="host", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument(
        "--port", type=int, action="append", default=argparse.SUPPRESS,
        help=f"server port (default: {d.port}); repeat it to spread the clients over several "
        "servers on --ip, e.g. the nodes of a cluster (client i on the (i mod n)-th)",
    )  # fmt: skip
    p.add_argument("--clients", type=int, default=d.clients, help="simulated users")
    p.add_argument(
        "--mode", choices=MODES, default=d.mode,
        help="closed: a window per user; open: a fixed rate; idle: connect only",
    )  # fmt: skip
    p.add_argument(
        "--mix", default="private=1", help="traffic kinds and weights, e.g. private=0.8,group=0.2"
    )
    p.add_argument(
        "--window", type=int, default=d.window, help="closed loop: sends in flight per user"
    )
    p.add_argument("--rate", type=float, default=d.rate, help="open loop: sends/s offered in all")
    p.add_argument("--duration", type=float, default=d.duration, help="measured seconds")
    p.add_argument(
        "--warmup", type=float, default=d.warmup, help="seconds of load before measuring"
    )
    p.add_argument(
        "--drain", type=float, default=d.drain, help="seconds to wait for the last deliveries"
    )
    p.add_argument("--groups", type=int, default=d.groups, help="groups made for group traffic")
    p.add_argument("--group-size", type=int, default=d.group_size, help="members per group")
    p.add_argument("--procs", type=int, default=d.procs, help="load processes (0: min(4, CPUs))")
    p.add_argument("--cpus", default="", help="pin load processes to these CPUs, e.g. 0,1")
    p.add_argument("--password", default=None,
                   help="register the users and log in with this password (needed unless the "
                   "server runs --auth none)")  # fmt: skip
    p.add_argument("--prefix", default=d.prefix, help="user names are PREFIX0, PREFIX1, ...")
    p.add_argument("--text-bytes", type=int, default=d.text_bytes, help="bytes of text per message")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    return p


def main(argv: list[str] | None = None) -> int:
    """`chat-loadgen`: run a load and print its summary. Exit 1 on any error or
    undelivered message, 2 on bad arguments, else 0."""
    parser = _parser()
    a = parser.parse_args(argv)
    try:
        cpus = tuple(int(c) for c in a.cpus.split(",")) if a.cpus else None
        ports = getattr(a, "port", None) or [LoadSpec().port]  # --port, repeated
        spec = LoadSpec(
            **{k: getattr(a, k) for k in ("host", "clients", "mode", "window", "rate")},
            port=ports[0],
            extra_ports=tuple(ports[1:]),
            **{k: getattr(a, k) for k in ("duration", "warmup", "drain", "groups", "group_size")},
            **{k: getattr(a, k) for k in ("procs", "password", "prefix", "text_bytes")},
            mix=_parse_mix(a.mix),
            cpus=cpus,
            progress=not a.quiet,
        )
        check_spec(spec)
    except ValueError as e:
        parser.error(str(e))
    try:
        summary = run(spec)
    except LoadError as e:
        print(f"chat-loadgen: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(json.dumps(summary.as_dict()) if a.json else format_summary(summary))
    if summary.errors.get("rate_limited"):
        print(f"chat-loadgen: {RATE_LIMITED}", file=sys.stderr)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
