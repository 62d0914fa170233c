"""The visualizer: numbers from synthetic traces checked against answers
computed by hand, loader errors, and every CLI verb on a real server's trace."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.image
import pytest

from tests.support.chatclient import ServerProcess, account, fresh_name
from tests.support.tracegen import TraceBuilder
from visualizer import cli, report, stats
from visualizer.graphs import Unheld, busiest_instant, wait_for_graph
from visualizer.load import TraceError, load_trace


@pytest.fixture
def small(tmp_path):
    """Three tasks on two workers; storage is contended once (task 2 waits
    35 ns for task 1); group -> storage and sessions -> storage nestings."""
    b = TraceBuilder(workers=2)
    b.task(1, "send", "worker-0", queued=0, start=10, end=100)
    b.lock("worker-0", "storage", task=1, wait=20, acquired=20, released=60)
    b.task(2, "sendgroup", "worker-1", queued=5, start=15, end=200)
    b.lock("worker-1", "group:os2", task=2, wait=16, acquired=16, released=150)
    b.lock("worker-1", "storage", task=2, wait=25, acquired=60, released=90)
    b.task(3, "users", "worker-0", queued=110, start=120, end=180)
    b.lock("worker-0", "sessions", task=3, wait=130, acquired=130, released=140)
    b.lock("worker-0", "storage", task=3, wait=135, acquired=135, released=138)
    return load_trace(b.write(tmp_path / "small.jsonl"))


def test_load_pairs_events_into_spans_and_tasks(small):
    assert small.header.locking == "fine" and small.header.workers == 2
    assert small.events == 3 * 3 + 5 * 3 - 0  # 9 task events, 15 lock events
    assert [(s.lock, s.wait, s.acquired, s.released) for s in small.locks][:3] == [
        ("group:os2", 16, 16, 150), ("storage", 20, 20, 60), ("storage", 25, 60, 90),
    ]  # fmt: skip
    run = small.tasks[2]
    assert (run.cmd, run.thread, run.queue_delay, run.run_time) == (
        "sendgroup",
        "worker-1",
        10,
        185,
    )
    assert small.thread_order() == ["MainThread", "worker-0", "worker-1"]
    assert small.end == 200


def test_lockstat_per_lock_and_class(small):
    rows = {(r.name, r.is_class): r for r in stats.lockstat(small)}
    storage = rows["storage", False]
    assert (storage.acquisitions, storage.contended, storage.wait_total, storage.wait_max) == (
        3, 1, 35, 35,
    )  # fmt: skip
    assert (storage.wait_p50, storage.wait_p99) == (0, 35)
    assert (storage.hold_total, storage.hold_max) == (73, 40)
    assert round(storage.contended_pct, 1) == 33.3
    assert rows["group", True].hold_total == 134 == rows["group:os2", False].hold_total
    assert [r.name for r in stats.lockstat(small)] == [
        "group", "sessions", "storage", "group:os2", "sessions", "storage",
    ]  # fmt: skip
    text = stats.lockstat_text(stats.lockstat(small)).splitlines()
    assert text[0].split()[:3] == ["name", "kind", "acquisitions"]
    assert len({len(line) for line in text}) == 1


def test_percentile_is_nearest_rank():
    assert stats.percentile([], 50) == 0
    assert stats.percentile([5], 99) == 5
    values = list(range(1, 101))
    assert (stats.percentile(values, 50), stats.percentile(values, 99)) == (50, 99)
    assert stats.percentile([3, 1, 2, 10], 50) == 2
    assert stats.percentile([3, 1, 2, 10], 99) == 10


def test_thread_times_busy_waiting_idle(small):
    times = {t.name: t for t in stats.thread_times(small)}
    w0, w1, main = times["worker-0"], times["worker-1"], times["MainThread"]
    assert (w0.lifetime, w0.busy, w0.waiting, w0.idle) == (170, 150, 0, 20)
    assert (w1.lifetime, w1.busy, w1.waiting, w1.idle) == (185, 150, 35, 0)
    assert (main.lifetime, main.busy, main.idle) == (110, 0, 110)


def test_order_edges_count_nestings_with_their_commands(small):
    edges = {(e.before, e.after): (e.count, e.cmds) for e in stats.order_edges(small)}
    assert edges == {("group", "storage"): (1, ("sendgroup",)),
                     ("sessions", "storage"): (1, ("users",))}  # fmt: skip


def test_blame_names_the_holder_of_the_lock_waited_for(small):
    slowest, second = stats.blame(small, 2)
    assert (slowest.task, slowest.queue_delay, slowest.running) == (2, 10, 150)
    assert slowest.waits == (("storage", 35, 1, "send"),)
    assert slowest.total == 195
    assert (second.task, second.waits, second.running) == (1, (), 90)


def test_activity_over_intervals(small):
    act = stats.activity(small, intervals=10)
    assert act.step == 20
    assert act.completed == [0, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert act.queued == [1] + [0] * 9
    assert act.waiters["storage"] == [0, 0, 1] + [0] * 7
    assert act.waiters["group:os2"] == [0] * 10


def test_lock_timeout_counts_as_a_timeout_not_an_acquisition(tmp_path):
    b = TraceBuilder()
    b.task(1, "users", "worker-0", queued=0, start=1, end=500)
    b.lock("worker-0", "storage", task=1, wait=2, acquired=2, released=400)
    b.lock("worker-0", "sessions", task=1, wait=10, timeout=300)
    row = {r.name: r for r in stats.lockstat(load_trace(b.write(tmp_path / "t.jsonl")))}
    assert (row["sessions"].acquisitions, row["sessions"].timeouts) == (0, 1)


def test_load_malformed_line_names_it_or_skips_and_counts(tmp_path):
    b = TraceBuilder()
    b.task(1, "ping", "worker-0", queued=0, start=1, end=2)
    lines = b.lines()
    lines.insert(2, "{not json")
    lines.insert(3, json.dumps({"ts": 5, "thread": "worker-0", "ev": "lock_wait"}))
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceError, match=r"bad\.jsonl:3: .*--skip-bad"):
        load_trace(path)
    trace = load_trace(path, skip_bad=True)
    assert trace.skipped == 2 and trace.tasks[1].run_time == 1
    (tmp_path / "nohead.jsonl").write_text(lines[1] + "\n")
    with pytest.raises(TraceError, match=r"nohead\.jsonl:1: not a trace header"):
        load_trace(tmp_path / "nohead.jsonl", skip_bad=True)


def test_cli_bad_trace_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "junk.jsonl"
    path.write_text("hello\n")
    assert cli.main(["stats", str(path)]) == 1
    assert "junk.jsonl:1: not a trace header" in capsys.readouterr().err
    assert cli.main(["stats", str(tmp_path / "missing.jsonl")]) == 1


@pytest.fixture(scope="module")
def real_traces(tmp_path_factory):
    """Traces of one short chat under global and under fine locking."""
    out = {}
    for locking in ("global", "fine"):
        tmp = tmp_path_factory.mktemp(f"viz-{locking}")
        trace = tmp / f"{locking}.jsonl"
        srv = ServerProcess(tmp / "chat.db", "--trace", str(trace), "--locking", locking,
                            "--rate-limit", "0").start()  # fmt: skip
        clients = [account(srv) for _ in range(3)]
        g = fresh_name("g")
        clients[0].ok(f"/group {g} {clients[1].name} {clients[2].name}")
        for c in clients:
            for i in range(10):
                c.send(f"/sendgroup {g} hello {i}")
        for c in clients:
            for _ in range(10):
                c.reply()
        assert srv.stop() == 0
        out[locking] = trace
    return out


def _check_report(folder):
    index = (folder / "index.html").read_text()
    refs = re.findall(r'src="([^"]+)"', index)
    assert refs, "index.html shows no picture"
    for ref in refs:
        image = matplotlib.image.imread(folder / ref)  # decodes, or raises
        assert image.shape[0] > 50 and image.shape[1] > 50
    return json.loads((folder / "summary.json").read_text())


def test_cli_report_on_a_real_trace(real_traces, tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["report", str(real_traces["fine"]), "-o", str(out)]) == 0
    summary = _check_report(out)
    assert summary["locking"] == "fine" and summary["tasks"] > 30
    pictures = {"timeline.png", "waits.png", "lockstat.png", "lock_order.png", "wait_for.png",
                "blame.png", "activity.png", "threads.png"}  # fmt: skip
    assert pictures <= {p.name for p in out.iterdir()}
    csv_lines = (out / "lockstat.csv").read_text().splitlines()
    assert csv_lines[0].startswith("name,kind,acquisitions") and len(csv_lines) > 2
    assert cli.main(["report", str(real_traces["fine"]), "-o", str(tmp_path / "w"),
                     "--window", "0:5", "--at", "1"]) == 0  # fmt: skip
    _check_report(tmp_path / "w")


def test_report_of_a_real_trace_shows_steady_state_holders_and_the_reactor(real_traces):
    """Each client registered and logged in (password hashing), then sent."""
    trace = load_trace(real_traces["global"])
    fig, _ = report.blame_figure(trace)
    steady, setup = ([t.get_text() for t in ax.get_yticklabels()] for ax in fig.axes)
    assert steady and not [c for c in steady if c.startswith(("/login ", "/register "))]
    assert any(c.startswith("/sendgroup ") for c in steady)
    assert setup and all(c.startswith(("/login ", "/register ")) for c in setup)
    g = wait_for_graph(trace, busiest_instant(trace))
    waited = {lock for _, lock, kind in g.edges(data="kind") if kind == "waits"}
    held = {lock for lock, _, kind in g.edges(data="kind") if kind == "holds"}
    unheld = g.graph["unheld"]
    assert waited == (waited & held) | {n.lock for n in unheld}  # each one explained
    assert all(n.why is Unheld.FREE for n in unheld)  # a whole trace: never "unknown"
    reactor = next(t for t in stats.thread_times(trace) if t.name == "MainThread")
    assert 0 < reactor.loop <= reactor.busy  # its loop_busy events: not all idle
    assert reactor.busy + reactor.waiting + reactor.idle == reactor.lifetime


def test_cli_compare_perfetto_and_stats_on_real_traces(real_traces, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(real_traces["global"]), str(real_traces["fine"]),
                     "-o", str(out)]) == 0  # fmt: skip
    both = _check_report(out)
    assert (both["a"]["locking"], both["b"]["locking"]) == ("global", "fine")
    assert (out / "compare.csv").read_text().count("\n") > 3
    chrome = tmp_path / "run.perfetto.json"
    assert cli.main(["perfetto", str(real_traces["global"]), "-o", str(chrome)]) == 0
    doc = json.loads(chrome.read_text())
    assert any(e["ph"] == "X" for e in doc["traceEvents"])
    capsys.readouterr()
    assert cli.main(["stats", str(real_traces["global"])]) == 0
    assert "global" in capsys.readouterr().out


def test_cli_rejects_a_bad_window():
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["report", "t.jsonl", "-o", "x", "--window", "9:3"])
