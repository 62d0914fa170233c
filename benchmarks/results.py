"""The benchmark's results folder: tables, CSV, plots, and the targets.

Owns: turning `Result`s into files a person reads (README.md with the
tables and the ratio of each target, summary.csv with medians and spreads,
runs.csv with every run, results.json, and PNG plots) and the targets: what
the reactor must reach against the other designs and in absolute terms
(throughput ratios, memory per idle connection, latency, the cost of
tracing), each with how it is computed. The cluster cells' section is
benchmarks/cluster_results.py's, put in README.md here. Must not: run anything.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import cluster_results
from benchmarks.matrix import Result

REFERENCE = "asyncio-relay"


@dataclass(frozen=True)
class Target:
    """One goal the reactor is held to, and what this run measured of it."""

    what: str
    value: float | None  # measured ratio or figure; None if a cell is missing
    goal: str  # e.g. ">= 0.5"

    @property
    def met(self) -> bool | None:
        """Whether `value` reaches `goal`; None when it was not measured."""
        if self.value is None:
            return None
        op, bound = self.goal.split()
        return self.value >= float(bound) if op == ">=" else self.value <= float(bound)


def _median(results: list[Result], design: str, workload: str, attr: str | None = None):
    for r in results:
        if r.design == design and r.workload == workload:
            return r.median(attr or r.headline)
    return None


def _ratio(a, b):
    return a / b if a is not None and b else None


def targets(results: list[Result]) -> list[Target]:
    """Every target, as measured in this run (ratios: of medians of the same run).

    The reactor + pool (reactor-global) against the same server running
    every command in its loop (inline-global: N=100, N=1000, fan-out) and
    against the asyncio relay (N=100, N=1000, fan-out, light-load latency);
    chat p99 beside a login storm, pool over inline; throughput with
    tracing on over off; KiB per idle connection. A target whose cells this
    run lacks has value None.
    """
    m = lambda d, w, a=None: _median(results, d, w, a)  # noqa: E731
    of = lambda kind: next((r.workload for r in results if r.kind == kind), "")  # noqa: E731
    idle, fan, lat, storm = of("idle"), of("fanout"), of("latency"), of("storm")
    pool, inline = "reactor-global", "inline-global"
    out = [
        Target(
            f"{w}: {pool} / {inline}",
            _ratio(m(pool, w), m(inline, w)),
            ">= 0.9",
        )
        for w in ("private-100", "private-1000", fan)
    ]
    out += [
        Target(
            "private N=100: reactor-global / asyncio relay",
            _ratio(m(pool, "private-100"), m(REFERENCE, "private-100")),
            ">= 0.5",
        ),
        Target(
            "private N=1000: reactor-global / asyncio relay",
            _ratio(m(pool, "private-1000"), m(REFERENCE, "private-1000")),
            ">= 0.75",
        ),
        Target(
            f"fan-out deliveries/s ({fan}): reactor-global / asyncio relay",
            _ratio(m(pool, fan), m(REFERENCE, fan)),
            ">= 3",
        ),
        Target(
            f"latency ({lat}): reactor-global p50 / asyncio relay p50",
            _ratio(m(pool, lat, "p50_ms"), m(REFERENCE, lat, "p50_ms")),
            "<= 2",
        ),
        Target(
            f"latency ({lat}): reactor-global p99 / asyncio relay p99",
            _ratio(m(pool, lat, "p99_ms"), m(REFERENCE, lat, "p99_ms")),
            "<= 2",
        ),
        Target(
            f"login storm ({storm}): chat p99, reactor-global / inline-global",
            _ratio(m(pool, storm, "p99_ms"), m(inline, storm, "p99_ms")),
            "<= 0.2",
        ),
        Target(
            "tracing on / off, private N=100, reactor-global",
            _ratio(m("reactor-global-traced", "private-100"), m(pool, "private-100")),
            ">= 0.9",
        ),
        Target(f"idle ({idle}): reactor KiB per connection", m(pool, idle), "<= 3"),
    ]
    return out


def machine() -> dict:
    """What the results ran on: date, CPU model, cores, Python, kernel."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "–"
    if unit == "ms":
        return f"{value:.2f}"
    if unit == "KiB":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def table(results: list[Result], kind: str) -> str:
    """One markdown table of a workload kind: designs down, workloads across."""
    rows = [r for r in results if r.kind == kind]
    works = list(dict.fromkeys(r.workload for r in rows))
    designs = list(dict.fromkeys(r.design for r in rows))
    head = {
        "private": "delivered msgs/s (median; ± spread %; server CPU % / load CPU %)",
        "fanout": "deliveries/s (median; ± spread %; server CPU % / load CPU %)",
        "latency": "send→delivery p50 / p99 ms (median; server CPU % / load CPU %)",
        "storm": "chat send→delivery p50 / p99 ms beside the login storm (median;"
        " registrations answered ok)",
        "idle": "RSS KiB per idle connection (connected)",
    }[kind]
    lines = [f"**{head}**", "", "| design | " + " | ".join(works) + " |"]
    lines.append("|---|" + "---|" * len(works))
    for d in designs:
        cells = []
        for w in works:
            r = next((x for x in rows if x.design == d and x.workload == w), None)
            if r is None:
                cells.append("")
                continue
            cpu = f"{r.median('server_cpu_pct'):.0f}% / {r.median('load_cpu_pct'):.0f}%"
            flag = "" if r.clean else " ⚠"
            if kind == "latency":
                text = f"{_fmt(r.median('p50_ms'), 'ms')} / {_fmt(r.median('p99_ms'), 'ms')}; {cpu}"
            elif kind == "storm":
                ok = min(c.storm.get("ok", 0) for c in r.runs)
                text = f"{_fmt(r.median('p50_ms'), 'ms')} / {_fmt(r.median('p99_ms'), 'ms')}; {ok}"
            elif kind == "idle":
                text = f"{_fmt(r.median('rss_per_conn_kib'), 'KiB')} ({r.median('connected'):.0f})"
            else:
                spread = r.spread_pct("delivered_per_s")
                sp = f" ±{spread:.0f}%" if spread is not None else ""
                acks = f"; {r.median('acks_per_msg'):.2f} acks/msg" if kind == "private" else ""
                text = f"{_fmt(r.median('delivered_per_s'))}{sp}; {cpu}{acks}"
            cells.append(text + flag)
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(results: list[Result], out: Path, command: str, notes: str = "") -> list[Path]:
    """Write the results folder; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    written = []
    runs = out / "runs.csv"
    fields = [f.name for f in dataclasses.fields(results[0].runs[0])] if results else []
    with runs.open("w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        for r in results:
            for c in r.runs:
                row = dataclasses.asdict(c)
                row["errors"] = json.dumps(row["errors"])
                row["storm"] = json.dumps(row["storm"])
                w.writerow(row)
    written.append(runs)
    summary = out / "summary.csv"
    attrs = ["delivered_per_s", "p50_ms", "p99_ms", "server_cpu_pct", "load_cpu_pct",
             "rss_per_conn_kib", "acks_per_msg", "server_cpu_s_per_1000", "pg_cpu_pct",
             "redis_cpu_pct", "pg_commits_per_s", "pg_xacts_per_s",
             "redis_publishes_per_s"]  # fmt: skip
    with summary.open("w", newline="") as f:
        cells = csv.writer(f)
        cells.writerow(["design", "workload", "clients", "repeats", *attrs, "spread_pct", "clean"])
        for r in results:
            spread = r.spread_pct(r.headline)
            medians = [_round(r.median(a)) for a in attrs]
            cells.writerow(
                [r.design, r.workload, r.clients, len(r.runs), *medians, _round(spread), r.clean]
            )
    written.append(summary)
    goals = targets(results)
    (out / "results.json").write_text(
        json.dumps(
            {
                "machine": info,
                "command": command,
                "targets": [dict(dataclasses.asdict(t), met=t.met) for t in goals],
                "results": [
                    {
                        "design": r.design,
                        "workload": r.workload,
                        "kind": r.kind,
                        "runs": [dataclasses.asdict(c) for c in r.runs],
                    }
                    for r in results
                ],
            },
            indent=1,
        )
    )
    written.append(out / "results.json")
    written += plots(results, out)
    md = [
        f"# Benchmark results, {info['date']}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
        f"Linux {info['kernel']}. Command: `{command}`.",
        "",
        "Each cell: a fresh server (fresh database), the load generator on the other core;",
        "the median of the repeats, ± their spread ((max−min)/median). Server CPU % and",
        "load CPU % are of one core over the measured window: a load generator near 100 %",
        "is the ceiling, not the server. ⚠ marks a cell with errors or undelivered messages.",
        "",
        "## Targets (ratios measured in this run)",
        "",
        "| target | measured | goal | met |",
        "|---|---|---|---|",
    ]
    for t in goals:
        met = {True: "yes", False: "**no**", None: "–"}[t.met]
        value = "–" if t.value is None else f"{t.value:.2f}"
        md.append(f"| {t.what} | {value} | {t.goal} | {met} |")
    for kind in ("private", "fanout", "latency", "storm", "idle"):
        if any(r.kind == kind for r in results):
            md += ["", table(results, kind)]
    cluster = cluster_results.section(results)
    if cluster:
        md += ["", cluster]
    md += ["", *[f"![{p.stem}]({p.name})" for p in written if p.suffix == ".png"]]
    if notes:
        md += ["", notes]
    readme = out / "README.md"
    readme.write_text("\n".join(md) + "\n")
    written.append(readme)
    return written


def _round(v):
    return None if v is None else round(v, 3)


def plots(results: list[Result], out: Path) -> list[Path]:
    """Bar charts: throughput per design and workload, latency, memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for kind, attr, label, log_scale in (
        ("private", "delivered_per_s", "delivered msgs/s", True),
        ("fanout", "delivered_per_s", "deliveries/s", False),
        ("latency", "p50_ms", "p50 latency, ms (bar) and p99 (tick)", False),
        ("storm", "p50_ms", "chat p50 beside a login storm, ms (bar) and p99 (tick)", True),
        ("idle", "rss_per_conn_kib", "RSS KiB per idle connection", False),
    ):
        rows = [r for r in results if r.kind == kind]
        if not rows:
            continue
        works = list(dict.fromkeys(r.workload for r in rows))
        designs = list(dict.fromkeys(r.design for r in rows))
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(designs) * len(works) / 2), 4))
        width = 0.8 / len(designs)
        for i, d in enumerate(designs):
            xs: list[float] = []
            ys: list[float] = []
            p99: list[float] = []
            for j, w in enumerate(works):
                r = next((x for x in rows if x.design == d and x.workload == w), None)
                value = r.median(attr) if r is not None else None
                if r is not None and value is not None:
                    xs.append(j + i * width)
                    ys.append(value)
                    tail = r.median("p99_ms")
                    p99.append(math.nan if tail is None else tail)
            ax.bar(xs, ys, width, label=d)
            if kind in ("latency", "storm"):
                ax.plot(xs, p99, "_", color="black", markersize=12)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(works))], works)
        ax.set_ylabel(label)
        if log_scale:
            ax.set_yscale("log")
        ax.legend(fontsize=7, ncols=2)
        ax.set_title(f"{kind}: {label}")
        fig.tight_layout()
        path = out / f"{kind}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
