"""matplotlib pictures of a trace: timeline, wait and hold distributions,
the lockstat table, the blame of slow commands, activity over time.

Owns: drawing. Every function takes a matplotlib `Axes`, draws one picture
on it and returns it. Must not: read files, compute statistics beyond
arranging what visualizer/stats.py gives, or call `plt.show()`.
Pictures must read in black and white too: locks differ by hatch as well
as by color, and waiting is drawn hatched, holding solid.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Collection
from typing import NamedTuple

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from visualizer import stats, units
from visualizer.load import LockSpan, Trace

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]  # fmt: skip
_HATCHES = ["", "//", "\\\\", "xx", "..", "oo", "--", "++", "**", "||"]
MS = 1e6  # ns per ms


def lock_style(trace: Trace) -> dict[str, tuple[str, str]]:
    """A (color, hatch) per lock class, stable across pictures of one trace."""
    classes = sorted({s.cls for s in trace.locks})
    return {
        c: (_COLORS[i % len(_COLORS)], _HATCHES[i % len(_HATCHES)]) for i, c in enumerate(classes)
    }


def timeline(ax: Axes, trace: Trace, window: tuple[int, int] | None = None) -> Axes:
    """One lane per thread: tasks as thin grey bars, lock waits hatched and
    light, holds solid; a hold during which another thread waited for the
    same lock has a thick black edge (Tracy's 'held while others wait').
    Bars are drawn one collection per lane and kind, so a run of 100,000
    lock uses draws in seconds."""
    start, end = window or default_window(trace)
    threads = trace.thread_order()
    lane = {name: i for i, name in enumerate(threads)}
    style = lock_style(trace)
    bars: dict[_Bars, list[tuple[float, float]]] = defaultdict(list)

    def bar(key: _Bars, a: int, b: int) -> None:
        if b >= start and a <= end:
            bars[key].append((a / MS, max(b - a, 1) / MS))

    for run in trace.tasks.values():
        if run.thread in lane and run.start is not None and run.end is not None:
            bar(_Bars("task", lane[run.thread]), run.start, run.end)
    contended_holds = _holds_with_waiters(trace)
    for s in trace.locks:
        if s.thread not in lane:
            continue
        y, last = lane[s.thread], trace.threads[s.thread].last
        stop = s.acquired if s.acquired is not None else (s.timeout or last)
        if stop > s.wait:
            bar(_Bars("wait", y, s.cls), s.wait, stop)
        if s.acquired is not None:
            rel = s.released if s.released is not None else last
            bar(_Bars("hold", y, s.cls, id(s) in contended_holds), s.acquired, rel)
    queued = [
        q / MS
        for r in trace.tasks.values()
        if r.queued_by == "MainThread" and (q := r.queued) is not None and start <= q <= end
    ]
    if queued and "MainThread" in lane:
        ax.plot(queued, [lane["MainThread"]] * len(queued), "|", color="black", markersize=12)
    ax.set_autoscale_on(False)
    for key, ranges in bars.items():
        if key.kind == "task":
            ax.broken_barh(ranges, (key.lane - 0.45, 0.9), color="#dddddd", zorder=1)
        elif key.kind == "wait":
            color = style[key.cls][0]
            ax.broken_barh(ranges, (key.lane - 0.3, 0.6), facecolor="white", edgecolor=color,
                           hatch="////", zorder=2)  # fmt: skip
        else:
            color, hatch = style[key.cls]
            ax.broken_barh(ranges, (key.lane - 0.3, 0.6), facecolor=color, hatch=hatch,
                           edgecolor="black", linewidth=1.5 if key.contended else 0,
                           zorder=3)  # fmt: skip
    ax.set_yticks(range(len(threads)), [("reactor" if t == "MainThread" else t) for t in threads])
    ax.set_ylim(len(threads) - 0.5, -0.5)
    ax.set_xlim(start / MS, max(end, start + 1) / MS)
    ax.set_xlabel("time since trace start (ms)")
    handles: list[Artist] = [
        Patch(facecolor=c, hatch=h, label=cls) for cls, (c, h) in style.items()
    ]
    handles += [Patch(facecolor="white", edgecolor="black", hatch="////", label="waiting"),
                Patch(facecolor="#dddddd", label="running a command"),
                Patch(facecolor="white", edgecolor="black", linewidth=1.5,
                      label="held while others wait"),
                Line2D([], [], marker="|", color="black", linestyle="none", markersize=10,
                       label="reactor queues a command")]  # fmt: skip
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="small",
              ncols=5, frameon=False)  # fmt: skip
    what = "" if (start, end) == (0, trace.end) else f", {start / MS:.1f}-{end / MS:.1f} ms"
    ax.set_title(f"Who did what, when ({trace.header.locking} locking{what})")
    return ax


class _Bars(NamedTuple):
    """One collection of a timeline: a kind of bar on one lane."""

    kind: str  # "task", "wait" or "hold"
    lane: int
    cls: str = ""  # the lock class of a wait or a hold
    contended: bool = False  # a hold while another thread waited


#: A timeline shows at most this many lock uses before it zooms in by itself.
TIMELINE_SPANS = 400


def default_window(trace: Trace) -> tuple[int, int]:
    """The whole trace if it is small; else a window of about TIMELINE_SPANS
    lock uses starting a little before the moment most threads waited."""
    if len(trace.locks) <= TIMELINE_SPANS:
        return 0, trace.end
    waits = [s.wait for s in trace.locks]  # sorted: the loader sorts by wait
    busiest = max(stats.activity(trace, 200).waiters.items(), key=lambda kv: max(kv[1]),
                  default=(None, [0]))[1]  # fmt: skip
    step = max(trace.end, 1) // 200 + 1
    centre = busiest.index(max(busiest)) * step if max(busiest, default=0) else trace.end // 2
    i = max(0, bisect.bisect_left(waits, centre) - TIMELINE_SPANS // 4)
    j = min(len(waits) - 1, i + TIMELINE_SPANS)
    return waits[i], max(waits[j], waits[i] + 1)


def _holds_with_waiters(trace: Trace) -> set[int]:
    """ids of spans whose hold overlaps another thread's wait for that lock:
    the hold under way when a wait began, and every hold that began while
    it lasted (binary search over each lock's holds, no quadratic pass)."""
    by_lock: dict[str, list[tuple[int, LockSpan]]] = {}  # (acquired, span)
    for s in trace.locks:
        if s.acquired is not None:
            by_lock.setdefault(s.lock, []).append((s.acquired, s))
    out: set[int] = set()
    for uses in by_lock.values():
        uses.sort(key=lambda u: u[0])
        starts = [a for a, _ in uses]
        for acquired, w in uses:
            if acquired == w.wait:
                continue
            first = max(0, bisect.bisect_right(starts, w.wait) - 1)
            last = bisect.bisect_left(starts, acquired)
            out.update(id(h) for _, h in uses[first:last] if h is not w)
    return out


def wait_cdf(ax: Axes, trace: Trace, hold: bool = False) -> Axes:
    """CDF of wait (or hold) times per lock class on a log axis, p50/p99 marked."""
    style = lock_style(trace)
    by_cls: dict[str, list[int]] = {}
    for s in trace.locks:
        value = s.held if hold else s.waited
        if value is not None:
            by_cls.setdefault(s.cls, []).append(max(value, 1))
    linestyles = ["-", "--", ":", "-."]
    for i, (cls, values) in enumerate(sorted(by_cls.items())):
        values.sort()
        n = len(values)
        xs = [v / 1000 for v in values]
        ys = [(k + 1) / n for k in range(n)]
        ax.step(xs, ys, where="post", color=style[cls][0], linestyle=linestyles[i % 4],
                label=f"{cls} (n={n})")  # fmt: skip
        for q, marker in ((50, "o"), (99, "^")):
            p = stats.percentile(values, q) / 1000
            ax.plot([p], [q / 100], marker=marker, color=style[cls][0], linestyle="none")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    what = "hold" if hold else "wait"
    ax.set_xlabel(f"{what} time (µs, log scale; 0 is drawn at 0.001); o = p50, ^ = p99")
    ax.set_ylabel("fraction of acquisitions")
    ax.set_title(f"How long threads {'held' if hold else 'waited for'} each lock class")
    if by_cls:
        ax.legend(fontsize="small")
    return ax


def lockstat_table(ax: Axes, trace: Trace) -> Axes:
    """The lockstat table as a picture (classes first, then locks)."""
    rows = stats.lockstat_records(stats.lockstat(trace))
    columns = ["name", "kind", "acq", "contended", "%", "wait tot µs", "wait max",
               "p50", "p99", "hold tot µs", "hold max", "timeouts"]  # fmt: skip
    ax.axis("off")
    if not rows:
        ax.text(0.5, 0.5, "no lock events in this trace", ha="center")
        return ax
    table = ax.table(cellText=[[str(c) for c in r] for r in rows], colLabels=columns,
                     loc="center", cellLoc="right")  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.3)
    ax.set_title("Lock statistics (like /proc/lock_stat)")
    return ax


def blame_chart(
    ax: Axes,
    trace: Trace,
    n: int = 10,
    commands: Collection[str] | None = None,
    exclude: Collection[str] = (),
    title: str | None = None,
) -> Axes:
    """The n slowest commands (of `commands`, all when None, none of
    `exclude`: stats.blame) as stacked bars: queue delay, each lock wait
    (labelled with the command that held the lock), running. The axis is
    in the unit that fits the slowest (µs, ms or s)."""
    rows = stats.blame(trace, n, commands, exclude)
    which = f"the {len(rows)} slowest " + (_cmds(commands) if commands else "commands")
    if exclude and not commands:
        which += f" (without {_cmds(exclude)})"
    ax.set_title(title or f"Where {which} spent their time")
    if not rows:
        ax.set_axis_off()
        what = _cmds(commands) if commands else "command"
        ax.text(0.5, 0.5, f"no {what} in this trace", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
        return ax
    unit, scale = units.unit_for(max(b.total for b in rows))
    style = lock_style(trace)
    for y, b in enumerate(rows):
        left = 0.0
        ax.barh(y, b.queue_delay / scale, left=left, color="#bbbbbb", hatch="..")
        left += b.queue_delay / scale
        for lock, waited, _holder, holder_cmd in b.waits:
            color = style[lock.partition(":")[0]][0]
            ax.barh(y, waited / scale, left=left, color="white", edgecolor=color, hatch="////")
            if holder_cmd and waited > 0:
                ax.text(left, y, f" {lock} held by /{holder_cmd}", va="center", fontsize=7)
            left += waited / scale
        ax.barh(y, b.running / scale, left=left, color="#555555")
    ax.set_yticks(range(len(rows)), [f"/{b.cmd} #{b.task}" for b in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"{unit}: queued (dotted), waiting for a lock (hatched), running (dark)")
    return ax


def _cmds(names: Collection[str]) -> str:
    return ", ".join(f"/{c}" for c in sorted(names))


def activity_chart(ax: Axes, trace: Trace, intervals: int = 100) -> Axes:
    """Commands completed per ms, pool queue length and lock waiters over time."""
    act = stats.activity(trace, intervals)
    xs = [i * act.step / MS for i in range(len(act.completed))]
    per_ms = [c / (act.step / MS) for c in act.completed]
    ax.plot(xs, per_ms, color="black", label="commands done per ms")
    ax.plot(
        xs, act.queued, color="#d62728", linestyle="--", label="tasks waiting in the pool queue"
    )
    style = lock_style(trace)
    for lock, counts in act.waiters.items():
        if any(counts):
            ax.plot(xs, counts, linestyle=":", color=style[lock.partition(":")[0]][0],
                    label=f"threads waiting for {lock}")  # fmt: skip
    ax.set_xlabel("time since trace start (ms)")
    ax.set_title("Throughput, queue and lock waiters over time")
    ax.legend(fontsize="small")
    return ax


def thread_chart(ax: Axes, trace: Trace) -> Axes:
    """Busy / waiting / idle share of each thread; a loop thread's busy
    share (its time outside select, from loop_busy events) drawn apart
    from time in tasks."""
    rows = stats.thread_times(trace)
    for y, t in enumerate(rows):
        total = max(t.lifetime, 1)
        left = 0.0
        for part, color, hatch in ((t.busy - t.loop, "#555555", ""), (t.loop, "#999999", "xx"),
                                   (t.waiting, "white", "////"),
                                   (t.idle, "#eeeeee", "")):  # fmt: skip
            ax.barh(y, 100 * part / total, left=left, color=color, hatch=hatch, edgecolor="black")
            left += 100 * part / total
    ax.set_yticks(
        range(len(rows)), [("reactor" if t.name == "MainThread" else t.name) for t in rows]
    )
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of the thread's life")
    ax.legend(
        handles=[
            Patch(facecolor="#555555", edgecolor="black", label="running commands"),
            Patch(facecolor="#999999", edgecolor="black", hatch="xx",
                  label="loop working (outside select)"),
            Patch(facecolor="white", edgecolor="black", hatch="////", label="waiting for locks"),
            Patch(facecolor="#eeeeee", edgecolor="black", label="idle"),
        ],
        loc="upper center", bbox_to_anchor=(0.5, -0.25), ncols=4, fontsize="small",
        frameon=False,
    )  # fmt: skip
    ax.set_title("What each thread did")
    return ax
