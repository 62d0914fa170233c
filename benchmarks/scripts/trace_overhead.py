"""Tracing overhead: the same load with and without `--trace` (sample 1.0).

Runs the quick load (benchmarks/scripts/quick.py) against a fresh server per run,
alternating untraced and traced runs, and prints each run's delivered
msgs/s and the ratio traced/untraced of the medians (target >= 0.9).

    .venv/bin/python -m benchmarks.scripts.trace_overhead --clients 100 --seconds 5 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks.scripts.quick import run, start_server


def main() -> None:
    """Alternate untraced and traced runs; print each and the ratio of the medians."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--locking", default="fine")
    args = p.parse_args()
    results: dict[str, list[float]] = {"off": [], "trace": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for mode in ("off", "trace"):
                extra = ["--trace", f"{tmp}/run{i}.jsonl"] if mode == "trace" else []
                srv = start_server(Path(tmp) / f"{mode}{i}.db", "--locking", args.locking, *extra)
                try:
                    r = run(srv.addr, args.clients, args.seconds, args.window)
                finally:
                    srv.stop()
                results[mode].append(r.delivered_per_s)
                size = Path(f"{tmp}/run{i}.jsonl").stat().st_size if extra else 0
                print(f"run {i} {mode:5} {r.delivered_per_s:9.0f} msg/s"
                      + (f"  trace {size / 1e6:.1f} MB" if size else ""))  # fmt: skip
    off, on = statistics.median(results["off"]), statistics.median(results["trace"])
    spread = max(results["trace"]) / min(results["trace"]) - 1
    print(f"median off {off:.0f} msg/s, trace {on:.0f} msg/s: ratio {on / off:.2f}"
          f" (traced runs spread {spread:.0%})")  # fmt: skip


if __name__ == "__main__":
    main()
