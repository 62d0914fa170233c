"""The I/O demos: a slow consumer dropped and then replayed, and the
three I/O models side by side (`chat-demo slow-consumer`,
`threads-vs-reactor`), and the building blocks notebooks 04 and 05 call.

Owns: the I/O models side by side (thread per client, one loop, a loop and
a pool) (the workloads, the runs with the
benchmark's own runner, their chart and lines) and the two scenarios, with
what they write into their folder. The slow consumer's run, its reading of
the trace and its charts live in classroom/slowconsumer.py; they are
imported here, so notebook 04 calls them as `demos_io.run_slow_consumer`
and so on. Must not: start a server other than through classroom/live.py
or benchmarks/servers.py, compute lock statistics (visualizer/stats.py),
wait without a deadline, or import the registry (classroom/scenario.py).

    run = run_slow_consumer(folder)            # classroom/slowconsumer.py
    found = compare_io_models(io_workloads())  # benchmarks.matrix.run_cell per cell
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmarks import results as bench_results
from benchmarks.matrix import Cell, Result, Workload, run_cell
from benchmarks.servers import by_name, cpu_plan
from classroom.charts import DPI, save_chart
from classroom.result import RunResult
from classroom.slowconsumer import SlowConsumerRun as SlowConsumerRun  # for the tests
from classroom.slowconsumer import (
    backlog_chart,
    buffer_growth,
    delivery_chart,
    growth_chart,
    run_slow_consumer,
)
from loadgen.run import LoadSpec
from visualizer.stats import aligned

# --- threads vs the reactor --------------------------------------------------------------

IO_DESIGNS = ("reactor-global", "inline-global", "threaded-global")
_HEADLINE = {"idle": ("rss_per_conn_kib", "RSS KiB per idle connection"),
             "private": ("delivered_per_s", "delivered msgs/s"),
             "latency": ("p50_ms", "send→delivery ms: p50 (bar), p99 (tick)")}  # fmt: skip
# One look per design, told apart in colour and in black and white.
_COLORS, _HATCHES = ("#1f77b4", "#2ca02c", "#ff7f0e"), ("", "..", "//")
# How a number is written just above its bar or tick (Axes.annotate's keywords).
_ABOVE: dict[str, Any] = {"xytext": (0, 2), "textcoords": "offset points", "ha": "center",
                          "fontsize": 8}  # fmt: skip


def io_workloads(
    idle: int = 200, clients: int = 20, rate: float = 500, duration: float = 1.0
) -> list[Workload]:
    """Three small workloads for `benchmarks.matrix.run_cell`: `idle`
    connections that only log in (memory per connection), `clients` users
    sending private messages in a closed loop (throughput), and the same
    users at a light open-loop `rate` sends/s in all (latency)."""
    idle_spec = LoadSpec(clients=idle, mode="idle", duration=0.5, warmup=0)
    closed_spec = LoadSpec(clients=clients, duration=duration, warmup=0.2)
    open_spec = replace(closed_spec, mode="open", rate=rate)
    return [
        Workload(f"idle-{idle}", "idle", idle_spec),
        Workload(f"private-{clients}", "private", closed_spec),
        Workload(f"latency-{clients}@{rate:g}", "latency", open_spec),
    ]


def compare_io_models(
    works: Sequence[Workload], designs: Sequence[str] = IO_DESIGNS, repeat: int = 1,
    log: Callable[[str], object] = print,
) -> list[Result]:  # fmt: skip
    """Run each workload on each design with the benchmark's runner (a fresh
    server pinned apart from the load generator where there are two cores,
    `benchmarks.servers.cpu_plan`), `repeat` times in rounds (idle ones once:
    memory is not noisy), so a `Result` holds every run and its median."""
    server_cpus, load_cpus = cpu_plan()
    runs: dict[tuple[str, str], list[Cell]] = {(d, w.name): [] for w in works for d in designs}
    for r in range(repeat):
        for w in works:
            for name in designs:
                if r == 0 or w.kind != "idle":
                    cell = run_cell(by_name(name), w, server_cpus, load_cpus, log)
                    runs[name, w.name].append(cell)
    return [
        Result(d, w.name, w.kind, w.spec.clients, runs[d, w.name]) for w in works for d in designs
    ]


def io_model_chart(ax: Axes, found: list[Result], kind: str) -> Axes:
    """One bar per design and workload of `kind` (idle, private or latency):
    the median of its runs, written on it, with a whisker from the lowest
    to the highest run when there are several."""
    attr, label = _HEADLINE[kind]
    rows = [r for r in found if r.kind == kind]
    works = list(dict.fromkeys(r.workload for r in rows))
    designs = list(dict.fromkeys(r.design for r in rows))
    width = 0.8 / max(len(designs), 1)
    for i, d in enumerate(designs):
        for j, w in enumerate(works):
            r = next((x for x in rows if x.design == d and x.workload == w), None)
            if r is None or (value := r.median(attr)) is None:
                continue
            x = j + (i - (len(designs) - 1) / 2) * width
            ax.bar(x, value, width, color=_COLORS[i % 3], hatch=_HATCHES[i % 3],
                   label=d if j == 0 else None)  # fmt: skip
            values = [getattr(c, attr) for c in r.runs if getattr(c, attr) is not None]
            if len(values) > 1:  # the spread of the repeats
                ax.errorbar(x, value, [[value - min(values)], [max(values) - value]],
                            color="black", capsize=4)  # fmt: skip
            ax.annotate(_num(value), (x, max(values, default=value)), va="bottom", **_ABOVE)
            p99 = r.median("p99_ms") if kind == "latency" else None
            if p99 is not None:
                ax.plot([x], [p99], "_", color="black", markersize=16)
                ax.annotate(f"p99 {_num(p99)}", (x, p99), va="bottom", **_ABOVE)
    ax.margins(y=0.12)  # room for the numbers above the bars
    ax.set_xticks(range(len(works)), works)
    ax.set_ylabel(label)
    ax.set_title(f"{kind}: {label}")
    ax.legend(fontsize="small")
    return ax


def _num(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def io_model_lines(found: list[Result]) -> tuple[str, ...]:
    """One line per workload: each design's headline number."""
    lines = []
    for w in dict.fromkeys(r.workload for r in found):
        rows = [r for r in found if r.workload == w]
        attr, label = _HEADLINE[rows[0].kind]
        p99 = rows[0].kind == "latency"
        parts = [
            f"{r.design.split('-')[0]} {_num(r.median(attr) or 0)}"
            + (f" (p99 {_num(r.median('p99_ms') or 0)})" if p99 else "")
            for r in rows
        ]
        lines.append(f"{w}: {label.split(':')[0]}: " + ", ".join(parts))
    return tuple(lines)


# --- the scenarios ----------------------------------------------------------------------


_SLOW_CAPTIONS = {
    "growth.png": "Bytes the server had for the reader (blue) against bytes written to its "
    "socket (black): the orange gap is its output buffer, until the red line where the server "
    "dropped it; the messages after that are kept only in the database (hatched).",
    "growth-zoom.png": "The same, on the last milliseconds before the drop: each orange step "
    "is one commit's messages waiting in the buffer.",
    "backlog.png": "The reader's output buffer against --max-outbuf (dotted): every commit's "
    "bytes come and go at once until the kernel stops taking them; then the buffer passes the "
    "limit and is cut.",
    "ids.png": "One tick per message id: sent, read on the old connection, replayed at the "
    "next login (every id, in id order).",
}
#: The numbers of the run on its page: (label, key of its summary).
_SLOW_NUMBERS = (
    ("--max-outbuf, bytes", "max_outbuf"), ("queued for the reader at the drop, bytes",
    "queued_at_drop"), ("peak backlog, bytes", "peak_backlog"), ("dropped after, ms", "drop_ms"),
    ("messages sent", "sent"), ("sent before the drop", "sent_before_drop"),
    ("read on the old connection", "read_before_drop"), ("unread at the next login", "unread"),
    ("replayed", "replayed"), ("lost", "lost"), ("replay in id order", "in_order"),
)  # fmt: skip


def _number(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def slow_consumer(out: Path, quick: bool = False) -> RunResult:
    """Flood a reader that never reads, watch its buffer grow to the limit,
    see it dropped, and replayed in full at its next login."""
    sc = run_slow_consumer(out, after=20 if quick else 100)
    g = buffer_growth(sc)
    save_chart(out / "growth.png", growth_chart, g)
    save_chart(out / "backlog.png", backlog_chart, g)
    if g.drop_ms is not None:
        save_chart(out / "growth-zoom.png", growth_chart, g, (g.drop_ms - 6, g.drop_ms + 2))
    save_chart(out / "ids.png", delivery_chart, sc, size=(10, 3.6))
    summary = {k: v for k, v in asdict(sc).items() if k not in ("line_bytes", "sent", "replayed",
                                                                 "read_before_drop")}  # fmt: skip
    summary |= {"sent": len(sc.sent), "read_before_drop": len(sc.read_before_drop),
                "replayed": len(sc.replayed), "lost": len(sc.lost), "in_order": sc.in_order,
                "drop_ms": g.drop_ms, "peak_backlog": max(b or 0 for b in g.backlog)}  # fmt: skip
    numbers = [(label, _number(summary[key])) for label, key in _SLOW_NUMBERS]
    tables = (("The run", aligned(numbers, left=1)), ("The server's log", sc.drop_log),
              ("/stats connections afterwards", json.dumps(sc.counters, indent=1)))  # fmt: skip
    pictures = tuple((n, c) for n, c in _SLOW_CAPTIONS.items() if (out / n).exists())
    return RunResult("slow-consumer", out, sc.trace, None, summary, sc.lines(), pictures, tables)


def threads_vs_reactor(out: Path, quick: bool = False) -> RunResult:
    """The thread-per-client model against the reactor, with the benchmark's
    runner: memory per idle connection, throughput, latency."""
    works = io_workloads(idle=50, clients=10, rate=200, duration=0.5) if quick else io_workloads(
        idle=1000, clients=50, rate=1000, duration=3)  # fmt: skip
    found = compare_io_models(works, repeat=1 if quick else 3)
    kinds = ("idle", "private", "latency")
    plotted = bench_results.plots(found, out)  # idle.png, private.png, latency.png
    fig = Figure(figsize=(15, 4.5))
    for i, kind in enumerate(kinds):
        io_model_chart(fig.add_subplot(1, 3, i + 1), found, kind)
    fig.tight_layout()
    fig.savefig(out / "io_models.png", dpi=DPI)
    tables = [bench_results.table(found, kind) for kind in kinds]
    links = [f"![{p.stem}]({p.name})" for p in [out / "io_models.png", *plotted]]
    text = ["# Threads vs reactor (one run per cell)", *tables, "\n".join(links)]
    (out / "README.md").write_text("\n\n".join(text) + "\n")
    cells = [asdict(c) for r in found for c in r.runs]
    (out / "cells.json").write_text(json.dumps(cells, indent=1))
    pictures = [("io_models.png", "Each I/O model's median per workload: memory per idle "
                 "connection, messages delivered per second, send→delivery latency.")]  # fmt: skip
    pictures += [(p.name, f"The benchmark's chart (chat-bench): {_HEADLINE[p.stem][1]}")
                 for p in plotted if p.stem in _HEADLINE]  # fmt: skip
    return RunResult("threads-vs-reactor", out, None, None, {"cells": cells},
                     io_model_lines(found), tuple(pictures),
                     tuple(zip((_HEADLINE[k][1] for k in kinds), tables, strict=True)))  # fmt: skip
