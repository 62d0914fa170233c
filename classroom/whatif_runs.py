"""The what-if's traced runs and its scenario (`chat-demo what-if`,
notebook 06): measure `--locking global`, predict `fine` and more workers
from that one trace with classroom/whatif.py's models, run both, and
compare predicted with measured waits.

Owns: `whatif_spec` (the load), `traced_load` (one traced server run and
its measured window on the trace's clock), `run_whatif` (the three runs
and the comparison rows) and `scenario`, with its three lines
(`summary_lines`) and what it writes (whatif.txt, whatif.png,
whatif.json). Must not: model or measure locks itself
(classroom/whatif.py does), start a server other than through
classroom/live.py, or read traces other than with visualizer/load.py.

    runs, rows = run_whatif(folder, whatif_spec())   # three traced runs
    print(format_rows(rows))                        # classroom/whatif.py
"""

from __future__ import annotations

import json
import textwrap
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from classroom.charts import save_chart
from classroom.live import LiveServer, fresh_paths, stop_cleanly
from classroom.result import RunResult
from classroom.whatif import (
    LockLoad,
    Row,
    check_holds,
    format_rows,
    format_us,
    handoff_gaps,
    measure,
    mg1_gap,
    split_global,
    what_if_rows,
    whatif_chart,
)
from loadgen.run import LoadSpec, Summary, run
from visualizer.load import load_trace


@dataclass(frozen=True)
class TracedLoad:
    """One traced server run under load."""

    name: str
    trace: Path
    window: tuple[int, int]  # the load's measured window, ns since the trace start
    load: Summary


def whatif_spec(
    clients: int = 16, seconds: float = 2.0, rate: float | None = None, groups: int = 2,
    group_size: int = 4,
) -> LoadSpec:  # fmt: skip
    """The what-if's load: `clients` users, 80 % private and 20 % group
    messages (`groups` groups of `group_size`), closed loop with 8 sends in
    flight each, or open loop at `rate` sends/s when given."""
    mode = {"mode": "open", "rate": rate} if rate else {"mode": "closed"}
    return LoadSpec(clients=clients, mix=(("private", 0.8), ("group", 0.2)), groups=groups,
                    group_size=group_size, duration=seconds, warmup=0.3, **mode)  # fmt: skip


def traced_load(folder: str | Path, name: str, *server_args: str, spec: LoadSpec) -> TracedLoad:
    """Start a traced server with `server_args`, run `spec` against it, stop
    it. Writes `<name>.jsonl` and `<name>.db` into `folder`. The window is
    the load's measured one (its on_start/on_end, wall clock) placed on the
    trace's clock through the header's `start_unix`. Raises
    `loadgen.run.LoadError` if the load cannot run, RuntimeError if the
    server does not stop cleanly."""
    db, trace = fresh_paths(Path(folder), name)
    marks: dict[str, float] = {}
    srv = LiveServer(db, *server_args, trace=trace).start()
    try:
        summary = run(replace(spec, port=srv.port),
                      on_start=lambda: marks.setdefault("t0", time.time()),
                      on_end=lambda: marks.setdefault("t1", time.time()))  # fmt: skip
    except BaseException:
        srv.stop()  # keep the first error, not the exit code it causes
        raise
    stop_cleanly(srv)
    with open(trace, encoding="utf-8") as f:
        start = json.loads(f.readline())["start_unix"]
    window = (int((marks["t0"] - start) * 1e9), int((marks["t1"] - start) * 1e9))
    return TracedLoad(name, trace, window, summary)


def run_whatif(
    folder: str | Path, spec: LoadSpec, workers: int = 4, more_workers: int = 8
) -> tuple[dict[str, TracedLoad], list[Row]]:
    """Measure `--locking global` with `workers` workers, predict `fine` and
    `more_workers` workers from that trace, run both (each a traced run of
    `spec` in `folder`), and return the three runs by name and the rows."""
    base = traced_load(folder, f"global-{workers}", "--locking", "global", "--workers",
                       str(workers), spec=spec)  # fmt: skip
    trace = load_trace(base.trace)
    predicted, _ = split_global(trace, base.window, spec.groups)
    fine = traced_load(folder, f"fine-{workers}", "--locking", "fine", "--workers", str(workers),
                       spec=spec)  # fmt: skip
    more = traced_load(folder, f"global-{more_workers}", "--locking", "global", "--workers",
                       str(more_workers), spec=spec)  # fmt: skip

    def measured(r: TracedLoad) -> dict[str, LockLoad]:
        return measure(load_trace(r.trace), r.window)

    rows = what_if_rows(measure(trace, base.window)["global"], workers, predicted,
                        measured(fine), measured(more), more_workers)  # fmt: skip
    return {r.name: r for r in (base, fine, more)}, rows


def summary_lines(rows: list[Row], workers: int) -> tuple[str, str, str]:
    """Three lines for a person from `what_if_rows`' rows (the base run had
    `workers` workers): the base lock, M/G/1's prediction for it and why it
    is off (`mg1_gap`), the fine locks, the run with more workers."""
    us = format_us
    base, fine = rows[0], [r for r in rows if r.run.startswith("fine")]
    more = [r for r in rows if r.model.startswith("MVA") and r.run != base.run]
    last = "no run with more workers"
    if more:
        m = more[0]
        last = (
            f"{m.run}: MVA predicts {us(m.predicted_wait)} µs at {m.predicted_rate:,.0f} acq/s;"
            f" measured {us(m.measured.mean_wait)} µs at {m.measured.rate:,.0f}/s"
        )
    return (
        f"{base.run}: λ {base.measured.rate:,.0f}/s, ρ {base.measured.rho:.2f}; M/G/1 predicts"
        f" {us(base.predicted_wait)} µs mean wait, measured {us(base.measured.mean_wait)} µs. "
        + mg1_gap(base, workers),
        "fine, predicted from the global trace vs measured (µs): "
        + ", ".join(f"{r.lock} {us(r.predicted_wait)} vs {us(r.measured.mean_wait)}" for r in fine),
        last,
    )


def scenario(out: Path, quick: bool = False) -> RunResult:
    """Model the `global` lock from one trace, predict `fine` and 8 workers,
    run both, compare predicted with measured waits."""
    spec = whatif_spec(clients=8, seconds=1.0) if quick else whatif_spec(clients=32, seconds=3)
    workers = 4
    runs, rows = run_whatif(out, spec, workers=workers, more_workers=2 * workers)
    gap, table = mg1_gap(rows[0], workers), format_rows(rows)
    (out / "whatif.txt").write_text(f"{table}\n\n{textwrap.fill(f'{rows[0].run}: {gap}', 100)}\n")
    save_chart(out / "whatif.png", whatif_chart, rows, size=(13, 5))
    summary = {
        "rows": [asdict(r) for r in rows],
        "mg1_gap": gap,
        "holds_not_in_table": check_holds(load_trace(runs[f"fine-{workers}"].trace)),
        "delivered_per_s": {n: t.load.delivered_per_s for n, t in runs.items()},
        "windows_ns": {n: t.window for n, t in runs.items()},
        "handoff_gaps": {n: handoff_gaps(load_trace(t.trace), t.window) for n, t in runs.items()},
    }
    (out / "whatif.json").write_text(json.dumps(summary, indent=1, default=str))
    picture = ("whatif.png", "Predicted (hatched) against measured (orange) mean wait per run,"
               " lock and model, log axis; the black tick is M/G/1 fed with the run's own λ and"
               " holds.")  # fmt: skip
    lines, tables = summary_lines(rows, workers), (("Predicted vs measured", table),)
    trace = runs[f"global-{workers}"].trace
    return RunResult("what-if", out, trace, None, summary, lines, (picture,), tables)
