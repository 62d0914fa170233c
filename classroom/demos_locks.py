"""The lock demos: a tour of one traced run, `global` vs `fine` locking, and a
lock-order bug that becomes a real deadlock (`chat-demo tour`,
`global-vs-fine`, `deadlock`), and the building blocks notebooks 01-03 call.

Owns: the three lock scenarios; the runs they make (a load through
loadgen/run.py, or scripted json-mode harness clients for the deadlock); the
server's lock reports picked out of its log. The readings of a trace the
scenarios use (a task's story, the most contended lock class, runs side by
side, a deadlock's moments) come from classroom/tracestory.py and are
imported here, so the notebooks call them as `demo.task_story` and so on.
Must not: read a trace for a person itself (classroom/tracestory.py does),
start a server other than through classroom/live.py, draw
(visualizer/plots.py and graphs.py do), compute lockstat numbers
(visualizer/stats.py does), or wait without a deadline.

    trace, summary = traced_run(out, locking="global", clients=8, seconds=1)
    run = provoke_deadlock(out)   # --locking inverted, until the watchdog sees a cycle
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import Counter
from pathlib import Path

from classroom.live import LiveServer, fresh_paths, stop_cleanly
from classroom.result import RunResult
from classroom.tracestory import (
    US,
    compare_runs,
    deadlock_moments,
    format_story,
    most_contended,
    pick_task,
    story_window,
    task_story,
)
from harness import Client, UnexpectedReply
from loadgen.run import LoadSpec, Summary, run
from visualizer.graphs import lock_order_graph
from visualizer.load import Trace, load_trace
from visualizer.report import summarize, write_compare, write_report

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
    Raises `loadgen.run.LoadError` when the load cannot run and
    RuntimeError when the server does not stop cleanly.
    """
    name = name or locking
    db, trace = fresh_paths(Path(out), name)
    args = ["--locking", locking, "--workers", str(workers), "--trace-sample", str(sample)]
    load = {"mode": "open", "rate": rate} if rate else {"mode": "closed", "window": window}
    srv = LiveServer(db, *args, *(["--trace-io"] if trace_io else []), trace=trace).start()
    prefix = re.sub(r"[^A-Za-z0-9]", "", name)[:8] or "u"
    try:
        summary = run(LoadSpec(port=srv.port, clients=clients, duration=seconds, warmup=0.2,
                               drain=5.0, prefix=prefix, **load))  # fmt: skip
    finally:
        stop_cleanly(srv)
    return trace, summary


#: What ends a scripted connection early: a timeout or a reset (OSError), the
#: server closing it (EOFError), a line that is not JSON (ValueError).
_CUT_OFF = (OSError, EOFError, ValueError, UnexpectedReply)


def _scripted(address: tuple[str, int]) -> Client:
    """One scripted connection in json mode; every read waits REPLY_SECONDS at most."""
    return Client(address, timeout=REPLY_SECONDS)


def _outcome(reply: dict) -> str:
    """A reply as the tallies count it: "ok" or its error code."""
    return "ok" if reply["type"] == "ok" else reply["code"]


def _churn(address: tuple[str, int], user: str, until: float, stop: threading.Event,
           tally: Counter) -> None:  # fmt: skip
    """Log in as `user`, send USERS_PER_LOGIN `/users`, reconnect; until told or `until`."""
    while not stop.is_set() and time.monotonic() < until:
        try:
            with _scripted(address) as client:
                tally[_outcome(client.call(f"/login {user}"))] += 1
                client.send(*["/users"] * USERS_PER_LOGIN)
                for _ in range(USERS_PER_LOGIN):
                    tally[_outcome(client.reply())] += 1
        except _CUT_OFF:
            tally["closed"] += 1


def _served(address: tuple[str, int]) -> bool:
    try:
        with _scripted(address) as client:
            return all(client.call(line)["type"] == "ok" for line in ("/login after", "/users"))
    except _CUT_OFF:
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
        """The watchdog logged a cycle."""
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
    db, trace = fresh_paths(Path(out), name or f"deadlock-{locking}")
    srv = LiveServer(db, "--locking", locking, "--watchdog", str(watchdog), trace=trace).start()
    began, found, stop = time.monotonic(), None, threading.Event()
    tallies = [Counter() for _ in range(clients)]
    try:
        threads = [threading.Thread(target=_churn, daemon=True, args=(
            srv.addr, f"dl{i}", began + timeout + after, stop, tallies[i]))
            for i in range(clients)]  # fmt: skip
        for t in threads:
            t.start()
        try:
            srv.wait_for_log(_DEADLOCK_LINE, timeout)
            found = time.monotonic() - began
        except TimeoutError:
            pass  # no deadlock within `timeout` (or the server died: stop_cleanly says)
        stop.wait(after if found is not None else 0)
        stop.set()
        give_up = time.monotonic() + REPLY_SECONDS * (USERS_PER_LOGIN + 2)
        for t in threads:
            t.join(max(0.0, give_up - time.monotonic()))
        ran = time.monotonic() - began
        recovered = _served(srv.addr)
    finally:
        stop.set()
        stop_cleanly(srv)
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
    story = format_story(steps)
    (out / "story.txt").write_text(story + "\n")
    took = (steps[-1].ns - steps[0].ns) / US
    lines = (f"fine locking, {clients} clients: {summary.delivered_per_s:.0f} msgs/s, "
             + _latency(summary), _busiest(trace),
             f"one /send (task {task}): bytes in to reply out in {took:.0f} µs, {len(steps)} "
             "steps (story.txt, report/timeline.png)")  # fmt: skip
    numbers = {"load": summary.as_dict(), "trace": summarize(trace), "task": task,
               "story": [[s.ns, s.thread, s.what] for s in steps]}  # fmt: skip
    tables = ((f"One /send (task {task}), from the bytes in to the reply out", story),)
    return RunResult("tour", out, path, report, numbers, lines, tables=tables)


def global_vs_fine(out: Path, quick: bool = False) -> RunResult:
    """The same closed-loop load under `--locking global`, then `fine`."""
    clients, seconds = (8, 0.5) if quick else (16, 2.0)
    runs = {}  # whole traces: a sampled one understates each thread's work in threads.png
    for locking in ("global", "fine"):
        path, summary = traced_run(out, locking, clients=clients, seconds=seconds)
        runs[locking] = (load_trace(path), summary)
    (g, g_sum), (f, f_sum) = runs["global"], runs["fine"]
    report = write_compare(g, f, out / "compare").parent
    table = compare_runs(runs)
    (out / "compare.txt").write_text(table + "\n")
    ratio = f_sum.delivered_per_s / max(g_sum.delivered_per_s, 1e-9)
    lines = (*(f"{name:>6}: {s.delivered_per_s:.0f} msgs/s, {_latency(s)}; {_busiest(t)}"
               for name, (t, s) in runs.items()),
             f"fine/global throughput {ratio:.2f}: the work under the locks is serial either way"
             " (one SQLite connection, one GIL)")  # fmt: skip
    numbers = {name: {"load": s.as_dict(), "trace": summarize(t)} for name, (t, s) in runs.items()}
    numbers["fine_over_global"] = ratio
    return RunResult("global-vs-fine", out, out / "fine.jsonl", report, numbers, lines,
                     tables=(("The two runs", table),))  # fmt: skip


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
    tables = (("The lock-order checker, one client", lock_reports(inversion.log)),
              ("The inverted run: lock reports in its log", lock_reports(found.log)))  # fmt: skip
    return RunResult("deadlock", out, found.trace, report, numbers, tuple(lines), tables=tables)


SCENARIOS = {"tour": tour, "global-vs-fine": global_vs_fine, "deadlock": deadlock}
