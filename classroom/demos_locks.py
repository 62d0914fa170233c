"""The lock demos: a tour of one traced run, `global` vs `fine` locking, and a
lock-order bug that becomes a real deadlock (`chat-demo tour`,
`global-vs-fine`, `deadlock`), and the building blocks notebooks 01-03 call.

Owns: the three lock scenarios; the runs they make (a load through
client/loadgen.py, or scripted json-mode clients for the deadlock); a few
readings of a trace for a person (one task's story, the most contended lock
class, when a deadlock formed and broke, the server's lock reports).
Must not: start a server other than through classroom/live.py, draw
(visualizer/plots.py and graphs.py do), compute lockstat numbers
(visualizer/stats.py does), or wait without a deadline.

    trace, summary = traced_run(out, locking="global", clients=8, seconds=1)
    run = provoke_deadlock(out)   # --locking inverted, until the watchdog sees a cycle
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import threading
import time
from collections import Counter
from pathlib import Path

from classroom.live import LiveServer
from classroom.scenario import RunResult
from client.loadgen import LoadSpec, Summary, run
from visualizer import stats
from visualizer.graphs import lock_order_graph
from visualizer.load import Trace, load_trace
from visualizer.report import summarize, write_compare, write_report

US, MS = 1_000, 1_000_000  # ns
#: How long a scripted client waits for one reply. A command caught in a
#: deadlock is answered `internal` after 4 x the watchdog (0.8 s at 0.2 s).
REPLY_SECONDS = 10.0
#: `/users` a scripted connection sends after its `/login` before it
#: reconnects: logins must keep coming for the two lock orders to meet.
USERS_PER_LOGIN = 4
_DEADLOCK_LINE = re.compile(r"\] deadlock: ")  # the watchdog's log line for a cycle
_REPORT_LINE = re.compile(
    r"possible (circular|recursive)|\] deadlock: |long lock wait|failed: gave up"
)


# --- runs ------------------------------------------------------------------------------


def _fresh(out: Path, name: str) -> tuple[Path, Path]:
    """`out/<name>.db` and `out/<name>.jsonl`, with nothing left of an earlier run."""
    out.mkdir(parents=True, exist_ok=True)
    for suffix in (".db", ".db-wal", ".db-shm", ".jsonl"):
        (out / f"{name}{suffix}").unlink(missing_ok=True)
    return out / f"{name}.db", out / f"{name}.jsonl"


def _stop(srv: LiveServer) -> None:
    code = srv.stop()
    if code != 0:
        raise RuntimeError(f"the server exited with {code}:\n" + "".join(srv.log[-20:]))


def traced_run(
    out: str | Path, locking: str = "fine", *, clients: int = 8, seconds: float = 1.0,
    window: int = 4, rate: float | None = None, sample: float = 1.0, trace_io: bool = False,
    workers: int = 4, name: str | None = None,
) -> tuple[Path, Summary]:  # fmt: skip
    """Start a traced server with `--locking locking`, let `clients` simulated
    users send each other private messages for `seconds`, stop the server.

    Closed loop with `window` sends in flight per client, or open loop at
    `rate` sends/s in total when `rate` is given. `sample` is
    `--trace-sample`; `trace_io` adds `--trace-io` (one event per recv/send).
    Writes `<name>.jsonl` and `<name>.db` into `out` (`name`: the locking).
    Returns the trace's path and the load generator's `Summary`.
    Raises `client.loadgen.LoadError` when the load cannot run and
    RuntimeError when the server does not stop cleanly.
    """
    name = name or locking
    db, trace = _fresh(Path(out), name)
    args = ["--locking", locking, "--workers", str(workers), "--trace-sample", str(sample)]
    load = {"mode": "open", "rate": rate} if rate else {"mode": "closed", "window": window}
    srv = LiveServer(db, *args, *(["--trace-io"] if trace_io else []), trace=trace).start()
    prefix = re.sub(r"[^A-Za-z0-9]", "", name)[:8] or "u"
    try:
        summary = run(LoadSpec(port=srv.port, clients=clients, duration=seconds, warmup=0.2,
                               drain=5.0, prefix=prefix, **load))  # fmt: skip
    finally:
        _stop(srv)
    return trace, summary


class _JsonClient:
    """One scripted connection in json mode; every read waits REPLY_SECONDS at most."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=REPLY_SECONDS)
        self.file = self.sock.makefile("rb")
        self.file.readline()  # the welcome line, in text mode
        self.call("/mode json")

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\n" for line in lines).encode())

    def reply(self) -> str:
        """The next reply: "ok" or its error code (other events are skipped)."""
        while line := self.file.readline():
            event = json.loads(line)
            if event.get("type") in ("ok", "error"):
                return "ok" if event["type"] == "ok" else event["code"]
        raise ConnectionError("the server closed the connection")

    def call(self, line: str) -> str:
        self.send(line)
        return self.reply()

    def __enter__(self) -> _JsonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        self.sock.close()


def _churn(address: tuple[str, int], user: str, until: float, stop: threading.Event,
           tally: Counter) -> None:  # fmt: skip
    """Log in as `user`, send USERS_PER_LOGIN `/users`, reconnect; until told or `until`."""
    while not stop.is_set() and time.monotonic() < until:
        try:
            with _JsonClient(address) as client:
                tally[client.call(f"/login {user}")] += 1
                client.send(*["/users"] * USERS_PER_LOGIN)
                for _ in range(USERS_PER_LOGIN):
                    tally[client.reply()] += 1
        except (OSError, ValueError):  # timeouts and closes are OSErrors; bad JSON
            tally["closed"] += 1


def _served(address: tuple[str, int]) -> bool:
    try:
        with _JsonClient(address) as client:
            return client.call("/login after") == "ok" and client.call("/users") == "ok"
    except (OSError, ValueError):
        return False


@dataclasses.dataclass(frozen=True)
class ScriptedRun:
    """What a scripted run left behind."""

    trace: Path
    log: str  # the server's whole log
    seconds: float  # how long the clients ran
    replies: dict[str, int]  # by outcome: "ok", or the error code ("internal": gave up)
    deadlock_after: float | None  # seconds until the watchdog logged a cycle, or None
    recovered: bool  # at the end a fresh client's /login and /users were answered ok

    @property
    def deadlocked(self) -> bool:
        return self.deadlock_after is not None


def provoke_deadlock(
    out: str | Path, *, locking: str = "inverted", clients: int = 12, timeout: float = 20.0,
    watchdog: float = 0.2, after: float = 1.5, name: str | None = None,
) -> ScriptedRun:  # fmt: skip
    """Run `clients` scripted connections, each logging in and sending
    `/users` over and over, against `--locking locking --watchdog watchdog`
    until the watchdog logs a deadlock (then `after` seconds more) or
    `timeout` seconds pass; then check that a fresh client is served, and
    stop the server.

    Under `inverted`, `/login` holds sessions and waits for storage while
    `/users` holds storage and waits for sessions: a real deadlock once the
    two interleave. Each wait gives up after 4 x `watchdog`, so the stuck
    commands answer `internal` and the deadlock breaks (while the load goes
    on, the next one forms soon after). Under `fine` (the fix) it runs the
    whole `timeout` and finds nothing.
    Writes `<name>.jsonl` and `<name>.db` into `out` (`name`: deadlock-<locking>).
    """
    db, trace = _fresh(Path(out), name or f"deadlock-{locking}")
    srv = LiveServer(db, "--locking", locking, "--watchdog", str(watchdog), trace=trace).start()
    began, found, stop = time.monotonic(), None, threading.Event()
    tallies = [Counter() for _ in range(clients)]
    try:
        threads = [threading.Thread(target=_churn, daemon=True, args=(
            srv.address, f"dl{i}", began + timeout + after, stop, tallies[i]))
            for i in range(clients)]  # fmt: skip
        for t in threads:
            t.start()
        seen = 0
        while found is None and time.monotonic() < began + timeout:
            time.sleep(0.05)
            n = len(srv.log)
            if any(_DEADLOCK_LINE.search(line) for line in srv.log[seen:n]):
                found = time.monotonic() - began
            seen = n
        stop.wait(after if found is not None else 0)
        stop.set()
        give_up = time.monotonic() + REPLY_SECONDS * (USERS_PER_LOGIN + 2)
        for t in threads:
            t.join(max(0.0, give_up - time.monotonic()))
        ran = time.monotonic() - began
        recovered = _served(srv.address)
    finally:
        stop.set()
        _stop(srv)
    replies = sum(tallies, Counter())
    return ScriptedRun(trace, srv.log_text(), ran, dict(replies), found, recovered)


def show_inversion(out: str | Path, seconds: float = 0.5) -> ScriptedRun:
    """`--locking inverted` with one scripted connection, whose commands run
    one at a time: `/login` (sessions, then storage), then `/users` (storage,
    then sessions). Nothing runs concurrently, nothing waits, yet the
    lock-order checker reports the cycle (log and `order_violation` event).
    Writes `inversion.jsonl` and `inversion.db` into `out`."""
    return provoke_deadlock(out, clients=1, timeout=seconds, after=0, name="inversion")


def lock_reports(log: str, limit: int = 12) -> str:
    """The lock-order checker's and the watchdog's reports in a server log
    (with their indented detail lines), and the waits that gave up: at
    most `limit` lines."""
    keep, out = False, []
    for line in log.splitlines():
        keep = bool(_REPORT_LINE.search(line)) or (keep and line.startswith("  "))
        if keep:
            out.append(line)
    return "\n".join(out[:limit])


# --- readings of a trace ---------------------------------------------------------------


def most_contended(trace: Trace) -> stats.LockRow | None:
    """The lock class whose waits add up to the most time (None: no locks)."""
    rows = [r for r in stats.lockstat(trace) if r.is_class]
    return max(rows, key=lambda r: (r.wait_total, r.contended), default=None)


def _busy_ns(trace: Trace) -> int:
    """From the first task queued (or started) to the last one done."""
    starts = [t for r in trace.tasks.values() if (t := r.queued or r.start) is not None]
    ends = [r.end for r in trace.tasks.values() if r.end is not None]
    return max(ends) - min(starts) if starts and ends else trace.end


def compare_runs(runs: dict[str, tuple[Trace, Summary]]) -> str:
    """A text table, one row per labelled run: throughput, send->ok latency,
    the most contended lock class, its contended share and p99 wait, and the
    share of the busy part of the run (first task queued to last task done)
    during which it was held (scaled up when the trace was sampled)."""
    rows = [("run", "msgs/s", "ok p50 ms", "ok p99 ms", "busiest lock", "contended",
             "p99 wait", "held")]  # fmt: skip
    for label, (trace, summary) in runs.items():
        ok, row = summary.ok_latency_ms, most_contended(trace)
        held = row.hold_total / max(_busy_ns(trace), 1) / trace.header.sample if row else 0.0
        rows.append((label, f"{summary.delivered_per_s:.0f}", f"{ok.get('p50', 0):.2f}",
                     f"{ok.get('p99', 0):.2f}", row.name if row else "-",
                     f"{row.contended_pct:.0f} %" if row else "-",
                     f"{row.wait_p99 / US:.0f} µs" if row else "-",
                     f"{100 * held:.0f} %"))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i in (0, 4) else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )  # fmt: skip
        for r in rows
    )


@dataclasses.dataclass(frozen=True)
class Step:
    """One moment of a task's story: when (ns), which thread, what happened."""

    ns: int
    thread: str
    what: str


def pick_task(trace: Trace, cmd: str = "send") -> int:
    """A typical `cmd` task: of those the trace holds whole (queued, started,
    ended), the middle half by time queued, the one with the median time from
    queued to end. Raises ValueError when the trace has none."""
    runs = sorted((r for r in trace.tasks.values() if r.cmd == cmd and None not in
                   (r.queued, r.start, r.end)), key=lambda r: r.queued)  # fmt: skip
    if not runs:
        raise ValueError(f"no whole /{cmd} task in {trace.path}")
    middle = sorted(runs[len(runs) // 4 : len(runs) - len(runs) // 4],
                    key=lambda r: (r.end - r.queued, r.task))  # fmt: skip
    return middle[len(middle) // 2].task


def _who(thread: str | None) -> str:
    return "reactor" if thread == "MainThread" else str(thread)


def _task_steps(trace: Trace, task: int) -> list[Step]:
    r = trace.tasks[task]
    who, steps = _who(r.thread), []
    if r.queued is not None:
        steps.append(Step(r.queued, _who(r.queued_by), f"queues /{r.cmd} (task {task})"))
    if r.start is not None:
        waited = f" after {(r.start - r.queued) / US:.0f} µs in the queue" if r.queued else ""
        steps.append(Step(r.start, who, f"starts /{r.cmd}{waited}"))
    for s in (s for s in trace.locks if s.task == task):
        if s.acquired is None:
            steps.append(Step(s.wait, _who(s.thread), f"waits for {s.lock}, and gives up"))
            continue
        if s.contended:
            steps.append(Step(s.wait, _who(s.thread), f"waits for {s.lock}"))
            steps.append(Step(s.acquired, _who(s.thread),
                              f"gets {s.lock} after {s.waited / US:.0f} µs"))  # fmt: skip
        else:
            steps.append(Step(s.acquired, _who(s.thread), f"takes {s.lock} (free)"))
        if s.released is not None:
            steps.append(Step(s.released, _who(s.thread),
                              f"releases {s.lock}, held {s.held / US:.0f} µs"))  # fmt: skip
    if r.end is not None:
        ran = f" (ran {r.run_time / US:.0f} µs)" if r.start is not None else ""
        steps.append(Step(r.end, who, f"ends /{r.cmd}{ran}"))
    return steps


def task_story(trace: Trace, task: int) -> list[Step]:
    """A command's path from bytes to reply, in time order: the reactor's
    read before it was queued (with --trace-io), its run and lock uses on a
    worker, the commit the worker then ran for that connection, and the
    reactor's first write to the connection after them (the reply)."""
    r = trace.tasks[task]
    steps, after = _task_steps(trace, task), r.end or 0
    commits = [c for c in trace.tasks.values() if c.cmd == "commit" and c.conn == r.conn
               and c.queued_by == r.thread and (c.queued or -1) >= after]  # fmt: skip
    if r.cmd != "commit" and commits:
        commit = min(commits, key=lambda c: c.queued)
        steps += _task_steps(trace, commit.task)
        after = max(after, commit.end or 0)
    io = sorted(e for e in trace.io if e[2] == r.conn)
    reads = [e for e in io if e[1] == "io_read" and e[0] <= (r.queued or -1)]
    writes = [e for e in io if e[1] == "io_write" and e[0] >= after]
    if reads:
        steps.append(Step(reads[-1][0], "reactor", f"reads {reads[-1][3]} bytes from "
                          f"connection {r.conn}"))  # fmt: skip
    if writes:
        steps.append(Step(writes[0][0], "reactor", f"writes {writes[0][3]} bytes to "
                          f"connection {r.conn} (the reply)"))  # fmt: skip
    return sorted(steps, key=lambda s: s.ns)


def format_story(steps: list[Step]) -> str:
    """The story as lines: ms since the trace start, +µs since the first step, thread, what."""
    t0 = steps[0].ns if steps else 0
    return "\n".join(
        f"{s.ns / MS:10.3f} ms  +{(s.ns - t0) / US:6.0f} µs  {s.thread:<10} {s.what}" for s in steps
    )


def story_window(steps: list[Step], pad: float = 1.0) -> tuple[int, int]:
    """A timeline window (ns) around the story, `pad` times its length on each side."""
    first, last = steps[0].ns, steps[-1].ns
    margin = int(max(last - first, 50 * US) * pad)
    return max(0, first - margin), last + margin


@dataclasses.dataclass(frozen=True)
class DeadlockMoments:
    """One deadlock the watchdog reported (ns since the trace start)."""

    formed: int  # the last of the cycle's waits began: from here nobody can move
    reported: int  # the watchdog's `deadlock` event
    broken: int | None  # the first of those waits ended (gave up), if the trace shows it
    cycle: tuple[str, ...]  # the threads, as the watchdog named them
    chain: tuple[dict, ...]  # per thread of the cycle: thread, cmd, waits_for, held_by, seconds


def deadlock_moments(trace: Trace) -> DeadlockMoments | None:
    """The first deadlock of the trace, or None. The cycle's waits are found
    among the lock spans (the thread waits for the named lock across the
    report); without them, `formed` comes from the report's wait times."""
    event = next((e for e in trace.others if e.get("ev") == "deadlock"), None)
    if event is None:
        return None
    ts, cycle = int(event["ts"]), tuple(event.get("cycle") or ())
    chain = tuple(c for c in event.get("chain") or () if not cycle or c.get("thread") in cycle)
    waits = [max((s for s in trace.locks if s.thread == c.get("thread") and s.lock ==
                  c.get("waits_for") and s.wait <= ts < (s.acquired or ts + 1)),
                 key=lambda s: s.wait, default=None) for c in chain]  # fmt: skip
    if chain and None not in waits:
        ends = [s.acquired if s.acquired is not None else s.timeout for s in waits]
        formed = max(s.wait for s in waits)
        broken = min((e for e in ends if e is not None), default=None)
    else:
        formed = ts - round(min((c.get("seconds", 0) for c in chain), default=0) * 1e9)
        broken = None
    return DeadlockMoments(formed, ts, broken, cycle, chain)


# --- the scenarios ---------------------------------------------------------------------


def _latency(summary: Summary) -> str:
    ok = summary.ok_latency_ms
    return f"send->ok p50 {ok.get('p50', 0):.2f} ms, p99 {ok.get('p99', 0):.2f} ms"


def _busiest(trace: Trace) -> str:
    row = most_contended(trace)
    if row is None:
        return "no lock was taken"
    return (f"busiest lock {row.name}: {row.contended_pct:.0f} % of {row.acquisitions} "
            f"acquisitions waited, p99 wait {row.wait_p99 / US:.0f} µs")  # fmt: skip


def tour(out: Path, quick: bool = False) -> RunResult:
    """A small traced run under `fine` locking, and one /send's path through it."""
    clients, seconds = (4, 0.5) if quick else (8, 2.0)
    path, summary = traced_run(out, "fine", clients=clients, seconds=seconds, window=1,
                               trace_io=True, name="tour")  # fmt: skip
    trace = load_trace(path)
    task = pick_task(trace, "send")
    steps = task_story(trace, task)
    report = write_report(trace, out / "report", window=story_window(steps)).parent
    (out / "story.txt").write_text(format_story(steps) + "\n")
    took = (steps[-1].ns - steps[0].ns) / US
    lines = (f"fine locking, {clients} clients: {summary.delivered_per_s:.0f} msgs/s, "
             + _latency(summary), _busiest(trace),
             f"one /send (task {task}): bytes in to reply out in {took:.0f} µs, {len(steps)} "
             "steps (story.txt, report/timeline.png)")  # fmt: skip
    numbers = {"load": summary.as_dict(), "trace": summarize(trace), "task": task,
               "story": [[s.ns, s.thread, s.what] for s in steps]}  # fmt: skip
    return RunResult("tour", out, path, report, numbers, lines)


def global_vs_fine(out: Path, quick: bool = False) -> RunResult:
    """The same closed-loop load under `--locking global`, then `fine`."""
    clients, seconds = (8, 0.5) if quick else (16, 2.0)
    runs = {}  # whole traces: a sampled one understates each thread's work in threads.png
    for locking in ("global", "fine"):
        path, summary = traced_run(out, locking, clients=clients, seconds=seconds)
        runs[locking] = (load_trace(path), summary)
    (g, g_sum), (f, f_sum) = runs["global"], runs["fine"]
    report = write_compare(g, f, out / "compare").parent
    (out / "compare.txt").write_text(compare_runs(runs) + "\n")
    ratio = f_sum.delivered_per_s / max(g_sum.delivered_per_s, 1e-9)
    lines = tuple(f"{name:>6}: {s.delivered_per_s:.0f} msgs/s, {_latency(s)}; {_busiest(t)}"
                  for name, (t, s) in runs.items()) + (
        f"fine/global throughput {ratio:.2f}: the work under the locks is serial either way"
        " (one SQLite connection, one GIL)",)  # fmt: skip
    numbers = {name: {"load": s.as_dict(), "trace": summarize(t)} for name, (t, s) in runs.items()}
    numbers["fine_over_global"] = ratio
    return RunResult("global-vs-fine", out, out / "fine.jsonl", report, numbers, lines)


def deadlock(out: Path, quick: bool = False) -> RunResult:
    """The inverted lock order: reported at once, then provoked into a real deadlock."""
    inversion = show_inversion(out)
    cycles = lock_order_graph(load_trace(inversion.trace)).graph["cycles"]
    found = provoke_deadlock(out, timeout=8.0 if quick else 30.0, after=1.0 if quick else 1.5)
    trace = load_trace(found.trace)
    report = write_report(trace, out / "report").parent
    moments = deadlock_moments(trace)
    order = "; ".join(" -> ".join([*c, c[0]]) for c in cycles) or "no cycle"
    lines = [f"lock-order checker, one client (nothing concurrent, no wait): {order}"]
    if moments is None:
        lines.append(f"no deadlock in {found.seconds:.1f} s of /login + /users (run it again)")
    else:
        stuck = ", ".join(f"{c['thread']} (/{c['cmd']}) waits for {c['waits_for']}"
                          for c in moments.chain)  # fmt: skip
        lines.append(f"deadlock after {found.deadlock_after:.1f} s: {stuck}")
    served = "served afterwards" if found.recovered else "NOT served afterwards"
    lines.append(f"{found.replies.get('ok', 0)} replies ok, {found.replies.get('internal', 0)} "
                 f"answered internal (gave up); a fresh client was {served}")  # fmt: skip
    numbers = {"order_cycles": cycles, "replies": found.replies, "recovered": found.recovered,
               "deadlock_after": found.deadlock_after, "trace": summarize(trace),
               "moments": moments and dataclasses.asdict(moments)}  # fmt: skip
    return RunResult("deadlock", out, found.trace, report, numbers, tuple(lines))


SCENARIOS = {"tour": tour, "global-vs-fine": global_vs_fine, "deadlock": deadlock}
