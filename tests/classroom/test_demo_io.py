"""The I/O demos (classroom/demos_io.py, classroom/whatif.py): each scenario end
to end through `chat-demo --quick` on real servers, with the page of its
folder, and the readings and the what-if's queueing models on small inputs
with hand-computed answers."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest
from matplotlib.figure import Figure

from classroom import demos_io, whatif, whatif_runs
from tests.classroom.pages import assert_index_shows_every_picture
from tests.support.chatclient import run_demo
from tests.support.tracegen import TraceBuilder
from visualizer.load import load_trace

US = 1_000  # ns


# --- the scenarios, end to end -----------------------------------------------------------


def test_demo_slow_consumer_is_dropped_and_loses_nothing(tmp_path, capsys):
    summary, lines = run_demo("slow-consumer", tmp_path, capsys)
    for name in ("slow-consumer.jsonl", "growth.png", "backlog.png", "ids.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert summary["bye"] == "slow_consumer"
    assert summary["counters"]["slow_consumers"] == 1
    assert summary["queued_at_drop"] > summary["max_outbuf"] == 65536
    assert summary["lost"] == 0 and summary["in_order"]
    # json mode and no /ack: the replay brings every message, even those read
    assert summary["unread"] == summary["replayed"] == summary["sent"]
    assert summary["sent"] > summary["sent_before_drop"] > summary["read_before_drop"] > 0
    assert summary["drop_ms"] > 0 and summary["peak_backlog"] > summary["max_outbuf"] // 2
    assert "bye slow_consumer" in lines[0] and "lost 0" in lines[2]
    page = assert_index_shows_every_picture(tmp_path, lines)
    assert {"growth.png", "backlog.png", "ids.png"} <= set(page.images)
    assert "summary.json" in page.links and "slow-consumer.jsonl" in page.links


def test_demo_threads_vs_reactor_measures_every_io_model(tmp_path, capsys):
    summary, lines = run_demo("threads-vs-reactor", tmp_path, capsys)
    for name in ("io_models.png", "README.md", "idle.png", "private.png", "latency.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    cells = summary["cells"]
    assert {c["design"] for c in cells} == set(demos_io.IO_DESIGNS)
    assert {c["kind"] for c in cells} == {"idle", "private", "latency"}
    for c in cells:
        assert not c["errors"] and c["undelivered"] == 0, c
        if c["kind"] == "idle":
            assert c["connected"] == c["clients"] and c["rss_per_conn_kib"] > 0
        else:
            assert c["delivered_per_s"] > 0 and c["p50_ms"] > 0
    assert lines[0].startswith("idle-50: RSS KiB per idle connection: reactor")
    page = assert_index_shows_every_picture(tmp_path, lines)
    assert page.images[0] == "io_models.png" and "cells.json" in page.links


def test_demo_what_if_predicts_and_runs_the_alternatives(tmp_path, capsys):
    summary, lines = run_demo("what-if", tmp_path, capsys)
    for name in ("global-4.jsonl", "fine-4.jsonl", "global-8.jsonl", "whatif.png", "whatif.txt"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = summary["rows"]
    assert [r["run"] for r in rows][:2] == ["global, 4 workers"] * 2
    assert {r["run"] for r in rows} == {"global, 4 workers", "fine, 4 workers", "global, 8 workers"}
    assert {"storage", "delivery"} <= {r["lock"] for r in rows if r["run"].startswith("fine")}
    for r in rows:
        assert r["measured"]["acquisitions"] > 0 and r["measured"]["mean_wait"] >= 0
        assert 0 < r["measured"]["mean_hold"] < 0.1
    assert summary["holds_not_in_table"] == {}  # HOLDS agrees with what `fine` really took
    assert all(v > 0 for v in summary["delivered_per_s"].values())
    assert lines[0].startswith("global, 4 workers: λ") and lines[1].startswith("fine")
    gap = summary["mg1_gap"]  # why M/G/1 missed the run it was fed from, in the first line
    assert gap.startswith("M/G/1 ") and lines[0].endswith(". " + gap)
    assert " ".join(gap.split()) in " ".join((tmp_path / "whatif.txt").read_text().split())
    assert assert_index_shows_every_picture(tmp_path, lines).images == ["whatif.png"]


# --- the slow consumer's buffer, read from a trace ------------------------------------------


def test_buffer_growth_follows_bytes_in_and_out_until_the_drop(tmp_path):
    b = TraceBuilder(locking="global", workers=1)
    b.task(1, "login", "worker-0", queued=0, start=1, end=2, conn=1)  # the reader
    b.event(3, "MainThread", "io_write", conn=1, bytes=100)  # its login reply
    for k, t in enumerate((10, 20, 30)):  # three sends to it, each with its commit
        b.task(2 + k, "send", "worker-0", queued=t - 1, start=t, end=t + 1, conn=2)
        b.task(5 + k, "commit", "worker-0", queued=t + 1, start=t + 1, end=t + 2, conn=2)
    b.event(13, "MainThread", "io_write", conn=1, bytes=1000)  # message 1 goes out
    b.event(14, "MainThread", "io_write", conn=2, bytes=50)  # another connection
    run = demos_io.SlowConsumerRun(
        b.write(tmp_path / "t.jsonl"), 1200, (1, 2, 3), 3, (1,), "slow_consumer", 3, (1, 2, 3),
        {1: 1000, 2: 1000, 3: 1000}, "", 1500, {},
    )  # fmt: skip
    g = demos_io.buffer_growth(run)
    assert g.times_ms == (0, 1e-6, 1e-5, 2e-5)  # ms since message 1 was committed (ns 12)
    assert g.addressed == (1100, 1100, 2100, 3100)
    assert g.written == (100, 1100, 1100, 1100)
    # 1500 bytes queued at the drop: message 2 fits, message 3 does not
    assert g.drop_ms == 1e-5
    assert g.backlog == [1000, 0, 1000, None]
    fig = Figure()
    assert demos_io.growth_chart(fig.add_subplot(), g).get_lines()
    assert demos_io.backlog_chart(fig.add_subplot(), g).get_lines()
    assert not run.lost and run.in_order


# --- the what-if's models ------------------------------------------------------------------


def test_mg1_with_deterministic_holds_matches_the_formula():
    # λ = 100/s, S = 5 ms always: ρ = 0.5, W = λ·S² / (2(1 − ρ)) = 2.5 ms
    assert whatif.mg1_wait(100, 0.005, 0.005**2) == pytest.approx(0.0025)
    # exponential holds (E[S²] = 2 S²) give M/M/1: W = ρ/(1 − ρ) · S = 5 ms
    assert whatif.mg1_wait(100, 0.005, 2 * 0.005**2) == pytest.approx(0.005)
    assert whatif.mg1_wait(0, 0.005, 0.005**2) == 0
    assert whatif.mg1_wait(200, 0.005, 0.005**2) == math.inf  # ρ = 1
    with pytest.raises(ValueError, match="must be 0 or more"):
        whatif.mg1_wait(-1, 0.005, 0.0)


def test_mva_matches_hand_computed_steps_and_its_bounds():
    assert whatif.mva(1, 1.0, 1.0) == (0.0, 0.5)  # alone: never waits, one cycle per 2 s
    # k=1: R=1, X=1/2, Q=1/2; k=2: R=1.5, X=2/2.5=0.8 -> W = 0.5
    wait, rate = whatif.mva(2, 1.0, 1.0)
    assert wait == pytest.approx(0.5) and rate == pytest.approx(0.8)
    # many workers: the lock saturates (X -> 1/S) and Little's law gives W ~ n·S − Z − S
    wait, rate = whatif.mva(50, 1.0, 1.0)
    assert rate == pytest.approx(1.0, rel=1e-6) and wait == pytest.approx(48, rel=1e-3)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        whatif.mva(0, 1.0, 1.0)


def global_trace(tmp_path):
    """One second under `global`: /send holds it 4 µs (free), its commit waits
    4 µs (the last 1 µs with the lock free) then holds 2 µs, a /sendgroup
    holds it 6 µs; one hold after the window."""
    b = TraceBuilder(locking="global", workers=2)
    b.task(1, "send", "worker-0", queued=0, start=0, end=5 * US)
    b.lock("worker-0", "global", task=1, wait=0, acquired=0, released=4 * US)
    b.task(2, "commit", "worker-1", queued=0, start=US, end=8 * US)
    b.lock("worker-1", "global", task=2, wait=US, acquired=5 * US, released=7 * US)
    b.task(3, "sendgroup", "worker-0", queued=0, start=10 * US, end=20 * US)
    b.lock("worker-0", "global", task=3, wait=10 * US, acquired=10 * US, released=16 * US)
    late = 2 * 10**9
    b.task(4, "send", "worker-0", queued=0, start=late, end=late + US)
    b.lock("worker-0", "global", task=4, wait=late, acquired=late, released=late + US)
    return load_trace(b.write(tmp_path / "global.jsonl"))


def test_measure_gives_rate_hold_moments_and_mean_wait_in_the_window(tmp_path):
    trace = global_trace(tmp_path)
    g = whatif.measure(trace, (0, 10**9))["global"]
    assert g.acquisitions == 3 and g.rate == 3
    assert g.mean_hold == pytest.approx(4e-6)  # (4 + 2 + 6) / 3 µs
    assert g.hold_m2 == pytest.approx((16 + 4 + 36) / 3 * 1e-12)
    assert g.mean_wait == pytest.approx(4e-6 / 3)  # (0 + 4 + 0) / 3 µs
    assert g.rho == pytest.approx(12e-6)
    # 2 workers at 3 acquisitions/s: Z = 2/3 − W − S
    assert whatif.think_time(g, 2) == pytest.approx(2 / 3 - 4e-6 / 3 - 4e-6)
    per_cmd = whatif.measure(trace, (0, 10**9), by="cmd")
    assert list(per_cmd) == ["commit", "send", "sendgroup"]  # one each: by name
    assert per_cmd["commit"].mean_wait == pytest.approx(4e-6)
    # the commit's wait ended 1 µs after the send let the lock go
    assert whatif.handoff_gaps(trace, (0, 10**9)) == {"global": (1, pytest.approx(1e-6))}


def test_split_global_deals_each_hold_to_the_fine_locks_its_command_takes(tmp_path):
    loads, unknown = whatif.split_global(global_trace(tmp_path), (0, 10**9), groups=2)
    assert unknown == {}
    assert sorted(loads) == ["delivery", "group:*", "sessions", "storage"]
    assert loads["storage"].acquisitions == 3  # every block touches storage
    assert loads["storage"].mean_hold == pytest.approx(4e-6)
    assert loads["delivery"].acquisitions == 1
    assert loads["delivery"].mean_hold == pytest.approx(2e-6)
    assert loads["group:*"].acquisitions == 0.5  # one /sendgroup over two group locks
    assert loads["group:*"].mean_hold == pytest.approx(6e-6)
    assert all(load.mean_wait is None for load in loads.values())


def test_what_if_rows_table_and_chart(tmp_path):
    trace = global_trace(tmp_path)
    base = whatif.measure(trace, (0, 10**9))["global"]
    fine, _ = whatif.split_global(trace, (0, 10**9))
    measured_fine = {k: whatif.LockLoad(k, 1, 1.0, 1e-6, 1e-12, 5e-7) for k in fine}
    rows = whatif.what_if_rows(base, 2, fine, measured_fine, {"global": base}, 8)
    assert [r.model for r in rows[:2]] == ["M/G/1", "MVA, exp. holds"]
    assert rows[0].run == rows[1].run == "global, 2 workers"
    assert rows[0].predicted_wait == pytest.approx(base.mg1())
    assert rows[-1].run == "global, 8 workers" and rows[-1].model == "MVA, exp. holds"
    assert rows[-1].predicted_rate > base.rate
    assert {r.lock for r in rows if r.run.startswith("fine")} == set(fine)
    assert "W meas µs" in whatif.format_rows(rows).splitlines()[0]
    ax = whatif.whatif_chart(Figure().add_subplot(), rows)
    assert len(ax.patches) == 2 * len(rows)
    lines = whatif_runs.summary_lines(rows, 2)
    assert len(lines) == 3 and lines[0].endswith(whatif.mg1_gap(rows[0], 2))


def gap_row(predicted_us: float, measured_us: float) -> whatif.Row:
    """The M/G/1 row of a lock taken 4,000 times a second, held 50 µs."""
    measured = whatif.LockLoad("global", 4000, 1.0, 50e-6, 1e-8, measured_us * 1e-6)
    return whatif.Row("global, 4 workers", "global", "M/G/1", predicted_us * 1e-6, 4000, 0.2,
                      measured)  # fmt: skip


def test_mg1_gap_says_why_the_model_is_off_in_the_direction_it_is():
    high = whatif.mg1_gap(gap_row(1000, 250), 4)
    assert high.startswith("M/G/1 is 4.0× too high: it assumes an open system")
    assert (
        "closed: at most 3 of its 4 workers can wait (L = λW = 1.0 did)" in high
    )  # 4,000/s × 250 µs
    assert whatif.mg1_gap(gap_row(math.inf, 250), 4).startswith("M/G/1 sees no bound (ρ ≥ 1)")
    low = whatif.mg1_gap(gap_row(100, 300), 4)
    assert low.startswith("M/G/1 is 3.0× too low: it assumes independent Poisson arrivals")
    assert "bursts" in low and "open system" not in low
    near = whatif.mg1_gap(gap_row(100, 110), 4)  # L = 0.44, far below the 3 that can wait
    assert near.startswith("M/G/1 and the run agree within 25 %") and "hardly binds" in near
    assert "cancel" in whatif.mg1_gap(gap_row(500, 450), 4)  # L = 1.8 of at most 3
    assert whatif.mg1_gap(gap_row(0, 0), 4).startswith("M/G/1 and the run agree")


def test_check_holds_names_locks_a_command_took_beyond_the_table(tmp_path):
    b = TraceBuilder(locking="fine", workers=1)
    b.task(1, "send", "worker-0", queued=0, start=0, end=10)
    b.lock("worker-0", "storage", task=1, wait=1, acquired=1, released=2)
    b.task(2, "sendgroup", "worker-0", queued=0, start=20, end=30)
    b.lock("worker-0", "group:os2", task=2, wait=21, acquired=21, released=25)
    b.lock("worker-0", "storage", task=2, wait=22, acquired=22, released=24)
    assert whatif.check_holds(load_trace(b.write(tmp_path / "ok.jsonl"))) == {}
    b.lock("worker-0", "sessions", task=1, wait=3, acquired=3, released=4)
    assert whatif.check_holds(load_trace(b.write(tmp_path / "bad.jsonl"))) == {"send": ["sessions"]}
