"""The lock demos (classroom/demos_locks.py): each scenario end to end through
`chat-demo --quick` on a real server, with the page of its folder, and the
trace readings the notebooks rely on, on synthetic traces with
hand-computed answers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from classroom import demos_locks
from loadgen.run import LoadSpec, Summary
from tests.classroom.pages import assert_index_shows_every_picture
from tests.support.chatclient import run_demo
from tests.support.tracegen import TraceBuilder
from visualizer.load import load_trace

# --- the scenarios, end to end -----------------------------------------------------------


def test_demo_tour_traces_one_send_from_bytes_to_reply(tmp_path, capsys):
    summary, lines = run_demo("tour", tmp_path, capsys)
    for name in ("tour.jsonl", "story.txt", "report/index.html", "report/timeline.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert summary["load"]["delivered"] > 0 and summary["load"]["undelivered"] == 0
    story = [what for _, _, what in summary["story"]]
    assert story[0].startswith("reads") and story[-1].endswith("(the reply)")
    assert any(w.startswith("starts /send") for w in story)
    assert any(w.startswith("starts /commit") for w in story)
    assert "msgs/s" in lines[0] and "busiest lock" in lines[1] and "/send" in lines[2]
    page = assert_index_shows_every_picture(tmp_path, lines)
    assert "report/index.html" in page.links and "story.txt" in page.links


def test_demo_global_vs_fine_runs_both_strategies(tmp_path, capsys):
    summary, lines = run_demo("global-vs-fine", tmp_path, capsys)
    for name in ("global.jsonl", "fine.jsonl", "compare/index.html", "compare/waits.png",
                 "compare.txt"):  # fmt: skip
        assert (tmp_path / name).stat().st_size > 0, name
    for locking in ("global", "fine"):
        assert summary[locking]["trace"]["locking"] == locking
        assert summary[locking]["load"]["delivered"] > 0
        assert summary[locking]["load"]["undelivered"] == 0
    assert summary["fine_over_global"] > 0
    assert lines[0].lstrip().startswith("global:") and "busiest lock global" in lines[0]
    assert lines[1].lstrip().startswith("fine:")
    assert "compare/index.html" in assert_index_shows_every_picture(tmp_path, lines).links


def test_demo_deadlock_reports_the_cycle_and_recovers(tmp_path, capsys):
    summary, lines = run_demo("deadlock", tmp_path, capsys)
    for name in ("inversion.jsonl", "deadlock-inverted.jsonl", "report/wait_for.png",
                 "report/lock_order.png"):  # fmt: skip
        assert (tmp_path / name).stat().st_size > 0, name
    assert summary["order_cycles"] == [["sessions", "storage"]]
    assert summary["trace"]["order_violations"] == 1
    assert summary["replies"]["ok"] > 0 and summary["recovered"]
    assert summary["deadlock_after"] is not None, lines
    assert summary["trace"]["deadlocks"] >= 1 and len(summary["moments"]["cycle"]) == 2
    assert summary["replies"].get("internal", 0) >= 1  # the wait that gave up
    assert "sessions -> storage -> sessions" in lines[0] and "deadlock after" in lines[1]
    assert "report/index.html" in assert_index_shows_every_picture(tmp_path, lines).links


# --- readings of a trace -----------------------------------------------------------------


def story_trace(tmp_path):
    """Task 1, /send on connection 7: read at 5, queued at 10, run on worker-0
    20-70 taking storage free at 30 (held 20) and waiting 10 for sessions;
    its commit (task 2) 72-90; the reply written at 100. Noise around it."""
    b = TraceBuilder()
    b.event(3, "MainThread", "io_write", conn=7, bytes=50)  # before: not the reply
    b.event(5, "MainThread", "io_read", conn=7, bytes=20)
    b.event(6, "MainThread", "io_read", conn=8, bytes=20)  # another connection
    b.task(1, "send", "worker-0", queued=10, start=20, end=70, conn=7)
    b.lock("worker-0", "storage", task=1, wait=30, acquired=30, released=50)
    b.lock("worker-0", "sessions", task=1, wait=52, acquired=62, released=65)
    b.task(2, "commit", "worker-0", queued=71, start=72, end=90, conn=7, queued_by="worker-0")
    b.lock("worker-0", "delivery", task=2, wait=75, acquired=75, released=85)
    b.task(3, "send", "worker-1", queued=11, start=15, end=95, conn=8)
    b.event(95, "MainThread", "io_write", conn=8, bytes=30)
    b.event(100, "MainThread", "io_write", conn=7, bytes=40)
    b.event(110, "MainThread", "io_write", conn=7, bytes=40)
    return load_trace(b.write(tmp_path / "story.jsonl"))


def test_task_story_follows_bytes_to_reply(tmp_path):
    steps = demos_locks.task_story(story_trace(tmp_path), 1)
    assert [(s.ns, s.thread, s.what) for s in steps] == [
        (5, "reactor", "reads 20 bytes from connection 7"),
        (10, "reactor", "queues /send (task 1)"),
        (20, "worker-0", "starts /send after 0 µs in the queue"),
        (30, "worker-0", "takes storage (free)"),
        (50, "worker-0", "releases storage, held 0 µs"),
        (52, "worker-0", "waits for sessions"),
        (62, "worker-0", "gets sessions after 0 µs"),
        (65, "worker-0", "releases sessions, held 0 µs"),
        (70, "worker-0", "ends /send (ran 0 µs)"),
        (71, "worker-0", "queues /commit (task 2)"),
        (72, "worker-0", "starts /commit after 0 µs in the queue"),
        (75, "worker-0", "takes delivery (free)"),
        (85, "worker-0", "releases delivery, held 0 µs"),
        (90, "worker-0", "ends /commit (ran 0 µs)"),
        (100, "reactor", "writes 40 bytes to connection 7 (the reply)"),
    ]
    text = demos_locks.format_story(steps)
    assert len(text.splitlines()) == len(steps) and "+     0 µs" in text.splitlines()[0]
    assert demos_locks.story_window(steps, pad=1.0) == (0, 100 + 50_000)


def test_pick_task_takes_the_median_of_the_middle_half(tmp_path):
    b = TraceBuilder()
    b.task(1, "send", "worker-0", queued=0, start=1, end=2)  # first quarter: not a candidate
    for task, took in ((2, 30), (3, 10), (4, 20)):
        b.task(task, "send", "worker-0", queued=300 + task, start=310 + task, end=300 + task + took)
    b.task(5, "users", "worker-1", queued=400, start=410, end=450)
    b.task(6, "send", "worker-1", queued=990, start=995, end=1000)  # last quarter
    trace = load_trace(b.write(tmp_path / "t.jsonl"))
    assert demos_locks.pick_task(trace, "send") == 4
    assert demos_locks.pick_task(trace, "users") == 5


def deadlock_trace(tmp_path, with_spans: bool = True):
    """worker-0 (/login) holds sessions from 100 and waits for storage from
    150; worker-1 (/users) holds storage from 120 and waits for sessions from
    160. The watchdog reports at 400; worker-0 gives up at 950."""
    b = TraceBuilder(locking="inverted")
    b.task(1, "login", "worker-0", queued=90, start=95, end=960)
    b.task(2, "users", "worker-1", queued=91, start=110, end=990)
    if with_spans:
        b.lock("worker-0", "sessions", task=1, wait=100, acquired=100, released=951)
        b.lock("worker-0", "storage", task=1, wait=150, timeout=950)
        b.lock("worker-1", "storage", task=2, wait=120, acquired=120, released=980)
        b.lock("worker-1", "sessions", task=2, wait=160, acquired=952, released=970)
    chain = [
        {"thread": "worker-0", "cmd": "login", "waits_for": "storage", "held_by": "worker-1",
         "seconds": 250e-9},
        {"thread": "worker-1", "cmd": "users", "waits_for": "sessions", "held_by": "worker-0",
         "seconds": 240e-9},
    ]  # fmt: skip
    b.event(400, "watchdog", "deadlock", chain=chain, cycle=["worker-0", "worker-1"])
    return load_trace(b.write(tmp_path / "dl.jsonl"))


def test_deadlock_moments_from_the_waits_in_the_cycle(tmp_path):
    m = demos_locks.deadlock_moments(deadlock_trace(tmp_path))
    assert (m.formed, m.reported, m.broken) == (160, 400, 950)
    assert m.cycle == ("worker-0", "worker-1") and len(m.chain) == 2


def test_deadlock_moments_without_spans_uses_the_reported_waits(tmp_path):
    m = demos_locks.deadlock_moments(deadlock_trace(tmp_path, with_spans=False))
    assert (m.formed, m.reported, m.broken) == (160, 400, None)


def test_deadlock_moments_none_without_a_deadlock(tmp_path):
    b = TraceBuilder()
    b.task(1, "send", "worker-0", queued=0, start=1, end=2)
    assert demos_locks.deadlock_moments(load_trace(b.write(tmp_path / "t.jsonl"))) is None


def test_lock_reports_keeps_reports_with_their_details():
    log = "\n".join([
        "10:00:00 [INFO] listening on 127.0.0.1:4000 (...)",
        "10:00:01 [WARNING] possible circular locking dependency: storage -> sessions -> storage",
        "  storage -> sessions: first by worker-3 running /users",
        "  sessions -> storage: first by worker-0 running /login",
        "10:00:01 [INFO] alice logged in from 127.0.0.1:5000",
        "  not a detail of a report",
        "10:00:02 [ERROR] deadlock: worker-1 (/users) waits 0.2s for sessions held by worker-0",
        "10:00:03 [ERROR] /login from dl1 failed: gave up waiting for lock 'storage'",
    ])  # fmt: skip
    lines = demos_locks.lock_reports(log).splitlines()
    assert [line.split("] ")[-1][:20] for line in lines] == [
        "possible circular lo", "  storage -> session", "  sessions -> storag",
        "deadlock: worker-1 (", "/login from dl1 fail",
    ]  # fmt: skip
    assert len(demos_locks.lock_reports(log, limit=2).splitlines()) == 2


def test_most_contended_and_compare_runs(tmp_path):
    b = TraceBuilder(locking="fine")
    b.task(1, "send", "worker-0", queued=0, start=0, end=1000)
    b.task(2, "send", "worker-1", queued=0, start=0, end=1000)
    b.lock("worker-0", "storage", task=1, wait=0, acquired=0, released=400)
    b.lock("worker-1", "storage", task=2, wait=100, acquired=400, released=600)
    b.lock("worker-1", "sessions", task=2, wait=700, acquired=700, released=800)
    trace = load_trace(b.write(tmp_path / "t.jsonl"))
    row = demos_locks.most_contended(trace)
    assert (row.name, row.contended, row.wait_total) == ("storage", 1, 300)
    summary = Summary(LoadSpec(), 1, 2.0, 2, 10, 10, 1000, {}, 0, {},
                      {"p50": 1.25, "p99": 3.5}, 0.1)  # fmt: skip
    table = demos_locks.compare_runs({"fine": (trace, summary)}).splitlines()
    assert table[0].split()[:2] == ["run", "msgs/s"]
    assert table[1].split() == ["fine", "500", "1.25", "3.50", "storage", "50", "%", "0", "µs",
                                "60", "%"]  # fmt: skip
