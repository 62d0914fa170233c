"""Report folders: every picture of a trace (or two traces side by side),
the numbers behind them, and an index.html that shows it all.

Owns: file names, figure sizes, captions and the HTML page. Must not:
compute statistics or draw (visualizer/stats.py, plots.py, graphdraw.py do).
Uses `matplotlib.figure.Figure` directly, never pyplot, so it needs no
display and no global state.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from visualizer import graphdraw, plots, stats
from visualizer.load import Trace

MS = 1_000_000


def busiest_instant(trace: Trace) -> int:
    """Where to look at the wait-for graph: a reported deadlock, else the
    instant with the most threads waiting for locks (exact sweep)."""
    for e in trace.others:
        if e.get("ev") == "deadlock":
            return int(e["ts"])
    changes = []
    for s in trace.locks:
        stop = s.acquired if s.acquired is not None else s.timeout
        if stop is None or stop > s.wait:
            changes.append((s.wait, 1))
            changes.append((stop if stop is not None else trace.end, -1))
    best, best_at, now = 0, trace.end // 2, 0
    for ts, d in sorted(changes, key=lambda c: (c[0], c[1])):
        now += d
        if now > best:
            best, best_at = now, ts
    return best_at


def _save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


def write_report(
    trace: Trace, out: str | Path, window: tuple[int, int] | None = None, at: int | None = None
) -> Path:
    """Write the report of `trace` into folder `out`; return index.html's path.
    `window` (ns) limits the timeline; `at` (ns) is the wait-for instant."""
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
        "for it. A cycle here is a real deadlock.",
    )

    fig = Figure(figsize=(12, 5))
    plots.blame_chart(fig.add_subplot(), trace)
    add(fig, "blame.png", "The slowest commands, and whose lock they waited for.")

    fig = Figure(figsize=(12, 4.5))
    plots.activity_chart(fig.add_subplot(), trace)
    add(fig, "activity.png", "Throughput, the pool's queue and lock waiters over time.")

    fig = Figure(figsize=(9, 1.2 + 0.45 * n_threads))
    plots.thread_chart(fig.add_subplot(), trace)
    add(
        fig,
        "threads.png",
        "Each thread's life: running commands, waiting for locks, idle. The reactor's "
        "own work (reading, writing) is not a task, so its bar shows only idle.",
    )

    summary = summarize(trace)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    title = f"Trace report: {Path(trace.path).name}"
    return _write_index(out, title, summary, pictures, stats.lockstat_text(rows))


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

    name = [f"{t.header.locking} ({Path(t.path).name})" for t in (a, b)]
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
    with open(out / "compare.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("run", *stats.LOCKSTAT_COLUMNS))
        for label, t in (("a", a), ("b", b)):
            writer.writerows((label, *r) for r in stats.lockstat_records(stats.lockstat(t)))
    tables = "\n\n".join(
        f"{n}\n{stats.lockstat_text(stats.lockstat(t))}" for n, t in zip(name, (a, b), strict=True)
    )
    return _write_index(out, f"{name[0]} vs {name[1]}", summaries, pictures, tables)


def _write_index(
    out: Path, title: str, summary: dict[str, Any], pictures: list[tuple[str, str]], table: str
) -> Path:
    esc = html.escape
    figures = "\n".join(
        f'<figure><img src="{esc(src)}" alt="{esc(cap)}">'
        f"<figcaption>{esc(cap)}</figcaption></figure>"
        for src, cap in pictures
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto}}
img{{max-width:100%;border:1px solid #ccc}}figure{{margin:2em 0}}
pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}</style></head>
<body><h1>{esc(title)}</h1>
<pre>{esc(json.dumps(summary, indent=2))}</pre>
<h2>Lock statistics</h2><pre>{esc(table)}</pre>
{figures}
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index
