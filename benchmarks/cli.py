"""`chat-bench`: run the benchmark matrix and write its results folder.

Owns: the command line. Must not: measure or format (benchmarks/matrix.py,
benchmarks/results.py).

    chat-bench -o benchmarks/results/2026-11-27          # the full matrix
    chat-bench --quick -o /tmp/bench                     # seconds, for the test suite
    chat-bench --designs reactor-global,asyncio-relay --workloads private-100
    chat-bench --designs cluster-sqlite,cluster-pg1,cluster-pg2 \
        --workloads private-100,latency-100@2000 -o /tmp/cluster   # PostgreSQL + Redis
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from benchmarks import cluster, cluster_results, results
from benchmarks.matrix import CellRunner, run_matrix, workloads
from benchmarks.servers import Design, by_name, designs

QUICK_DESIGNS = ["reactor-global", "reactor-global-traced", "inline-global", "threaded-global",
                 "asyncio-relay"]  # fmt: skip
IDLE_DESIGNS = {"reactor-global", "inline-global", "threaded-global", "asyncio-relay"}


def design(name: str) -> Design | CellRunner:
    """The design called `name`: one of the matrix (benchmarks/servers.py) or a cluster
    cell (benchmarks/cluster.py, only when asked for); KeyError listing both if none."""
    found = cluster.by_name(name)
    if found is not None:
        return found
    try:
        return by_name(name)
    except KeyError as exc:
        raise KeyError(f"{exc.args[0]}; cluster: {', '.join(cluster_results.NAMES)}") from None


def main(argv: list[str] | None = None) -> int:
    """`chat-bench`: run the chosen designs under the chosen workloads and write
    the results folder; 0 when done, 2 (argparse) on bad arguments."""
    p = argparse.ArgumentParser(
        prog="chat-bench",
        description="Run designs {reactor, threaded} × {global, fine} × {tracing off, on} and "
        "an asyncio reference relay under private, fan-out, latency and idle workloads; "
        "write a results folder (README.md table, CSV, JSON, plots). The cluster cells "
        f"({', '.join(cluster_results.NAMES)}: PostgreSQL + Redis) run only when named.",
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="results folder to write")
    p.add_argument("--quick", action="store_true", help="tiny settings (under a minute)")
    p.add_argument("--repeat", type=int, default=3, help="runs per cell (median reported)")
    p.add_argument("--duration", type=float, default=4.0, help="measured seconds per run")
    p.add_argument("--designs", help="comma-separated subset of designs")
    p.add_argument("--workloads", help="comma-separated subset of workloads")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.duration <= 0:
        p.error("--repeat must be at least 1 and --duration positive")
    chosen: list[Design | CellRunner]
    try:
        chosen = [design(n) for n in args.designs.split(",")] if args.designs else []
    except KeyError as exc:
        p.error(str(exc.args[0]))
    if not chosen:
        chosen = [by_name(n) for n in QUICK_DESIGNS] if args.quick else list(designs())
    if any(d.name in cluster_results.NAMES for d in chosen):
        down = cluster.services_down()
        if down:
            p.error(f"the cluster cells need PostgreSQL and Redis: {down}")
    works = workloads(args.quick, args.duration)
    if args.workloads:
        names = args.workloads.split(",")
        unknown = set(names) - {w.name for w in works}
        if unknown:
            p.error(f"unknown workloads {sorted(unknown)}; known: {[w.name for w in works]}")
        works = [w for w in works if w.name in names]
    repeat = 1 if args.quick else args.repeat
    found = run_matrix(chosen, works, repeat, idle_designs=None if args.quick else IDLE_DESIGNS)
    command = "chat-bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    files = results.write(found, args.out, command)
    section = cluster_results.section(found)
    if section:
        print(section)
    print(f"wrote {len(files)} files to {args.out}/ (start with README.md)")
    for t in results.targets(found):
        if t.value is not None:
            print(f"  {t.what}: {t.value:.2f} (goal {t.goal}: {'met' if t.met else 'MISSED'})")
    bad = [f"{r.design}/{r.workload}" for r in found if not r.clean]
    if bad:
        print(f"errors or undelivered messages in: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
