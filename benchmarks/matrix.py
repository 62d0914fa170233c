"""The benchmark matrix: every design under every workload, repeated, with
the medians and spreads the results folder reports.

Owns: the workloads (private traffic at N = 10, 100, 1000; group fan-out,
4 groups × 50 members; latency at a light fixed rate, alone and beside a
login storm; the idle-connection ceiling), running one cell (a fresh
server, the load generator, CPU and memory of both sides over the measured
window) and repeating it.
Must not: format results (benchmarks/results.py) or parse command lines.
A design that runs its own cells (a `CellRunner`: benchmarks/cluster.py, a
cluster of several processes and the services they share) is run through
its `run_cell`, on the same CPUs, and its cells join the same repeats.

Each cell starts its own server with a fresh database, so no run inherits
another's data; the server and the load generator are pinned to different
cores where there are two (benchmarks/servers.py `cpu_plan`), and each
side's CPU is reported, so a saturated load generator is visible.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from benchmarks.servers import Design, cpu_plan
from benchmarks.storm import LoginStorm
from loadgen.run import LoadSpec, Summary, run


@dataclass(frozen=True)
class Workload:
    """One load of the matrix: its name, its kind (what it is judged by) and its spec."""

    name: str
    kind: str  # "private", "fanout", "latency", "storm" or "idle"
    spec: LoadSpec
    logins_per_s: float = 0.0  # a login storm beside the load (benchmarks/storm.py)


def workloads(quick: bool = False, duration: float = 4.0) -> list[Workload]:
    """The matrix's workloads; `quick` shrinks them to seconds in all."""
    if quick:
        d = min(duration, 1.0)
        return [
            Workload("private-10", "private", LoadSpec(clients=10, duration=d, warmup=0.2)),
            Workload(
                "fanout-2x5",
                "fanout",
                LoadSpec(
                    clients=10,
                    mix=(("group", 1.0),),
                    groups=2,
                    group_size=5,
                    window=1,
                    duration=d,
                    warmup=0.2,
                ),
            ),
            Workload(
                "latency-10@200",
                "latency",
                LoadSpec(clients=10, mode="open", rate=200, duration=d, warmup=0.2),
            ),
            Workload(
                "storm-10@200+5/s",
                "storm",
                LoadSpec(clients=10, mode="open", rate=200, duration=d, warmup=0.2),
                logins_per_s=5,
            ),
            Workload("idle-50", "idle", LoadSpec(clients=50, mode="idle", duration=0.5, warmup=0)),
        ]
    return [
        Workload("private-10", "private", LoadSpec(clients=10, duration=duration)),
        Workload("private-100", "private", LoadSpec(clients=100, duration=duration)),
        Workload("private-1000", "private", LoadSpec(clients=1000, window=4, duration=duration)),
        Workload(
            "fanout-4x50",
            "fanout",
            LoadSpec(
                clients=200,
                mix=(("group", 1.0),),
                groups=4,
                group_size=50,
                window=1,
                duration=duration,
            ),
        ),
        Workload(
            "latency-100@2000",
            "latency",
            LoadSpec(clients=100, mode="open", rate=2000, duration=duration),
        ),
        Workload(
            "storm-100@1000+10/s",
            "storm",
            LoadSpec(clients=100, mode="open", rate=1000, duration=duration),
            logins_per_s=10,
        ),
        Workload("idle-10000", "idle", LoadSpec(clients=10000, mode="idle", duration=2, warmup=0)),
    ]


@dataclass
class Cell:
    """One run of one design under one workload."""

    design: str
    workload: str
    kind: str
    clients: int
    delivered_per_s: float = 0.0
    sent_per_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    server_cpu_pct: float = 0.0  # of one core, over the measured window
    load_cpu_pct: float = 0.0
    rss_per_conn_kib: float | None = None  # idle: (RSS with clients - before) / clients
    connected: int = 0
    undelivered: int = 0
    errors: dict = field(default_factory=dict)
    behind: int = 0
    acks_per_msg: float = 0.0  # the load's /acks per message delivered
    storm: dict = field(default_factory=dict)  # a login storm's answers ("ok": n, code: n)
    # A cluster cell's other costs over the window (benchmarks/cluster.py; None elsewhere).
    nodes: int = 1  # server processes; server_cpu_pct is their sum
    pg_commits_per_s: float | None = None  # `cluster:order` acquisitions: commits numbering msgs
    pg_xacts_per_s: float | None = None  # xact_commit of the bench database (pg_stat_database)
    redis_publishes_per_s: float | None = None  # /stats cluster.published, summed over nodes
    pg_cpu_pct: float | None = None  # the bench database's backends + PostgreSQL's own processes
    redis_cpu_pct: float | None = None  # redis-server
    order_hold_us: float | None = None  # `cluster:order` held, µs per commit (every node)
    order_wait_us: float | None = None  # waited for, µs per commit
    order_contended_pct: float | None = None  # commits that had to wait for it, %

    def per_1000(self, cpu_pct: float | None) -> float | None:
        """CPU seconds per 1000 delivered messages of a part that used `cpu_pct` % of
        one core over the window (None: not measured, or nothing delivered)."""
        if cpu_pct is None or not self.delivered_per_s:
            return None
        return 10 * cpu_pct / self.delivered_per_s

    @property
    def server_cpu_s_per_1000(self) -> float | None:
        """Server CPU seconds (every node) per 1000 delivered messages."""
        return self.per_1000(self.server_cpu_pct)


class CellRunner(Protocol):
    """A design that runs its cells itself (benchmarks/cluster.py `ClusterDesign`)."""

    @property
    def name(self) -> str:
        """What the results call it."""
        ...

    def runs(self, work: Workload) -> bool:
        """Whether this design takes part in `work`."""
        ...

    def run_cell(self, work: Workload, server_cpus, load_cpus, log) -> Cell:
        """One run of this design under `work`, servers on `server_cpus`, load on `load_cpus`."""
        ...


def run_cell(design: Design, work: Workload, server_cpus=None, load_cpus=None, log=print) -> Cell:
    """Start `design` fresh, drive it with `work`, stop it; one `Cell`."""
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp:
        server = design.process(Path(tmp), server_cpus).start()
        try:
            procs = len(load_cpus) if load_cpus else 0
            spec = replace(work.spec, port=server.port, cpus=load_cpus, procs=procs)
            before_rss = server.rss_kib()
            marks: dict[str, float] = {}

            storm = LoginStorm(server.addr, work.logins_per_s, "storm")

            def on_start() -> None:
                marks["cpu0"], marks["t0"] = server.cpu_seconds(), time.monotonic()
                marks["rss"] = server.rss_kib()
                if work.logins_per_s:
                    storm.start()

            def on_end() -> None:
                marks["cpu1"], marks["t1"] = server.cpu_seconds(), time.monotonic()
                if work.logins_per_s:
                    storm.stop()

            summary = run(spec, on_start=on_start, on_end=on_end)
        finally:
            code = server.stop(timeout=60)
        if code != 0 or server.errors():
            log(f"  ! {design.name} exited {code}: {''.join(server.errors()[:5])}")
    wall = max(1e-9, marks.get("t1", 1) - marks.get("t0", 0))
    cell = summary_cell(design.name, work, summary, storm.answers)
    cell.server_cpu_pct = 100 * (marks.get("cpu1", 0) - marks.get("cpu0", 0)) / wall
    if work.kind == "idle" and summary.connected:
        cell.rss_per_conn_kib = (marks["rss"] - before_rss) / summary.connected
    return cell


def summary_cell(design: str, work: Workload, summary: Summary, storm: dict) -> Cell:
    """The `Cell` of what the load generator measured (the server's side is the caller's)."""
    cell = Cell(design, work.name, work.kind, work.spec.clients)
    cell.delivered_per_s = summary.delivered_per_s
    cell.sent_per_s = summary.sent_per_s
    lat = summary.latency_ms
    cell.p50_ms, cell.p99_ms, cell.max_ms = lat.get("p50"), lat.get("p99"), lat.get("max")
    cell.load_cpu_pct = summary.cpu_percent
    cell.connected = summary.connected
    cell.undelivered = summary.undelivered
    cell.errors = dict(summary.errors)
    cell.behind = summary.behind
    cell.acks_per_msg = summary.acks_per_message
    cell.storm = dict(storm)
    return cell


@dataclass
class Result:
    """The repeats of one (design, workload) and their median."""

    design: str
    workload: str
    kind: str
    clients: int
    runs: list[Cell]

    def median(self, attr: str) -> float | None:
        """The median of `attr` over the repeats that measured it (None: none did)."""
        values = [getattr(c, attr) for c in self.runs if getattr(c, attr) is not None]
        return statistics.median(values) if values else None

    def spread_pct(self, attr: str) -> float | None:
        """(max - min) / median of the repeats, in %."""
        values = [getattr(c, attr) for c in self.runs if getattr(c, attr) is not None]
        if len(values) < 2 or not statistics.median(values):
            return None
        return 100 * (max(values) - min(values)) / statistics.median(values)

    @property
    def headline(self) -> str:
        """The attribute a workload is judged by."""
        by_kind = {"latency": "p50_ms", "storm": "p99_ms", "idle": "rss_per_conn_kib"}
        return by_kind.get(self.kind, "delivered_per_s")

    @property
    def clean(self) -> bool:
        """No repeat had an error or an undelivered message."""
        return all(not c.errors and c.undelivered == 0 for c in self.runs)


def run_matrix(
    designs: Sequence[Design | CellRunner],
    works: list[Workload],
    repeat: int = 3,
    log: Callable[[str], None] = print,
    idle_designs: set[str] | None = None,
) -> list[Result]:
    """Every design × workload, `repeat` times each, interleaved (one round of
    every cell, then the next round) so slow drift of the machine hits every
    design alike. Idle workloads run once, for `idle_designs` only (memory
    is not noisy, and 10,000 logins take a while)."""
    server_cpus, load_cpus = cpu_plan()
    log(f"server on CPUs {server_cpus or 'any'}, load generator on CPUs {load_cpus or 'any'}")
    cells = [
        (d, w)
        for w in works
        for d in designs
        if (w.kind != "idle" or idle_designs is None or d.name in idle_designs)
        and (isinstance(d, Design) or d.runs(w))
    ]
    runs: dict[tuple[str, str], list[Cell]] = {(d.name, w.name): [] for d, w in cells}
    for r in range(repeat):
        for d, w in cells:
            if w.kind == "idle" and r > 0:
                continue
            if isinstance(d, Design):
                cell = run_cell(d, w, server_cpus, load_cpus, log)
            else:
                cell = d.run_cell(w, server_cpus, load_cpus, log)
            runs[d.name, w.name].append(cell)
            lat = f" p50 {cell.p50_ms:.2f} ms p99 {cell.p99_ms:.2f} ms" if cell.p50_ms else ""
            mem = f" {cell.rss_per_conn_kib:.1f} KiB/conn" if cell.rss_per_conn_kib else ""
            if cell.pg_commits_per_s is not None:
                mem += (
                    f" pg {cell.pg_commits_per_s:.0f} commits/s"
                    f" redis {cell.redis_publishes_per_s or 0:.0f} publishes/s"
                )
            log(
                f"[{r + 1}/{repeat}] {w.name:17} {d.name:24} {cell.delivered_per_s:10.0f}/s"
                f"{lat}{mem} server {cell.server_cpu_pct:3.0f}% load {cell.load_cpu_pct:3.0f}%"
                + (f" errors {cell.errors}" if cell.errors else "")
                + (f" UNDELIVERED {cell.undelivered}" if cell.undelivered else "")
            )
    return [Result(d.name, w.name, w.kind, w.spec.clients, runs[d.name, w.name]) for d, w in cells]
