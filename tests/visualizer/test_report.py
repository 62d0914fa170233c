"""`chat-viz report` as a person reads it: the headline in readable units,
blame.png without the password hashing of /register and /login in the
way, the holder (or why there is none) in wait_for.png, and the reactor's
busy share in threads.png from its loop_busy events. Synthetic traces
with answers computed by hand; loop_busy traces written line by line."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")

import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tests.support.tracegen import TraceBuilder
from visualizer import cli, plots, report, stats
from visualizer.graphdraw import draw_wait_for
from visualizer.graphs import NoHolder, Unheld, busiest_instant, wait_for_graph
from visualizer.load import LoopBusy, Trace, TraceError, load_trace
from visualizer.units import duration, unit_for

MS = 1_000_000


def load(b: TraceBuilder, tmp_path, name: str = "t.jsonl") -> Trace:
    return load_trace(b.write(tmp_path / name))


# -- the headline ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "text"),
    [(0, "0 ns"), (999, "999 ns"), (1123, "1.12 µs"), (35_299, "35.3 µs"),
     (999_999, "1.00 ms"), (4_167_802, "4.17 ms"), (471_564_214, "472 ms"),
     (1_391_000_000, "1.39 s")],
)  # fmt: skip
def test_duration_reads_in_the_unit_that_fits(ns, text):
    assert duration(ns) == text


def test_unit_for_an_axis_is_the_largest_the_maximum_reaches():
    assert [unit_for(ns)[0] for ns in (5, 800_000, 33 * MS, 2_000 * MS)] == ["ns", "µs", "ms", "s"]


def test_report_index_headline_is_a_labelled_table_in_readable_units(tmp_path):
    b = TraceBuilder(workers=1)
    b.task(1, "send", "worker-0", queued=0, start=471_564_214, end=471_600_000)
    b.lock("worker-0", "storage", task=1, wait=471_570_000, acquired=471_570_000,
           released=471_580_000)  # fmt: skip
    trace = load(b, tmp_path)
    index = report.write_report(trace, tmp_path / "r").read_text()
    assert "471564214" not in index and "&quot;" not in index  # no JSON dump
    row = re.search(r"<tr><th>/send</th>(.*?)</tr>", index)
    assert row is not None
    assert re.findall(r"<td>([^<]*)</td>", row.group(1)) == [
        "1", "472 ms", "472 ms", "35.8 µs", "35.8 µs",
    ]  # fmt: skip
    assert "<th>queue delay p50</th>" in index and "<th>run time p99</th>" in index
    assert "<tr><th>duration</th><td>472 ms</td></tr>" in index
    assert "<tr><th>locking</th><td>fine</td></tr>" in index
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["commands"]["send"]["queue_p50"] == 471_564_214  # programs keep ns
    assert (tmp_path / "r" / "lockstat.csv").read_text().startswith("name,kind,acquisitions")


def test_compare_index_puts_both_runs_side_by_side(tmp_path):
    traces = []
    for locking in ("global", "fine"):
        b = TraceBuilder(locking=locking)
        b.task(1, "send", "worker-0", queued=0, start=2_000, end=3_000)
        traces.append(load(b, tmp_path, f"{locking}.jsonl"))
    index = report.write_compare(*traces, tmp_path / "cmp").read_text()
    assert "<tr><th>locking</th><td>global</td><td>fine</td></tr>" in index
    assert index.count("<tr><th>/send</th><td>1</td><td>2.00 µs</td>") == 2


# -- blame ------------------------------------------------------------------------


@pytest.fixture
def with_logins(tmp_path) -> Trace:
    """Two /register and two /login of ~33 ms (password hashing) on a lane,
    then /send and /sendgroup of a few hundred µs on the workers."""
    b = TraceBuilder(workers=2)
    t = 0
    for task, cmd in enumerate(("register", "login", "register", "login"), start=1):
        b.task(task, cmd, "lane-0", queued=t, start=t + 1_000, end=t + 1_000 + 33 * MS + task)
        t += 34 * MS
    for k in range(6):
        task, cmd = 10 + k, ("send", "sendgroup")[k % 2]
        start = t + k * MS
        b.task(task, cmd, f"worker-{k % 2}", queued=start - 50_000, start=start,
               end=start + 200_000 + 10_000 * k)  # fmt: skip
    return load(b, tmp_path)


def test_blame_keeps_only_the_commands_asked_for(with_logins):
    steady = stats.blame(with_logins, 10, exclude=stats.SETUP_COMMANDS)
    assert [b.task for b in steady] == [15, 14, 13, 12, 11, 10]
    assert [b.cmd for b in stats.blame(with_logins, 2, commands={"send"})] == ["send", "send"]
    assert [b.task for b in stats.blame(with_logins, 2)] == [4, 3]  # all: hashing first


def labels(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def test_blame_figure_shows_setup_commands_apart_in_ms_and_the_rest_in_us(with_logins):
    fig, caption = report.blame_figure(with_logins)
    steady, setup = fig.axes
    assert labels(steady) == [f"/{c} #{t}" for c, t in (
        ("sendgroup", 15), ("send", 14), ("sendgroup", 13), ("send", 12), ("sendgroup", 11),
        ("send", 10))]  # fmt: skip
    assert labels(setup) == ["/login #4", "/register #3", "/login #2", "/register #1"]
    assert steady.get_xlabel().startswith("µs:") and setup.get_xlabel().startswith("ms:")
    assert max(p.get_x() + p.get_width() for p in setup.patches) == pytest.approx(33.0, abs=0.01)
    assert "without /login, /register" in steady.get_title()
    assert setup.get_title().startswith("Setup: the slowest /login, /register")
    assert "--commands" in caption


def test_blame_figure_of_chosen_commands_is_one_panel(with_logins):
    fig, caption = report.blame_figure(with_logins, {"sendgroup"})
    (ax,) = fig.axes
    assert labels(ax) == ["/sendgroup #15", "/sendgroup #13", "/sendgroup #11"]
    assert caption.startswith("The slowest /sendgroup")
    fig, _ = report.blame_figure(with_logins, {"history"})
    assert "no /history in this trace" in {t.get_text() for t in fig.axes[0].texts}


def test_cli_report_commands_option_reaches_blame(with_logins, tmp_path):
    args = cli.build_parser().parse_args(["report", "t", "-o", "x", "--commands", "send,/login"])
    assert args.commands == {"send", "login"}
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["report", "t", "-o", "x", "--commands", ","])
    out = tmp_path / "r"
    assert cli.main(["report", with_logins.path, "-o", str(out), "--commands", "send"]) == 0
    assert 'alt="The slowest /send, and whose lock' in (out / "index.html").read_text()
    assert (out / "blame.png").stat().st_size > 0


# -- the wait-for graph's holder ----------------------------------------------


def hand_over(b: TraceBuilder) -> TraceBuilder:
    """worker-0 holds global [10, 100); worker-1 waits from 20 and has it
    [105, 150); worker-2 waits from 30 and has it [155, 200); worker-3 waits
    from 101 and has it [205, 250). Between 100 and 105 nobody holds it
    while three threads wait: the lock is being handed over."""
    for task, (thread, wait, acquired, released) in enumerate(
        [("worker-0", 10, 10, 100), ("worker-1", 20, 105, 150),
         ("worker-2", 30, 155, 200), ("worker-3", 101, 205, 250)], start=1,
    ):  # fmt: skip
        b.task(task, "send", thread, queued=0, start=5, end=released + 1)
        b.lock(thread, "global", task=task, wait=wait, acquired=acquired, released=released)
    return b


def test_busiest_instant_prefers_an_instant_whose_holder_is_known(tmp_path):
    trace = load(hand_over(TraceBuilder(locking="global", workers=4)), tmp_path)
    at = busiest_instant(trace)
    assert at == 30  # two waiting, worker-0 holding; not 101 (three waiting, no holder)
    g = wait_for_graph(trace, at)
    assert g.edges["global", "worker-0"]["kind"] == "holds"
    assert g.graph["unheld"] == []


def test_busiest_instant_without_any_known_holder_takes_the_most_waiting(tmp_path):
    """Sampled: whoever held storage until 40 and sessions until 70 is not
    in the trace; the most threads wait, two, from 20 to 40."""
    b = TraceBuilder(sample=0.5)
    b.task(1, "send", "worker-1", queued=0, start=5, end=60)
    b.lock("worker-1", "storage", task=1, wait=10, acquired=40, released=50)
    b.task(2, "users", "worker-2", queued=0, start=5, end=90)
    b.lock("worker-2", "sessions", task=2, wait=20, acquired=70, released=80)
    assert busiest_instant(load(b, tmp_path)) == 20


def test_wait_for_graph_says_the_lock_is_free_between_two_holders(tmp_path):
    trace = load(hand_over(TraceBuilder(locking="global", workers=4)), tmp_path)
    g = wait_for_graph(trace, 102)
    assert sorted(a for a, _ in g.in_edges("global")) == ["worker-1", "worker-2", "worker-3"]
    assert g.graph["unheld"] == [
        NoHolder("global", Unheld.FREE, released=("worker-0", 100), taken=("worker-1", 105))
    ]


@pytest.mark.parametrize(
    ("sample", "dropped", "why", "text"),
    [(0.5, False, Unheld.NOT_SAMPLED, "global: holder unknown: not sampled"),
     (1.0, True, Unheld.DROPPED, "global: holder unknown: the trace dropped events")],
)  # fmt: skip
def test_wait_for_graph_says_when_the_holder_is_not_in_the_trace(
    tmp_path, sample, dropped, why, text
):
    b = TraceBuilder(locking="global", sample=sample)
    b.task(2, "send", "worker-1", queued=0, start=5, end=200)
    b.lock("worker-1", "global", task=2, wait=20, acquired=105, released=150)
    if dropped:
        b.event(60, "worker-0", "dropped", count=3)
    trace = load(b, tmp_path)
    g = wait_for_graph(trace, 50)
    assert g.graph["unheld"] == [NoHolder("global", why)]
    ax = draw_wait_for(Figure().add_subplot(), trace, 50)
    assert any(t.get_text().startswith(text) for t in ax.texts)


def test_draw_wait_for_names_who_released_and_who_takes_the_free_lock(tmp_path):
    trace = load(hand_over(TraceBuilder(locking="global", workers=4)), tmp_path)
    texts = [t.get_text() for t in draw_wait_for(Figure().add_subplot(), trace, 102).texts]
    assert (
        "global: no holder: free at this instant\n"
        "(released by worker-0 2 ns before; next taken by worker-1 3 ns after)"
    ) in texts
    held = [t.get_text() for t in draw_wait_for(Figure().add_subplot(), trace, 30).texts]
    assert "holds" in held and not any("no holder" in t for t in held)


# -- loop_busy and the reactor's busy share ---------------------------------


def loop_trace(tmp_path, *lines: dict) -> Trace:
    """A trace written by hand: the header, then `lines`, each a JSON line."""
    header = {"type": "header", "version": 1, "clock": "monotonic_ns", "start_unix": 0.0,
              "locking": "fine", "workers": 1, "sample": 1.0}  # fmt: skip
    path = tmp_path / "loop.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in (header, *lines)) + "\n")
    return load_trace(path)


def ev(ts: int, thread: str, kind: str, **fields) -> dict:
    return {"ts": ts, "tid": 7 if thread == "MainThread" else 8, "thread": thread, "ev": kind,
            **fields}  # fmt: skip


#: The reactor, 0..250: working 30 ns of [0, 100] and 50 of [100, 200] (its
#: loop_busy events), untracked after 200; a worker runs one task 10..60
#: that waits 10 ns for storage; an event of a kind this reader does not know.
REACTOR = (
    ev(0, "MainThread", "thread_start"),
    ev(0, "worker-0", "thread_start"),
    ev(5, "MainThread", "task_queued", task=1, cmd="send", conn=3),
    ev(10, "worker-0", "task_start", task=1, cmd="send"),
    ev(20, "worker-0", "lock_wait", lock="storage", task=1),
    ev(30, "worker-0", "lock_acquired", lock="storage", task=1),
    ev(40, "worker-0", "lock_released", lock="storage", task=1),
    ev(60, "worker-0", "task_end", task=1, cmd="send"),
    ev(100, "MainThread", "loop_busy", **{"from": 0, "busy_ns": 30}),
    ev(150, "MainThread", "a_kind_from_the_future", size=3),
    ev(200, "MainThread", "loop_busy", **{"from": 100, "busy_ns": 50}),
    ev(250, "MainThread", "thread_end"),
    ev(250, "worker-0", "thread_end"),
)


def test_load_reads_loop_busy_and_keeps_unknown_kinds_aside(tmp_path):
    trace = loop_trace(tmp_path, *REACTOR)
    assert trace.loops == [LoopBusy("MainThread", 0, 100, 30), LoopBusy("MainThread", 100, 200, 50)]
    assert [e["ev"] for e in trace.others] == ["a_kind_from_the_future"]
    assert trace.events == len(REACTOR)


def test_load_rejects_a_loop_busy_that_ends_before_it_starts(tmp_path):
    with pytest.raises(TraceError, match=r"loop\.jsonl:2: loop_busy from 90 to 50"):
        loop_trace(tmp_path, ev(50, "MainThread", "loop_busy", **{"from": 90, "busy_ns": 1}))
    with pytest.raises(TraceError, match=r"loop_busy without 'busy_ns'"):
        loop_trace(tmp_path, ev(50, "MainThread", "loop_busy", **{"from": 0}))


def test_thread_times_count_loop_busy_as_the_reactors_work(tmp_path):
    times = {t.name: t for t in stats.thread_times(loop_trace(tmp_path, *REACTOR))}
    main, worker = times["MainThread"], times["worker-0"]
    assert (main.lifetime, main.busy, main.waiting, main.idle, main.loop) == (250, 80, 0, 170, 80)
    assert (worker.lifetime, worker.busy, worker.waiting, worker.idle) == (250, 40, 10, 200)
    assert worker.loop == 0


def test_thread_times_of_a_loop_that_runs_tasks_count_them_once(tmp_path):
    """A loop thread running a command itself (the inline model): the
    command's 40 ns are inside the loop's 60 busy ns, its 15 ns lock wait
    counts as waiting; the part after the last loop_busy counts by tasks."""
    trace = loop_trace(
        tmp_path,
        ev(0, "MainThread", "thread_start"),
        ev(10, "MainThread", "task_queued", task=1, cmd="send", conn=3),
        ev(20, "MainThread", "task_start", task=1, cmd="send"),
        ev(25, "MainThread", "lock_wait", lock="storage", task=1),
        ev(40, "MainThread", "lock_acquired", lock="storage", task=1),
        ev(50, "MainThread", "lock_released", lock="storage", task=1),
        ev(60, "MainThread", "task_end", task=1, cmd="send"),
        ev(100, "MainThread", "loop_busy", **{"from": 0, "busy_ns": 60}),
        ev(120, "MainThread", "task_start", task=2, cmd="ping"),
        ev(130, "MainThread", "task_end", task=2, cmd="ping"),
        ev(200, "MainThread", "thread_end"),
    )
    (main,) = stats.thread_times(trace)
    assert (main.lifetime, main.busy, main.waiting, main.idle) == (200, 45 + 10, 15, 40 + 90)
    assert main.loop == 45
    assert main.busy + main.waiting + main.idle == main.lifetime


def test_thread_times_clip_loop_busy_to_the_thread_life(tmp_path):
    trace = loop_trace(
        tmp_path,
        ev(50, "MainThread", "thread_start"),
        ev(100, "MainThread", "loop_busy", **{"from": 0, "busy_ns": 40}),  # half inside
        ev(100, "MainThread", "thread_end"),
    )
    (main,) = stats.thread_times(trace)
    assert (main.lifetime, main.busy, main.idle) == (50, 20, 30)


def test_thread_chart_draws_the_reactors_busy_share(tmp_path):
    ax = plots.thread_chart(Figure().add_subplot(), loop_trace(tmp_path, *REACTOR))
    reactor = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_y() < 0 < p.get_y()
               + p.get_height()]  # fmt: skip
    widths = {p.get_hatch() or "": round(p.get_width(), 3) for p in reactor if p.get_width()}
    assert widths == {"xx": 32.0, "": 68.0}  # 80 of 250 ns outside select, the rest idle
    assert "loop working (outside select)" in [t.get_text() for t in ax.get_legend().texts]
