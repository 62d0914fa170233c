"""The cluster cells' part of the results: speed and cost per message of
each part, with ratios against the `cluster-sqlite` baseline of the same run.

Owns: the cluster section of the results README (also printed by
`chat-bench`): two tables per workload, the cluster designs down; messages/s,
latency p50 / p99, CPU seconds per 1000 delivered messages of the nodes, of
PostgreSQL, of Redis and of all three (ratios of medians of this run over
the baseline's); then PostgreSQL commits/s, the order lock's hold and wait
per commit, transactions/s and Redis publishes/s.
Must not: run anything (benchmarks/cluster.py does) or format the other
designs' tables (benchmarks/results.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from benchmarks.cluster import BASELINE, designs
from benchmarks.matrix import Cell, Result

NAMES = [d.name for d in designs()]

NOTES = """\
A message is a delivered message (for a private workload, one per send).
CPU s/1000 msgs: CPU seconds a part used over the measured window per 1000
messages delivered in it. "server" is every node, summed (all pinned to the
server core, the load generator to the other); PG is the bench database's
backends with PostgreSQL's own processes (postmaster, walwriter,
checkpointer, ...), Redis is redis-server: services we cannot pin, so they
run on either core (the load generator's too) and may carry others' work.
PG commits: `cluster:order` acquisitions, the commits that numbered
messages (/stats; one PostgreSQL advisory lock for every node, its hold and
wait per commit summed over them). PG xacts: every transaction of the bench
database (pg_stat_database; a busy backend flushes it up to 1 s late).
Redis publishes: `cluster.published`, summed over the nodes. (×): this
run's median over the `cluster-sqlite` baseline's in the same run; above 1
is more (slower, for latency; dearer, for CPU)."""


def _med(r: Result | None, value: Callable[[Cell], float | None]) -> float | None:
    if r is None:
        return None
    values = [v for c in r.runs if (v := value(c)) is not None]
    return statistics.median(values) if values else None


def _all_cpu(c: Cell) -> float | None:
    return c.per_1000(c.server_cpu_pct + (c.pg_cpu_pct or 0.0) + (c.redis_cpu_pct or 0.0))


def _per_msg(attr: str) -> Callable[[Cell], float | None]:
    def per(c: Cell) -> float | None:
        rate = getattr(c, attr)
        return rate / c.delivered_per_s if rate is not None and c.delivered_per_s else None

    return per


Column = tuple[str, Callable[[Cell], float | None], str, bool]

# Each table: (heading, value of a run, format, ratio against the baseline?).
SPEED: list[Column] = [
    ("msgs/s", lambda c: c.delivered_per_s, "{:,.0f}", True),
    ("p50 ms", lambda c: c.p50_ms, "{:.2f}", True),
    ("p99 ms", lambda c: c.p99_ms, "{:.2f}", True),
    ("server CPU s/1000 msgs", lambda c: c.server_cpu_s_per_1000, "{:.3f}", True),
    ("PG CPU s/1000", lambda c: c.per_1000(c.pg_cpu_pct), "{:.3f}", False),
    ("Redis CPU s/1000", lambda c: c.per_1000(c.redis_cpu_pct), "{:.3f}", False),
    ("all CPU s/1000", _all_cpu, "{:.3f}", True),
    ("server CPU %", lambda c: c.server_cpu_pct, "{:.0f}", False),
    ("load CPU %", lambda c: c.load_cpu_pct, "{:.0f}", False),
]
STORE: list[Column] = [
    ("PG commits/s", lambda c: c.pg_commits_per_s, "{:,.0f}", False),
    ("msgs/commit", lambda c: _per(c.delivered_per_s, c.pg_commits_per_s), "{:.1f}", False),
    ("order lock hold µs/commit", lambda c: c.order_hold_us, "{:,.0f}", False),
    ("wait µs/commit", lambda c: c.order_wait_us, "{:,.0f}", False),
    ("contended %", lambda c: c.order_contended_pct, "{:.0f}", False),
    ("PG xacts/s", lambda c: c.pg_xacts_per_s, "{:,.0f}", False),
    ("Redis publishes/s", lambda c: c.redis_publishes_per_s, "{:,.0f}", False),
    ("msgs/publish", lambda c: _per(c.delivered_per_s, c.redis_publishes_per_s), "{:.1f}", False),
    ("PG CPU %", lambda c: c.pg_cpu_pct, "{:.0f}", False),
    ("Redis CPU %", lambda c: c.redis_cpu_pct, "{:.0f}", False),
]


def _per(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _find(results: list[Result], design: str, workload: str) -> Result | None:
    return next((r for r in results if (r.design, r.workload) == (design, workload)), None)


def ratio(
    results: list[Result], design: str, workload: str, value: Callable[[Cell], float | None]
) -> float | None:
    """The median of `value` for `design` over the baseline's, both of `workload` in this run."""
    mine = _med(_find(results, design, workload), value)
    return _per(mine, _med(_find(results, BASELINE, workload), value))


def table(results: list[Result], workload: str, columns: list[Column]) -> str:
    """One markdown table of `workload`: cluster designs down, `columns` across."""
    rows = [r for r in results if r.workload == workload and r.design in NAMES]
    rows.sort(key=lambda r: NAMES.index(r.design))
    lines = [
        "| design | nodes | " + " | ".join(h for h, *_ in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for r in rows:
        cells = []
        for _, value, fmt, versus in columns:
            v = _med(r, value)
            x = ratio(results, r.design, workload, value) if versus else None
            cells.append(("–" if v is None else fmt.format(v)) + (f" ({x:.2f}×)" if x else ""))
        flag = "" if r.clean else " ⚠"
        lines.append(f"| {r.design}{flag} | {r.runs[0].nodes} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(results: list[Result]) -> str:
    """The cluster section (markdown), or "" when this run has no cluster cell."""
    works = list(dict.fromkeys(r.workload for r in results if r.design in NAMES))
    if not works:
        return ""
    out = [f"## Cluster: one and two nodes on PostgreSQL + Redis against {BASELINE}", ""]
    out += [NOTES, ""]
    if not any(r.design == BASELINE for r in results):
        out += [f"(no {BASELINE} cell in this run: no ratios)", ""]
    for w in works:
        runs = max(len(r.runs) for r in results if r.workload == w and r.design in NAMES)
        out += [f"**{w}**: speed and CPU per message (medians of {runs} run(s))", ""]
        out += [table(results, w, SPEED), ""]
        out += [f"**{w}**: PostgreSQL and Redis", ""]
        out += [table(results, w, STORE), ""]
    return "\n".join(out).rstrip() + "\n"
