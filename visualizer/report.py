"""Report folders: every picture of a trace (or two traces side by side),
the numbers behind them, and an index.html that shows it all.

Owns: file names, figure sizes, captions, and which pictures a report
has. Must not: compute statistics, draw or write HTML (visualizer/stats.py,
graphs.py, plots.py, graphdraw.py and page.py do).
Uses `matplotlib.figure.Figure` directly, never pyplot, so it needs no
display and no global state.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from visualizer import graphdraw, plots, stats
from visualizer.graphs import busiest_instant
from visualizer.load import Trace
from visualizer.page import write_index

MS = 1_000_000


def _save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


def write_report(
    trace: Trace,
    out: str | Path,
    window: tuple[int, int] | None = None,
    at: int | None = None,
    commands: Collection[str] | None = None,
) -> Path:
    """Write the report of `trace` into folder `out`; return index.html's path.
    `window` (ns) limits the timeline; `at` (ns) is the wait-for instant
    (default: graphs.busiest_instant); `commands` are the ones blame.png
    shows (default: all but stats.SETUP_COMMANDS, which get a panel of
    their own)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    at = busiest_instant(trace) if at is None else at
    n_threads = len(trace.threads)
    pictures: list[tuple[str, str]] = []

    def add(fig: Figure, name: str, caption: str) -> None:
        pictures.append((_save(fig, out / name), caption))

    fig = Figure(figsize=(12, 2.0 + 0.5 * n_threads))
    plots.timeline(fig.add_subplot(), trace, window)
    add(
        fig,
        "timeline.png",
        "Timeline: each lane is a thread; hatched = waiting for a lock, solid = "
        "holding it, thick edge = holding it while another thread waits. A long run is "
        "shown around its busiest moment; choose another part with --window START:END (ms).",
    )

    fig = Figure(figsize=(12, 4.5))
    plots.wait_cdf(fig.add_subplot(1, 2, 1), trace)
    plots.wait_cdf(fig.add_subplot(1, 2, 2), trace, hold=True)
    add(
        fig,
        "waits.png",
        "Wait (left) and hold (right) times per lock class: the further right a "
        "curve reaches, the longer the worst cases.",
    )

    rows = stats.lockstat(trace)
    fig = Figure(figsize=(12, 1.0 + 0.3 * len(rows)))
    plots.lockstat_table(fig.add_subplot(), trace)
    add(
        fig,
        "lockstat.png",
        "Lock statistics: how often each lock was taken, how often a thread had "
        "to wait, and for how long.",
    )
    (out / "lockstat.txt").write_text(stats.lockstat_text(rows) + "\n")
    with open(out / "lockstat.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(stats.LOCKSTAT_COLUMNS)
        writer.writerows(stats.lockstat_records(rows))

    fig = Figure(figsize=(7, 5.5))
    graphdraw.draw_lock_order(fig.add_subplot(), trace)
    add(
        fig,
        "lock_order.png",
        "Lock-order graph: an arrow A → B means B was taken while holding A. "
        "A red cycle means two code paths take locks in opposite orders: a "
        "deadlock waiting to happen.",
    )

    fig = Figure(figsize=(7, 5.5))
    graphdraw.draw_wait_for(fig.add_subplot(), trace, at)
    add(
        fig,
        "wait_for.png",
        f"Wait-for graph at {at / MS:.3f} ms: who holds which lock and who waits "
        "for it. A cycle here is a real deadlock. Unless --at picks the instant, it is a "
        "reported deadlock, else the moment most threads wait while every lock waited for "
        "has a holder in the trace; a box says when a lock has none (free at that instant, "
        "or its holder not sampled).",
    )

    fig, caption = blame_figure(trace, commands)
    add(fig, "blame.png", caption)

    fig = Figure(figsize=(12, 4.5))
    plots.activity_chart(fig.add_subplot(), trace)
    add(fig, "activity.png", "Throughput, the pool's queue and lock waiters over time.")

    fig = Figure(figsize=(9, 1.2 + 0.45 * n_threads))
    plots.thread_chart(fig.add_subplot(), trace)
    add(
        fig,
        "threads.png",
        "Each thread's life: running commands, waiting for locks, idle. The reactor "
        "runs no command: its busy share is its time outside select (reading, parsing, "
        "writing), from its loop_busy events; a trace without them shows it idle.",
    )

    summary = summarize(trace)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    title = f"Trace report: {Path(trace.path).name}"
    return write_index(out, title, [(trace.header.locking, summary)], pictures,
                       stats.lockstat_text(rows), _DATA_FILES)  # fmt: skip


#: The data files of a report folder, linked from its index.html.
_DATA_FILES = ("summary.json", "lockstat.csv", "lockstat.txt")
#: Rows in blame.png: steady-state commands, then the setup panel.
BLAME_ROWS, SETUP_ROWS = 10, 4


def blame_figure(trace: Trace, commands: Collection[str] | None = None) -> tuple[Figure, str]:
    """blame.png and its caption: the slowest of `commands`; or, by default,
    the slowest steady-state commands with, below, the slowest setup ones
    (stats.SETUP_COMMANDS), which would otherwise fill the list."""
    present = {r.cmd for r in trace.tasks.values() if r.run_time is not None}
    setup = sorted(present & stats.SETUP_COMMANDS)
    if commands or not setup:
        fig = Figure(figsize=(12, 5))
        plots.blame_chart(fig.add_subplot(), trace, BLAME_ROWS, commands)
        which = ", ".join(f"/{c}" for c in sorted(commands)) if commands else "commands"
        return fig, f"The slowest {which}, and whose lock they waited for."
    fig = Figure(figsize=(12, 7.5))
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [BLAME_ROWS, SETUP_ROWS]})
    plots.blame_chart(top, trace, BLAME_ROWS, exclude=stats.SETUP_COMMANDS)
    names = ", ".join(f"/{c}" for c in setup)
    plots.blame_chart(bottom, trace, SETUP_ROWS, setup,
                      title=f"Setup: the slowest {names} (hashing a password takes tens of ms, "
                      "by design)")  # fmt: skip
    caption = (
        f"The slowest commands, and whose lock they waited for; {names} hash a password "
        "(scrypt), so they are shown apart, below. Choose the commands shown with "
        "--commands send,sendgroup."
    )
    return fig, caption


def summarize(trace: Trace) -> dict[str, Any]:
    """A few headline numbers of a trace."""
    done = [r for r in trace.tasks.values() if r.end is not None]
    seconds = max(trace.end, 1) / 1e9
    return {
        "trace": trace.path, "locking": trace.header.locking, "workers": trace.header.workers,
        "sample": trace.header.sample, "events": trace.events, "skipped_lines": trace.skipped,
        "seconds": round(seconds, 3), "tasks": len(trace.tasks),
        "tasks_per_second": round(len(done) / seconds, 1),
        "lock_acquisitions": sum(1 for s in trace.locks if s.acquired is not None),
        "contended": sum(1 for s in trace.locks if s.contended and s.acquired is not None),
        "order_violations": sum(1 for e in trace.others if e.get("ev") == "order_violation"),
        "deadlocks": sum(1 for e in trace.others if e.get("ev") == "deadlock"),
        "commands": stats.task_table(trace),
    }  # fmt: skip


def write_compare(a: Trace, b: Trace, out: str | Path) -> Path:
    """Two runs side by side (e.g. --locking global vs fine)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pictures: list[tuple[str, str]] = []

    def add(fig: Figure, name: str, caption: str) -> None:
        pictures.append((_save(fig, out / name), caption))

    name = [
        f"{'node ' + t.header.node + ', ' if t.header.node else ''}{t.header.locking}"
        f" ({Path(t.path).name})"
        for t in (a, b)
    ]
    fig = Figure(figsize=(13, 4.5))
    for i, t in enumerate((a, b)):
        ax = plots.wait_cdf(fig.add_subplot(1, 2, i + 1), t)
        ax.set_title(f"Waits: {name[i]}")
    add(fig, "waits.png", "Lock waits of each run, per class.")
    fig = Figure(figsize=(13, 4.5))
    for i, t in enumerate((a, b)):
        ax = plots.activity_chart(fig.add_subplot(1, 2, i + 1), t)
        ax.set_title(f"Activity: {name[i]}")
    add(fig, "activity.png", "Throughput and queues of each run.")
    fig = Figure(figsize=(13, 1.5 + 0.45 * max(len(a.threads), len(b.threads))))
    for i, t in enumerate((a, b)):
        ax = plots.thread_chart(fig.add_subplot(1, 2, i + 1), t)
        ax.set_title(f"Threads: {name[i]}")
    add(fig, "threads.png", "What each thread did, in each run.")
    summaries = {"a": summarize(a), "b": summarize(b)}
    (out / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    runs = [(name[0], summaries["a"]), (name[1], summaries["b"])]
    with open(out / "compare.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("run", *stats.LOCKSTAT_COLUMNS))
        for label, t in (("a", a), ("b", b)):
            writer.writerows((label, *r) for r in stats.lockstat_records(stats.lockstat(t)))
    tables = "\n\n".join(
        f"{n}\n{stats.lockstat_text(stats.lockstat(t))}" for n, t in zip(name, (a, b), strict=True)
    )
    return write_index(out, f"{name[0]} vs {name[1]}", runs, pictures, tables,
                       ("summary.json", "compare.csv"))  # fmt: skip
