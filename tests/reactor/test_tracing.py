"""The concurrency trace (docs/trace.md) and /stats, from real servers under
concurrent clients, under both locking strategies."""

from __future__ import annotations

import json
import os
import select
import signal
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

from tests.reactor.test_guarantees import run_together
from tests.support.chatclient import account, fresh_name

CLIENTS = 4
MESSAGES = 25


def read_trace(path: Path) -> tuple[dict, list[dict]]:
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    return header, [json.loads(x) for x in lines[1:]]


def chat_concurrently(srv) -> list:
    """Clients that send private and group messages at once; kept open."""
    clients = [account(srv) for _ in range(CLIENTS)]
    g = fresh_name("g")
    clients[0].ok(f"/group {g} " + " ".join(c.name for c in clients[1:]))

    def talk(c, peer):
        def go():
            for i in range(MESSAGES):
                c.send(f"/send {peer.name} {i}")
                c.send(f"/sendgroup {g} {i}")
            for _ in range(2 * MESSAGES):
                assert c.reply()["type"] == "ok"

        return go

    run_together([talk(c, clients[(i + 1) % CLIENTS]) for i, c in enumerate(clients)])
    return clients


def check_well_formed(events: list[dict]) -> None:
    """Per thread: ts order; wait -> acquired -> released for each lock, in
    the same task; task start/end paired; lock events inside their task."""
    by_thread = defaultdict(list)
    for e in events:
        by_thread[e["tid"]].append(e)
    for evs in by_thread.values():
        assert [e["ts"] for e in evs] == sorted(e["ts"] for e in evs)
        waiting, held, task = {}, {}, None
        for e in evs:
            ev = e["ev"]
            if ev == "task_start":
                assert task is None
                task = e["task"]
            elif ev == "task_end":
                assert task == e["task"]
                task = None
            elif ev == "lock_wait":
                assert e["lock"] not in waiting and e["lock"] not in held
                assert e["task"] == task
                waiting[e["lock"]] = e["task"]
            elif ev == "lock_acquired":
                assert waiting.pop(e["lock"]) == e["task"]
                held[e["lock"]] = e["task"]
            elif ev == "lock_released":
                assert held.pop(e["lock"]) == e["task"] == task
            elif ev == "lock_timeout":
                assert waiting.pop(e["lock"]) == e["task"]
        assert not waiting and not held and task is None


def check_loop_busy(events: list[dict], model: str) -> None:
    """The loop thread's `loop_busy` events tile its life, each busy for at
    most its span, and it did work; no other thread has any."""
    busy = [e for e in events if e["ev"] == "loop_busy"]
    if model == "threaded":
        assert busy == []  # no selector loop runs the chat there
        return
    assert busy and {e["thread"] for e in busy} == {"MainThread"}
    life = {e["ev"]: e["ts"] for e in events if e["thread"] == "MainThread"
            and e["ev"] in ("thread_start", "thread_end")}  # fmt: skip
    start, end = life["thread_start"], life["thread_end"]
    spans = [(e["from"], e["ts"]) for e in busy]
    assert all(prev[1] == nxt[0] for prev, nxt in pairwise(spans))
    assert start <= spans[0][0] and spans[-1][1] <= end
    assert all(0 <= e["busy_ns"] <= e["ts"] - e["from"] for e in busy)
    assert sum(e["busy_ns"] for e in busy) > 0


def test_trace_is_well_formed_and_matches_stats(start_server, tmp_path, locking, model):
    trace = tmp_path / "run.jsonl"
    srv = start_server("--trace", str(trace), "--rate-limit", "0")
    clients = chat_concurrently(srv)
    stats = clients[0].ok("/stats")
    for c in clients:
        c.close()
    assert srv.stop() == 0
    header, events = read_trace(trace)
    assert header["type"] == "header" and header["version"] == 1
    assert header["clock"] == "monotonic_ns" and header["locking"] == locking
    assert header["workers"] == (0 if model == "inline" else 4) and header["sample"] == 1.0
    assert all({"ts", "tid", "thread", "ev"} <= e.keys() for e in events)
    check_well_formed(events)
    # Every task was queued, then ran (commits are queued by their worker).
    queued = {e["task"]: e for e in events if e["ev"] == "task_queued"}
    started = {e["task"]: e for e in events if e["ev"] == "task_start"}
    assert set(queued) == set(started)
    assert all(queued[t]["ts"] <= started[t]["ts"] for t in queued)
    assert "commit" in {e["cmd"] for e in started.values()}
    # Every thread is announced and closed: the reactor and all 4 workers,
    # the inline reactor alone, or the accepting thread and one thread per
    # connection.
    opened = {e["thread"] for e in events if e["ev"] == "thread_start"}
    closed = {e["thread"] for e in events if e["ev"] == "thread_end"}
    if model == "reactor":
        expected = {"MainThread", "worker-0", "worker-1", "worker-2", "worker-3"}
    elif model == "inline":
        expected = {"MainThread"}
    else:
        expected = {"MainThread"} | {f"conn-{i + 1}" for i in range(len(clients))}
    assert expected <= opened == closed
    # /stats counted exactly the acquisitions, and the contended ones (the
    # ones whose wait and acquisition differ in ts), traced before it ran.
    stats_ts = next(e["ts"] for e in events if e["ev"] == "task_start" and e["cmd"] == "stats")
    before = [e for e in events if e["ts"] < stats_ts]
    waits = {}
    acquired, contended = Counter(), Counter()
    for e in before:
        if e["ev"] == "lock_wait":
            waits[e["tid"], e["lock"]] = e["ts"]
        elif e["ev"] == "lock_acquired":
            acquired[e["lock"]] += 1
            contended[e["lock"]] += waits.pop((e["tid"], e["lock"])) != e["ts"]
    # (threaded: a connection's `outbuf` lock is also taken outside any task,
    # writing after a batch; the trace records the lock uses of tasks.)
    chat_locks = [s for s in stats["locks"] if s["acquisitions"] and s["class"] != "outbuf"]
    acquired = Counter({k: v for k, v in acquired.items() if not k.startswith("outbuf:")})
    assert {s["name"]: s["acquisitions"] for s in chat_locks} == dict(acquired)
    assert {s["name"]: s["contended"] for s in chat_locks} == {
        lock: contended[lock] for lock in acquired
    }
    check_loop_busy(events, model)
    # No lock-order problem under the real strategies.
    assert stats["order_violations"] == 0
    assert not [e for e in events if e["ev"] in ("order_violation", "deadlock")]
    assert "circular locking" not in srv.log_text()


def test_trace_sampled_keeps_only_whole_tasks(start_server, tmp_path):
    trace = tmp_path / "sampled.jsonl"
    srv = start_server("--trace", str(trace), "--trace-sample", "0.3", "--rate-limit", "0")
    for c in chat_concurrently(srv):
        c.close()
    assert srv.stop() == 0
    header, events = read_trace(trace)
    assert header["sample"] == 0.3
    check_well_formed(events)
    kinds = defaultdict(set)
    for e in events:
        if "task" in e:
            kinds[e["task"]].add(e["ev"])
    commands = [t for t, k in kinds.items() if "task_queued" in k]
    assert commands and all({"task_start", "task_end"} <= kinds[t] for t in commands)
    assert all("task_start" in k for k in kinds.values())
    # 2 * 4 * 25 messages alone made 200 commands: a fraction was kept.
    assert 20 < len(commands) < 200


def test_trace_is_valid_json_lines_after_sigkill(start_server, tmp_path):
    trace = tmp_path / "killed.jsonl"
    srv = start_server("--trace", str(trace), "--rate-limit", "0")
    alice, bob = account(srv), account(srv)
    for i in range(200):
        alice.send(f"/send {bob.name} {i}")
    alice.reply()
    writer = int(Path(f"/proc/{srv.proc.pid}/task/{srv.proc.pid}/children").read_text().split()[0])
    exited = os.pidfd_open(writer)  # an event when the writer process ends
    srv.proc.send_signal(signal.SIGKILL)
    srv.wait()
    assert select.select([exited], [], [], 10)[0], "the trace writer did not finish"
    os.close(exited)
    lines = trace.read_text().splitlines()
    assert json.loads(lines[0])["type"] == "header"
    assert all(json.loads(x)["ev"] for x in lines[1:])  # every line is complete JSON
    assert any(json.loads(x)["ev"] == "task_end" for x in lines[1:])


def test_stats_in_text_mode_is_an_aligned_table(server):
    c = account(server)
    c.send("/mode text")
    c.readline()
    c.send("/stats")
    assert c.readline() == "System: Lock statistics (times in µs)\n"
    header = c.readline()
    assert header.split() == [
        "lock", "acq", "contended", "wait-total", "wait-max", "hold-total", "hold-max",
    ]  # fmt: skip
    rows = []
    while not (line := c.readline()).startswith("locking "):
        rows.append(line)
    assert rows and all(len(r) == len(header) for r in rows)
    assert "workers" in line and "busy" in line
    c.send("/ping after")
    assert c.readline() == "System: pong after\n"


def test_trace_full_buffer_drops_and_counts(tmp_path, monkeypatch):
    from reactor.sync import tasks
    from reactor.tracing import recorder as tracing

    monkeypatch.setattr(tracing, "BUFFER_CAP", 10)
    path = tmp_path / "small.jsonl"
    tracer = tracing.Tracer(str(path), locking="fine", workers=1)
    task = tasks.Task(1, "send", 1, True)
    for _ in range(500):
        tracer.task_start(task)
    tracer.close()
    _, events = read_trace(path)
    starts = sum(1 for e in events if e["ev"] == "task_start")
    dropped = sum(e["count"] for e in events if e["ev"] == "dropped")
    assert dropped > 0 and starts + dropped == 500
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)  # one thread
