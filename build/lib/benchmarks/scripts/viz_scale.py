"""Visualizer at scale: load and report a trace of N events (default 1M).

Writes a synthetic trace that follows TRACE.md (4 workers, each task
queued by the reactor, taking a group lock then storage, some contended),
then times `load_trace`, `write_report` and the Perfetto export, and prints
the peak memory (max RSS) of this process.

    .venv/bin/python -m benchmarks.scripts.viz_scale --events 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path


def write_trace(path: Path, events: int, workers: int = 4) -> int:
    """Write a synthetic trace of about `events` events (`workers` workers, /sendgroup
    tasks taking a group lock then storage) to `path`; the number written."""
    rng = random.Random(1)
    header = {"type": "header", "version": 1, "clock": "monotonic_ns", "start_unix": 0.0,
              "locking": "fine", "workers": workers, "sample": 1.0}  # fmt: skip
    clocks = [1000] * workers
    storage_free = 0  # when the storage lock is next free (shared: contention)
    written, task, last_queued = 1, 0, 0
    with open(path, "w") as f:
        f.write(json.dumps(header) + "\n")
        while written < events:
            task += 1
            w = task % workers
            # The reactor's events must stay in ts order too.
            queued = max(last_queued, clocks[w] - 500)
            last_queued = queued
            t = max(clocks[w], queued)
            me = f'"tid":{100 + w},"thread":"worker-{w}"'
            g = f"group:g{rng.randrange(50)}"
            lines = [f'{{"ts":{queued},"tid":1,"thread":"MainThread","ev":"task_queued",'
                     f'"task":{task},"cmd":"sendgroup","conn":{task % 100}}}']  # fmt: skip
            lines.append(f'{{"ts":{t},{me},"ev":"task_start","task":{task},"cmd":"sendgroup"}}')
            t += 200
            lines.append(f'{{"ts":{t},{me},"ev":"lock_wait","lock":"{g}","task":{task}}}')
            lines.append(f'{{"ts":{t},{me},"ev":"lock_acquired","lock":"{g}","task":{task}}}')
            t += 300
            lines.append(f'{{"ts":{t},{me},"ev":"lock_wait","lock":"storage","task":{task}}}')
            t = max(t, storage_free)
            lines.append(f'{{"ts":{t},{me},"ev":"lock_acquired","lock":"storage","task":{task}}}')
            t += rng.randrange(2000, 6000)
            storage_free = t
            lines.append(f'{{"ts":{t},{me},"ev":"lock_released","lock":"storage","task":{task}}}')
            t += 100
            lines.append(f'{{"ts":{t},{me},"ev":"lock_released","lock":"{g}","task":{task}}}')
            lines.append(f'{{"ts":{t + 50},{me},"ev":"task_end","task":{task},"cmd":"sendgroup"}}')
            clocks[w] = t + rng.randrange(100, 3000)
            f.write("\n".join(lines) + "\n")
            written += len(lines)
    return written


def main() -> None:
    """Write a trace of `--events` events, then time loading, the report and Perfetto."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000)
    args = p.parse_args()
    from visualizer import report
    from visualizer.load import load_trace
    from visualizer.perfetto import write_chrome

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        t0 = time.perf_counter()
        n = write_trace(path, args.events)
        t1 = time.perf_counter()
        trace = load_trace(path)
        t2 = time.perf_counter()
        report.write_report(trace, Path(tmp) / "report")
        t3 = time.perf_counter()
        write_chrome(trace, Path(tmp) / "big.perfetto.json")
        t4 = time.perf_counter()
        size = path.stat().st_size / 1e6
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n} events ({size:.0f} MB): generated {t1 - t0:.1f} s, loaded {t2 - t1:.1f} s, "
          f"report {t3 - t2:.1f} s, perfetto {t4 - t3:.1f} s; peak RSS {rss:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
