"""The Chrome Trace Event export (visualizer/perfetto.py): on synthetic
traces whose answers are worked out by hand, and on a real server's trace."""

from __future__ import annotations

import json
import numbers

from tests.support.chatclient import ServerProcess, account
from tests.support.tracegen import TraceBuilder
from visualizer.load import load_trace
from visualizer.perfetto import to_chrome, write_chrome

METADATA_NAMES = {"process_name", "thread_name", "thread_sort_index"}


def check_chrome_schema(doc: dict) -> None:
    """Every event has the fields its phase needs; the doc survives JSON."""
    assert set(doc) >= {"traceEvents", "displayTimeUnit", "otherData"}
    assert doc["displayTimeUnit"] == "ms"
    assert json.loads(json.dumps(doc)) == doc
    for e in doc["traceEvents"]:
        ph = e.get("ph")
        if ph == "X":
            assert {"name", "ph", "ts", "dur", "pid", "tid"} <= set(e), e
            assert isinstance(e["ts"], numbers.Real) and e["dur"] >= 0, e
        elif ph == "M":
            assert e["name"] in METADATA_NAMES and isinstance(e["args"], dict), e
        elif ph == "C":
            assert {"name", "ts", "args"} <= set(e), e
            assert e["args"] and all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) for v in e["args"].values()
            ), e
        elif ph in ("s", "f"):
            assert {"id", "ts", "pid", "tid", "name", "cat"} <= set(e), e
        elif ph == "i":
            assert e.get("s") in ("g", "p", "t") and "ts" in e, e
        else:
            raise AssertionError(f"unexpected phase {ph!r} in {e}")


def export(b: TraceBuilder, tmp_path) -> dict:
    doc = to_chrome(load_trace(b.write(tmp_path / "t.jsonl")))
    check_chrome_schema(doc)
    return doc


def small_trace() -> TraceBuilder:
    """Reactor, two workers and the watchdog; times in ns.

    worker-0 runs send (1), then queues and runs its commit (3), which never
    ends and keeps delivery and storage; worker-1 runs login (2), which
    waits 250..400 for storage that worker-0 releases at 400, then join (5),
    which waits for storage from 860, gives up at 900 and ends at 990. users
    (4) is queued at 960 and never starts; the reactor waits for storage
    from 970 to the end."""
    b = TraceBuilder(locking="fine", workers=2)
    for thread in ("MainThread", "worker-0", "worker-1"):
        b.event(0, thread, "thread_start")
    b.event(1000, "MainThread", "thread_end")
    b.task(1, "send", "worker-0", queued=100, start=150, end=600, conn=7)
    b.task(2, "login", "worker-1", queued=120, start=200, end=700, conn=8)
    b.task(3, "commit", "worker-0", queued=610, start=620, conn=7, queued_by="worker-0")
    b.task(5, "join", "worker-1", queued=780, start=800, end=990, conn=9)
    b.task(4, "users", "worker-0", queued=960, conn=8)
    b.lock("worker-0", "storage", task=1, wait=200, acquired=200, released=400)
    b.lock("worker-1", "storage", task=2, wait=250, acquired=400, released=500)
    b.lock("worker-1", "sessions", task=2, wait=450, acquired=450, released=480)
    b.lock("worker-0", "delivery", task=3, wait=630, acquired=630)
    b.lock("worker-0", "storage", task=3, wait=640, acquired=640)
    b.lock("worker-1", "storage", task=5, wait=860, timeout=900)
    b.lock("MainThread", "storage", task=0, wait=970)
    b.event(450, "worker-1", "order_violation", kind="circular",
            cycle=["storage", "sessions", "storage"], edges=[])  # fmt: skip
    b.event(950, "worker-0", "dropped", count=3)
    chain = [{"thread": "worker-1", "cmd": "join", "waits_for": "storage",
              "held_by": "worker-0", "seconds": 2.5}]  # fmt: skip
    b.event(980, "watchdog", "long_wait", chain=chain, cycle=None)
    return b


MAIN, W0, W1, WATCHDOG = 1, 2, 3, 4  # tids, in thread order


def events(doc: dict, ph: str, cat: str | None = None) -> list[dict]:
    return [e for e in doc["traceEvents"] if e["ph"] == ph and (cat is None or e.get("cat") == cat)]


def slices(doc: dict, cat: str) -> set[tuple]:
    return {
        (e["name"], e["tid"], e["ts"], e["dur"], json.dumps(e["args"], sort_keys=True))
        for e in events(doc, "X", cat)
    }


def args(**kw) -> str:
    return json.dumps(kw, sort_keys=True)


def test_to_chrome_tasks_are_complete_events_in_microseconds(tmp_path):
    doc = export(small_trace(), tmp_path)
    assert slices(doc, "task") == {
        ("send", W0, 0.15, 0.45, args(task=1, conn=7, queue_delay_us=0.05)),
        ("login", W1, 0.2, 0.5, args(task=2, conn=8, queue_delay_us=0.08)),
        # never ends: runs to its thread's last event (dropped at 950)
        ("commit", W0, 0.62, 0.33, args(task=3, conn=7, queue_delay_us=0.01)),
        ("join", W1, 0.8, 0.19, args(task=5, conn=9, queue_delay_us=0.02)),
    }


def test_to_chrome_lock_waits_only_when_waited_to_acquisition_or_end(tmp_path):
    doc = export(small_trace(), tmp_path)
    assert slices(doc, "lock_wait") == {
        ("wait storage", W1, 0.25, 0.15, args(task=2, acquired=True)),
        ("wait storage", W1, 0.86, 0.04, args(task=5, acquired=False)),  # to its timeout
        ("wait storage", MAIN, 0.97, 0.03, args(task=0, acquired=False)),  # to thread_end
    }


def test_to_chrome_lock_holds_end_at_release_or_thread_end(tmp_path):
    doc = export(small_trace(), tmp_path)
    assert slices(doc, "lock_hold") == {
        ("storage", W0, 0.2, 0.2, args(task=1, contended=False)),
        ("storage", W1, 0.4, 0.1, args(task=2, contended=True)),
        ("sessions", W1, 0.45, 0.03, args(task=2, contended=False)),
        ("delivery", W0, 0.63, 0.32, args(task=3, contended=False)),
        ("storage", W0, 0.64, 0.31, args(task=3, contended=False)),
    }


def test_to_chrome_marks_where_flows_start(tmp_path):
    doc = export(small_trace(), tmp_path)
    assert slices(doc, "queue") == {
        ("queue send", MAIN, 0.1, 0.0, args(task=1)),
        ("queue login", MAIN, 0.12, 0.0, args(task=2)),
        ("queue commit", W0, 0.61, 0.0, args(task=3)),
        ("queue join", MAIN, 0.78, 0.0, args(task=5)),
        ("queue users", MAIN, 0.96, 0.0, args(task=4)),
    }
    assert slices(doc, "lock_release") == {("release storage", W0, 0.4, 0.0, args(task=1))}


def test_to_chrome_names_process_and_threads_in_thread_order(tmp_path):
    b = TraceBuilder(locking="global")
    for thread in ("worker-10", "watchdog", "worker-2", "MainThread", "worker-0"):
        b.event(5, thread, "thread_start")
    doc = export(b, tmp_path)
    meta = events(doc, "M")
    assert doc["traceEvents"][: len(meta)] == meta  # metadata first
    process = [e for e in meta if e["name"] == "process_name"]
    assert [(e["pid"], e["args"]) for e in process] == [(1, {"name": "reactor-chat (global)"})]
    names = {e["tid"]: e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    order = {e["tid"]: e["args"]["sort_index"] for e in meta if e["name"] == "thread_sort_index"}
    by_index = [names[tid] for tid in sorted(order, key=order.get)]
    assert by_index == ["MainThread", "worker-0", "worker-2", "worker-10", "watchdog"]
    assert len(set(names)) == 5 and {e["pid"] for e in meta} == {1}


def test_to_chrome_other_data_holds_the_header(tmp_path):
    doc = export(small_trace(), tmp_path)
    other = doc["otherData"]
    assert other["locking"] == "fine" and other["workers"] == 2
    assert other["version"] == 1 and other["clock"] == "monotonic_ns"
    assert other["start_unix"] == 1_700_000_000.0 and other["sample"] == 1.0


def counter(doc: dict, name: str) -> list[tuple[float, dict]]:
    return [(e["ts"], e["args"]) for e in events(doc, "C") if e["name"] == name]


def test_to_chrome_pool_queue_counter_steps_exactly(tmp_path):
    doc = export(small_trace(), tmp_path)
    steps = [(ts, a["queued"]) for ts, a in counter(doc, "pool")]
    assert steps == [
        (0.0, 0), (0.1, 1), (0.12, 2), (0.15, 1), (0.2, 0),
        (0.61, 1), (0.62, 0), (0.78, 1), (0.8, 0), (0.96, 1),
    ]  # fmt: skip


def test_to_chrome_lock_waiter_counters_step_exactly(tmp_path):
    doc = export(small_trace(), tmp_path)
    steps = [(ts, a["waiters"]) for ts, a in counter(doc, "lock storage")]
    assert steps == [(0.0, 0), (0.25, 1), (0.4, 0), (0.86, 1), (0.9, 0), (0.97, 1), (1.0, 0)]
    assert counter(doc, "lock sessions") == [(0.0, {"waiters": 0})]
    assert counter(doc, "lock delivery") == [(0.0, {"waiters": 0})]


def test_to_chrome_counters_merge_changes_at_one_time(tmp_path):
    b = TraceBuilder()
    b.task(1, "send", "worker-0", queued=10, start=20, end=25)
    b.task(2, "send", "worker-1", queued=20, start=30, end=35)  # +1 and -1 at 20
    b.lock("worker-0", "storage", task=1, wait=0, acquired=21, released=22)
    b.lock("worker-1", "storage", task=2, wait=21, acquired=31, released=32)  # -1, +1 at 21
    doc = export(b, tmp_path)
    assert [(ts, a["queued"]) for ts, a in counter(doc, "pool")] == [
        (0.0, 0), (0.01, 1), (0.03, 0),
    ]  # fmt: skip
    assert [(ts, a["waiters"]) for ts, a in counter(doc, "lock storage")] == [
        (0.0, 1), (0.031, 0),
    ]  # fmt: skip


def flows(doc: dict) -> dict[int, tuple[dict, dict]]:
    """id -> (its "s", its "f"); asserts each id has exactly one of each."""
    starts = [e for e in doc["traceEvents"] if e["ph"] == "s"]
    ends = [e for e in doc["traceEvents"] if e["ph"] == "f"]
    assert len({e["id"] for e in starts}) == len(starts)
    assert len({e["id"] for e in ends}) == len(ends)
    assert {e["id"] for e in starts} == {e["id"] for e in ends}
    by_id = {e["id"]: e for e in ends}
    out = {}
    for s in starts:
        f = by_id[s["id"]]
        assert (s["name"], s["cat"]) == (f["name"], f["cat"]) and f["bp"] == "e"
        out[s["id"]] = (s, f)
    return out


def test_to_chrome_flows_link_queuing_to_start_and_release_to_acquisition(tmp_path):
    doc = export(small_trace(), tmp_path)
    pairs = {(s["cat"], (s["tid"], s["ts"]), (f["tid"], f["ts"])) for s, f in flows(doc).values()}
    assert pairs == {
        ("task", (MAIN, 0.1), (W0, 0.15)),  # send
        ("task", (MAIN, 0.12), (W1, 0.2)),  # login
        ("task", (W0, 0.61), (W0, 0.62)),  # commit, queued by its worker
        ("task", (MAIN, 0.78), (W1, 0.8)),  # join; users never started: no flow
        ("lock", (W0, 0.4), (W1, 0.4)),  # storage: send's release -> login's wait
    }


BINDS_TO = {("s", "task"): "queue", ("f", "task"): "task",
            ("s", "lock"): "lock_release", ("f", "lock"): "lock_hold"}  # fmt: skip


def check_flows_follow_their_slices(doc: dict) -> None:
    """Perfetto binds a flow event to the slice last begun on its thread
    when it reads the event: that must be the slice it is meant for."""
    last_slice: dict[int, dict] = {}
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            last_slice[e["tid"]] = e
        elif e["ph"] in ("s", "f"):
            x = last_slice[e["tid"]]
            assert (x["cat"], x["ts"]) == (BINDS_TO[e["ph"], e["cat"]], e["ts"]), (e, x)


def test_to_chrome_each_flow_follows_the_slice_it_binds_to(tmp_path):
    check_flows_follow_their_slices(export(small_trace(), tmp_path))


def test_to_chrome_lock_flow_needs_a_waiter_of_that_release(tmp_path):
    b = TraceBuilder()
    b.lock("worker-0", "storage", task=1, wait=0, acquired=0, released=10)
    b.lock("worker-1", "storage", task=2, wait=5, acquired=10, released=20)  # waited for 1
    b.lock("worker-0", "storage", task=3, wait=30, acquired=40, released=50)  # not for 2
    b.lock("worker-1", "storage", task=4, wait=50, acquired=50, released=60)  # free
    doc = export(b, tmp_path)
    pairs = [((s["tid"], s["ts"]), (f["tid"], f["ts"])) for s, f in flows(doc).values()]
    assert pairs == [((1, 0.01), (2, 0.01))]


def test_to_chrome_orders_events_at_one_time_for_perfetto(tmp_path):
    """Perfetto binds a flow event to the slice last begun on its thread:
    at 400 worker-0 releases storage to worker-1, so the release mark comes
    before the "s", and worker-1's hold before the "f"; at 100 the queue
    mark comes before its "s"."""
    doc = export(small_trace(), tmp_path)
    evs = doc["traceEvents"]
    body = [e for e in evs if e["ph"] != "M"]
    assert [e["ts"] for e in body] == sorted(e["ts"] for e in body)
    at_400 = [(e["ph"], e.get("cat"), e["tid"]) for e in body if e["ts"] == 0.4]
    assert at_400.index(("X", "lock_release", W0)) < at_400.index(("s", "lock", W0))
    assert at_400.index(("X", "lock_hold", W1)) < at_400.index(("f", "lock", W1))
    at_100 = [(e["ph"], e.get("cat")) for e in body if e["ts"] == 0.1]
    assert at_100.index(("X", "queue")) < at_100.index(("s", "task"))
    # nested slices starting together: the longer (the parent) first
    at_630 = [(e["name"], e["dur"]) for e in body if e["ph"] == "X" and e["ts"] == 0.63]
    assert at_630 == [("delivery", 0.32)]


def test_to_chrome_reports_are_global_instants_with_their_fields(tmp_path):
    doc = export(small_trace(), tmp_path)
    instants = events(doc, "i")
    assert [(e["name"], e["ts"], e["tid"], e["s"]) for e in instants] == [
        ("order_violation", 0.45, W1, "g"),
        ("dropped", 0.95, W0, "g"),
        ("long_wait", 0.98, WATCHDOG, "g"),
    ]
    violation, dropped, long_wait = (e["args"] for e in instants)
    assert violation["kind"] == "circular"
    assert violation["cycle"] == ["storage", "sessions", "storage"]
    assert dropped["count"] == 3 and dropped["thread"] == "worker-0"
    assert long_wait["cycle"] is None and long_wait["chain"][0]["held_by"] == "worker-0"


def test_write_chrome_writes_the_same_document(tmp_path):
    trace = load_trace(small_trace().write(tmp_path / "t.jsonl"))
    write_chrome(trace, tmp_path / "t.json")
    written = json.loads((tmp_path / "t.json").read_text())
    assert written == to_chrome(trace)


def test_to_chrome_real_server_trace_has_every_task(tmp_path):
    path = tmp_path / "t.jsonl"
    srv = ServerProcess(tmp_path / "chat.db", "--trace", str(path), "--rate-limit", "0").start()
    try:
        alice, bob = account(srv), account(srv)
        for i in range(3):
            alice.ok(f"/send {bob.name} hi {i}")
            bob.ok(f"/send {alice.name} hello {i}")
        alice.close()
        bob.close()
    finally:
        assert srv.stop() == 0
    trace = load_trace(path)
    doc = to_chrome(trace)
    check_chrome_schema(doc)
    ran = {r.task for r in trace.tasks.values() if r.start is not None}
    assert ran and {"send", "login", "commit"} <= {r.cmd for r in trace.tasks.values()}
    exported = [e["args"]["task"] for e in events(doc, "X", "task")]
    assert sorted(exported) == sorted(ran)
    holds = [s for s in trace.locks if s.acquired is not None]
    assert len(events(doc, "X", "lock_hold")) == len(holds)
    flows(doc)
    check_flows_follow_their_slices(doc)
    names = {e["args"]["name"] for e in events(doc, "M") if e["name"] == "thread_name"}
    assert {"MainThread", "worker-0"} <= names
