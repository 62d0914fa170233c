"""The trace-driven what-if for the server's locks (`chat-demo what-if`,
notebook 06): simple queueing models fed by one measured trace, and their
predictions set against measured runs.

Owns: the models — M/G/1 (Pollaczek–Khinchine) for one lock seen as an open
queue, and mean value analysis (MVA) for the pool's workers as a closed
system around one lock; the numbers they take from a trace (per lock, in a
time window: acquisitions per second, mean and second moment of the hold
time, measured mean wait); the table of which lock keys each command holds
(`HOLDS`), used to deal a `--locking global` trace's holds out to the `fine`
locks; the comparison rows, their table and bar chart, and why a
prediction of M/G/1 and its measurement differ (`mg1_gap`). Must not: start a
server or make a run (classroom/whatif_runs.py makes the traced runs that
test the predictions), or read traces other than with visualizer/load.py.

    base = measure(trace, window)["global"]
    mg1_wait(base.rate, base.mean_hold, base.hold_m2)   # predicted mean wait, s
    fine = split_global(trace, window, groups=2)[0]     # the global holds, dealt to fine locks

Every time here is in seconds (traces are in ns). A mean wait is over every
acquisition, the free ones counting 0, which is what M/G/1's W means too.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from matplotlib.axes import Axes

from visualizer.load import LockSpan, Trace
from visualizer.stats import aligned

NS = 1e9
#: Name of the row that stands for every group lock (`group:<name>`) at once.
GROUP = "group:*"

#: The lock keys of each top-level `hold()` a command makes, in order, as
#: written in reactor/chat/commands.py, groups.py and commit.py (`--auth none`). Under
#: `global` each is one acquisition of the one lock (nested holds are free and
#: leave no trace). The first key of a block is held for all of it; the others
#: for all of it too, except `commit`'s `storage` then `sessions` and `login`'s
#: `sessions, storage`, which are nested inside `delivery` and held for part.
Holds = Mapping[str, tuple[tuple[str, ...], ...]]  # command -> its hold blocks' lock keys
HOLDS: Holds = {
    "send": (("storage",),),
    "sendgroup": ((GROUP, "storage"),),
    "history": (("storage",),),
    "groups": (("storage",),),
    "ack": (("storage",),),
    "text_ack": (("storage",),),
    "users": (("sessions", "storage"),),
    "login": (("groups", "storage"), ("delivery", "sessions", "storage")),
    "register": (("storage",), ("groups", "storage")),
    "group": (("groups", GROUP, "sessions", "storage"),),
    "leave": (("groups", GROUP, "sessions", "storage"),),
    "disconnect": (("sessions",),),
    "exit": (("sessions",),),
    "commit": (("delivery", "storage", "sessions"),),
}


# --- the formulas ----------------------------------------------------------------------


def mg1_wait(rate: float, mean_hold: float, hold_m2: float) -> float:
    """Mean wait in an M/G/1 queue (Pollaczek–Khinchine): W = λ·E[S²] / (2(1 − ρ)),
    ρ = λ·E[S]. `rate` λ per second, `mean_hold` E[S] in s, `hold_m2` E[S²] in s².
    Returns math.inf when ρ >= 1 (the queue grows without bound).
    Raises ValueError for a negative argument."""
    if rate < 0 or mean_hold < 0 or hold_m2 < 0:
        raise ValueError("rate and hold-time moments must be 0 or more")
    rho = rate * mean_hold
    if rho >= 1:
        return math.inf
    return rate * hold_m2 / (2 * (1 - rho))


def mva(workers: int, mean_hold: float, think: float) -> tuple[float, float]:
    """Exact mean value analysis of `workers` threads that each, in a loop,
    work `think` s without the lock, then queue for it and hold it
    `mean_hold` s (one FCFS server, one delay station; exact for
    exponential holds, E[S²] = 2·E[S]²). Returns (mean wait for the lock in
    s, acquisitions/s). Raises ValueError unless workers >= 1 and the times
    are >= 0."""
    if workers < 1 or mean_hold < 0 or think < 0:
        raise ValueError("workers must be at least 1 and the times 0 or more")
    queued = 0.0  # mean threads at the lock (waiting or holding)
    for k in range(1, workers + 1):
        response = mean_hold * (1 + queued)  # arrival theorem: it finds `queued` ahead
        rate = k / (think + response) if think + response > 0 else math.inf
        queued = rate * response
    return response - mean_hold, rate


# --- what a trace says about a lock ----------------------------------------------------


@dataclass(frozen=True)
class LockLoad:
    """One lock as a queue over a window: how often it is taken, how long it
    is held, and (when measured) how long takers waited. For `group:*`, the
    numbers of one group lock (acquisitions averaged over the group locks)."""

    lock: str
    acquisitions: float
    seconds: float
    mean_hold: float  # E[S], s
    hold_m2: float  # E[S²], s²
    mean_wait: float | None = None  # measured, s; None for a prediction

    @property
    def rate(self) -> float:
        """λ, acquisitions per second."""
        return self.acquisitions / self.seconds if self.seconds > 0 else 0.0

    @property
    def rho(self) -> float:
        """Utilisation ρ = λ·E[S]: the fraction of time the lock is held."""
        return self.rate * self.mean_hold

    def mg1(self) -> float:
        """The M/G/1 mean wait of this lock, s."""
        return mg1_wait(self.rate, self.mean_hold, self.hold_m2)


def _load(
    name: str, holds: list[int], seconds: float, locks: int, waits: list[int] | None = None
) -> LockLoad:
    n = len(holds)
    mean = sum(holds) / n / NS if n else 0.0
    m2 = sum(h * h for h in holds) / n / NS**2 if n else 0.0
    wait = sum(waits) / len(waits) / NS if waits else None
    return LockLoad(name, n / max(locks, 1), seconds, mean, m2, wait)


def measure(trace: Trace, window: tuple[int, int], by: str = "lock") -> dict[str, LockLoad]:
    """Per lock, the acquisitions whose wait began in `window` (ns since the
    trace start, [start, end)): rate, hold moments, mean wait. Group locks
    are pooled into one `group:*` row (per-lock rate: the mean of them).
    `by="cmd"`: one row per command instead, over every lock it took."""
    t0, t1 = window
    holds: dict[str, list[int]] = defaultdict(list)
    waits: dict[str, list[int]] = defaultdict(list)
    members: dict[str, set[str]] = defaultdict(set)
    for s in trace.locks:
        if not t0 <= s.wait < t1 or s.acquired is None or s.released is None:
            continue
        run = trace.tasks.get(s.task)
        if by == "cmd":
            name = run.cmd if run else "?"
        else:
            name = GROUP if s.cls == "group" else s.lock
        holds[name].append(s.released - s.acquired)
        waits[name].append(s.acquired - s.wait)
        members[name].add(s.lock if by == "lock" else name)
    seconds = (t1 - t0) / NS
    names = sorted(holds, key=lambda n: (-len(holds[n]) if by == "cmd" else 0, n))
    return {n: _load(n, holds[n], seconds, len(members[n]), waits[n]) for n in names}


def handoff_gaps(trace: Trace, window: tuple[int, int]) -> dict[str, tuple[int, float]]:
    """Per lock (group locks pooled): how many acquisitions in `window` had
    to wait, and the mean time from the previous holder's release to that
    acquisition — time the lock sat free while a thread waited for it (the
    waiter being woken and getting the GIL back). Seconds."""
    t0, t1 = window
    spans: dict[str, list[tuple[int, int, LockSpan]]] = defaultdict(list)  # acquired, released
    for s in trace.locks:
        if s.acquired is not None and s.released is not None:
            spans[s.lock].append((s.acquired, s.released, s))
    gaps: dict[str, list[int]] = defaultdict(list)
    for lock, used in spans.items():
        used.sort(key=lambda u: u[0])
        for (_, released, _before), (acquired, _, s) in pairwise(used):
            if s.contended and t0 <= s.wait < t1:
                gaps[GROUP if s.cls == "group" else lock].append(acquired - released)
    return {k: (len(v), sum(v) / len(v) / NS) for k, v in sorted(gaps.items())}


def split_global(
    trace: Trace, window: tuple[int, int], groups: int = 1, holds: Holds = HOLDS
) -> tuple[dict[str, LockLoad], dict[str, int]]:
    """What-if `fine`: deal each acquisition of `global` in `window` to the
    fine locks its hold block would take (`holds`: command -> blocks, the
    k-th acquisition of a task being its k-th block), each with the hold time
    measured under `global`. Group holds are spread evenly over `groups`
    group locks. Returns the predicted loads (no waits) and the count of
    acquisitions by commands `holds` does not know (left out)."""
    t0, t1 = window
    by_task: dict[int, list[tuple[int, LockSpan]]] = defaultdict(list)  # (acquired, span)
    for s in trace.locks:
        if s.acquired is not None:
            by_task[s.task].append((s.acquired, s))
    dealt: dict[str, list[int]] = defaultdict(list)
    unknown: Counter[str] = Counter()
    for task, spans in by_task.items():
        run = trace.tasks.get(task)
        cmd = run.cmd if run else "?"
        blocks = holds.get(cmd)
        spans.sort(key=lambda u: u[0])
        for i, (acquired, s) in enumerate(spans):
            if not t0 <= s.wait < t1 or s.released is None:
                continue
            if not blocks:
                unknown[cmd] += 1
                continue
            for key in blocks[min(i, len(blocks) - 1)]:
                dealt[key].append(s.released - acquired)
    seconds = (t1 - t0) / NS
    loads = {k: _load(k, dealt[k], seconds, groups if k == GROUP else 1) for k in sorted(dealt)}
    return loads, dict(unknown)


def think_time(load: LockLoad, workers: int) -> float:
    """Per acquisition, the time a worker spends away from the lock (running
    lock-free code, or idle), from Little's law over the whole cycle:
    workers = λ·(Z + W + E[S]), so Z = workers/λ − W − E[S] (never below 0).
    `load` must be measured (have a mean wait)."""
    if load.mean_wait is None or load.rate <= 0:
        raise ValueError("think_time needs a measured load with acquisitions")
    return max(0.0, workers / load.rate - load.mean_wait - load.mean_hold)


# --- predictions against measurements ---------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One lock of one run: a model's prediction and what was measured."""

    run: str  # e.g. "fine, 4 workers"
    lock: str
    model: str  # which model, fed with what
    predicted_wait: float  # s
    predicted_rate: float  # acquisitions/s
    predicted_rho: float
    measured: LockLoad

    @property
    def own_wait(self) -> float:
        """M/G/1 fed with this run's own measured rate and holds: separates the
        queueing formula's error from the error in its inputs."""
        return self.measured.mg1()


def compare(
    run: str, model: str, predicted: dict[str, LockLoad], measured: dict[str, LockLoad]
) -> list[Row]:
    """Rows for the locks both in `predicted` (loads whose M/G/1 wait is the
    prediction) and in `measured`, busiest predicted first."""
    names = sorted(set(predicted) & set(measured), key=lambda n: -predicted[n].rho)
    return [
        Row(run, n, model, predicted[n].mg1(), predicted[n].rate, predicted[n].rho, measured[n])
        for n in names
    ]


def workers_row(
    run: str, base: LockLoad, base_workers: int, workers: int, measured: LockLoad
) -> Row:
    """The MVA prediction for `base` (measured with `base_workers`) run with
    `workers` threads: same holds and think time per acquisition."""
    wait, rate = mva(workers, base.mean_hold, think_time(base, base_workers))
    model = "MVA, exp. holds"
    return Row(run, base.lock, model, wait, rate, rate * base.mean_hold, measured)


def what_if_rows(
    base: LockLoad, workers: int, fine_predicted: dict[str, LockLoad], fine: dict[str, LockLoad],
    more: dict[str, LockLoad], more_workers: int,
) -> list[Row]:  # fmt: skip
    """The comparison of the what-if: `base` (the `global` lock measured with
    `workers` workers) against itself (M/G/1 and MVA), the `fine` locks
    predicted from it against the measured `fine` run, and the `global` lock
    with `more_workers` (M/G/1 at the old rate, MVA) against its measured run."""
    here, there = f"global, {workers} workers", f"global, {more_workers} workers"
    rows = compare(here, "M/G/1", {base.lock: base}, {base.lock: base})
    rows.append(workers_row(here, base, workers, workers, base))
    rows += compare(f"fine, {workers} workers", "M/G/1, dealt holds", fine_predicted, fine)
    if base.lock in more:
        rows += compare(there, "M/G/1, old λ", {base.lock: base}, more)
        rows.append(workers_row(there, base, workers, more_workers, more[base.lock]))
    return rows


def check_holds(trace: Trace, holds: Holds = HOLDS) -> dict[str, list[str]]:
    """Check `holds` against a `fine` trace: per command, the locks its tasks
    took that its blocks do not name (empty when the table is right)."""
    named = {cmd: {k for block in blocks for k in block} for cmd, blocks in holds.items()}
    extra: dict[str, set[str]] = defaultdict(set)
    for s in trace.locks:
        run = trace.tasks.get(s.task)
        if run is None or s.acquired is None:
            continue
        key = GROUP if s.cls == "group" else s.lock
        if key not in named.get(run.cmd, ()):
            extra[run.cmd].add(key)
    return {cmd: sorted(keys) for cmd, keys in sorted(extra.items())}


#: How far apart (a factor) an M/G/1 prediction and its measurement may be and still agree.
AGREE = 1.25


def mg1_gap(row: Row, workers: int) -> str:
    """One sentence on why `row`'s M/G/1 prediction and its measured mean
    wait differ, for the direction they differ in, with the run's numbers;
    `workers` threads take the lock (so at most `workers` − 1 wait)."""
    pred, wait = row.predicted_wait, row.measured.mean_wait or 0.0
    waiting = row.measured.rate * wait  # Little's law: threads waiting, on average
    cap = f"at most {workers - 1} of its {workers} workers can wait (L = λW = {waiting:.1f} did)"
    if pred > AGREE * wait:
        size = f"is {pred / wait:.1f}× too high" if wait > 0 else "is too high"
        size, waits = ("sees no bound (ρ ≥ 1)", "finite") if math.isinf(pred) else (size, "short")
        return (
            f"M/G/1 {size}: it assumes an open system (Poisson arrivals, an unbounded queue),"
            f" but the server is closed: {cap}, so waits stay {waits}."
        )
    if wait > AGREE * pred:
        size = f"{wait / pred:.1f}× too low" if pred > 0 else "too low"
        return (
            f"M/G/1 is {size}: it assumes independent Poisson arrivals, but here they come in"
            " bursts (a batch of commands at once, a commit right behind it), which queue longer."
        )
    why = "hardly binds" if waiting < (workers - 1) / 2 else "and bursts roughly cancel out"
    return f"M/G/1 and the run agree within {(AGREE - 1) * 100:.0f} %: {cap}; that cap {why}."


def format_rows(rows: list[Row]) -> str:
    """An aligned text table: rates, utilisations and mean waits (µs), predicted
    and measured, and M/G/1 on the run's own numbers."""
    head = ("run", "lock", "model", "λ pred/s", "λ meas/s", "ρ pred", "ρ meas",
            "W pred µs", "W meas µs", "W M/G/1 own µs")  # fmt: skip
    table = [head]
    for r in rows:
        m = r.measured
        table.append((r.run, r.lock, r.model, f"{r.predicted_rate:,.0f}", f"{m.rate:,.0f}",
                      f"{r.predicted_rho:.2f}", f"{m.rho:.2f}", format_us(r.predicted_wait),
                      format_us(m.mean_wait), format_us(r.own_wait)))  # fmt: skip
    return aligned(table, left=3)


def format_loads(loads: dict[str, LockLoad], mg1: bool = True) -> str:
    """One line per lock (or command): λ, E[S], √E[S²], ρ, the M/G/1 wait
    (unless `mg1` is False) and the measured mean wait, if any."""
    return "\n".join(
        f"{n:9} λ {x.rate:9,.0f}/s  E[S] {format_us(x.mean_hold):>6} µs"
        f"  √E[S²] {format_us(math.sqrt(x.hold_m2)):>7} µs  ρ {x.rho:5.2f}"
        + (f"  M/G/1 W {format_us(x.mg1()):>7} µs" if mg1 else "")
        + f"  measured W {format_us(x.mean_wait):>7} µs"
        for n, x in loads.items()
    )


def format_us(seconds: float | None) -> str:
    """A time in seconds as µs for a table ("–" for none, "∞" for unbounded)."""
    if seconds is None:
        return "–"
    return "∞" if math.isinf(seconds) else f"{seconds * 1e6:,.1f}"


#: Waits below this are drawn at it: the chart's axis is logarithmic.
FLOOR_US = 0.1


def whatif_chart(ax: Axes, rows: list[Row]) -> Axes:
    """Predicted (hatched) and measured (solid) mean wait per row, on a log
    axis in µs; a black tick marks M/G/1 on the run's own numbers."""
    xs = range(len(rows))

    def us(v: float | None) -> float:
        return FLOOR_US if v is None or v * 1e6 < FLOOR_US else min(v * 1e6, 1e7)

    ax.bar([x - 0.2 for x in xs], [us(r.predicted_wait) for r in rows], 0.4, color="white",
           edgecolor="#1f77b4", hatch="////", label="predicted")  # fmt: skip
    ax.bar([x + 0.2 for x in xs], [us(r.measured.mean_wait) for r in rows], 0.4,
           color="#ff7f0e", label="measured")  # fmt: skip
    ax.plot([x - 0.2 for x in xs], [us(r.own_wait) for r in rows], "_", color="black",
            markersize=16, markeredgewidth=2, label="M/G/1 on the run's own λ, S")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(list(xs), [f"{r.run}\n{r.lock}\n{r.model}" for r in rows], fontsize=7)
    ax.set_ylabel(f"mean wait per acquisition, µs (log; < {FLOOR_US} drawn at {FLOOR_US})")
    ax.set_title("What-if: predicted vs measured lock waits", pad=28)
    ax.legend(fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3,
              frameon=False)  # fmt: skip
    return ax
