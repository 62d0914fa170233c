"""The lock-order checker and the deadlock watchdog (reactor/sync/lockdep.py):
on real locks and threads, and on real servers with `--locking inverted`."""

from __future__ import annotations

import json
import threading

import pytest

from reactor.config import Config
from reactor.sync import tasks
from reactor.sync.instrument import LockHooks
from reactor.sync.lockdep import MAX_REPORTS, OrderChecker, Watchdog
from reactor.sync.locks import SESSIONS, STORAGE, NamedLock
from tests.support.chatclient import Client, ServerProcess, account, fresh_name, in_process


def in_task(cmd, fn):
    tasks.enter(tasks.Task(1, cmd, 1, False))
    try:
        fn()
    finally:
        tasks.enter(None)


def test_watchdog_does_not_call_a_wait_that_just_ended_a_deadlock():
    # The watchdog reads its table of waits, then each lock's owner: a thread
    # may get its lock in between. It must not report it as waiting for
    # itself (seen with 1000 threads: "cycle: conn-871 -> conn-871").
    watchdog = Watchdog(threshold=0.1)
    lock = NamedLock("storage", LockHooks(watchdog))
    me = threading.get_ident()
    stale = {me: (lock, 0, "conn-871", "send")}
    with lock:
        watchdog._report(me, stale, now=10**9, names={})
        watchdog._waits[me] = stale[me]  # still listed, but holds the lock
        watchdog.check(now=10**9)
    watchdog._waits.clear()
    assert watchdog.reports == []


def test_watchdog_details_a_few_long_waits_a_check_and_counts_the_rest(caplog):
    watchdog = Watchdog(threshold=0.1)
    lock = NamedLock("storage")
    with lock:  # held by this thread, which waits for nothing
        watchdog._waits.update({-i: (lock, 0, f"conn-{i}", "send") for i in range(1, 41)})
        watchdog.check(now=10**9)
        watchdog.check(now=2 * 10**9)  # the same waits: not again
    assert len(watchdog.reports) == MAX_REPORTS
    assert all(r["cycle"] is None for r in watchdog.reports)
    assert "and 35 more threads wait longer than 0.1s" in caplog.text


def test_checker_reports_an_inversion_once_with_who_made_each_edge():
    checker = OrderChecker()
    hooks = LockHooks(checker)
    a, b = NamedLock("sessions", hooks), NamedLock("storage", hooks)

    def a_then_b():
        with a, b:
            pass

    def b_then_a():
        with b, a:
            pass

    t = threading.Thread(target=in_task, args=("users", b_then_a), name="worker-7")
    t.start()
    t.join()
    assert checker.reports == []  # one order alone is fine
    for _ in range(3):
        in_task("login", a_then_b)  # the opposite order, three times
    assert len(checker.reports) == 1  # reported once per cycle
    report = checker.reports[0]
    assert report["kind"] == "circular"
    assert report["cycle"][0] == report["cycle"][-1]
    assert set(report["cycle"]) == {"sessions", "storage"}
    made = {(e["from"], e["to"]): (e["thread"], e["cmd"]) for e in report["edges"]}
    assert made[("storage", "sessions")] == ("worker-7", "users")
    assert made[("sessions", "storage")] == (threading.current_thread().name, "login")


def test_checker_finds_longer_cycles_and_recursion():
    checker = OrderChecker()
    hooks = LockHooks(checker)
    x, y, z = (NamedLock(n, hooks) for n in ("x", "y", "z"))
    for first, second in ((x, y), (y, z)):
        with first, second:
            pass
    assert checker.reports == []
    with z, x:  # closes x -> y -> z -> x
        pass
    assert checker.reports[0]["cycle"] == ["z", "x", "y", "z"]
    lock = NamedLock("group:os2", hooks)
    lock.acquire()
    checker.before_acquire(lock)  # what acquire() does first; it would then block forever
    assert checker.reports[-1]["kind"] == "recursive"
    assert checker.reports[-1]["lock"] == "group:os2"
    lock.release()


def test_checker_ignores_two_locks_of_one_class():
    checker = OrderChecker()
    hooks = LockHooks(checker)
    a, b = NamedLock("group:a", hooks), NamedLock("group:b", hooks)
    with a, b:
        pass
    with b, a:
        pass
    assert checker.reports == []


def test_watchdog_reports_a_real_deadlock_with_its_cycle():
    watchdog = Watchdog(threshold=0.2)
    hooks = LockHooks(watchdog)
    a, b = NamedLock("sessions", hooks), NamedLock("storage", hooks)
    both_hold_one = threading.Barrier(2)
    watchdog.start()

    def take(first, second, name):
        def go():
            with first:
                both_hold_one.wait()
                # Each now waits for the other's lock: a real deadlock,
                # broken only by the timeout, well after the watchdog spoke.
                if second.acquire(timeout=1.5):
                    second.release()

        return threading.Thread(target=go, name=name)

    threads = [take(a, b, "left"), take(b, a, "right")]
    for t in threads:
        t.start()
    with watchdog.reported:
        assert watchdog.reported.wait_for(lambda: any(r["cycle"] for r in watchdog.reports), 10)
    # Break the tie: the first thread to time out lets the other through.
    for t in threads:
        t.join()
    watchdog.stop()
    report = next(r for r in watchdog.reports if r["cycle"])
    assert set(report["cycle"]) == {"left", "right"}
    assert {c["waits_for"] for c in report["chain"]} == {"sessions", "storage"}


def test_inverted_strategy_inversion_is_reported_over_the_wire(tmp_path):
    trace = tmp_path / "inverted.jsonl"
    srv = ServerProcess(tmp_path / "chat.db", "--locking", "inverted", "--trace", str(trace))
    srv.start()
    try:
        alice = account(srv)  # /login takes sessions, then storage
        alice.ok("/users")  # /users takes storage, then sessions: the cycle
        srv.wait_for_log("possible circular locking dependency")
        bob = account(srv)
        bob.ok("/users")
        assert alice.ok("/stats")["order_violations"] == 1  # once per cycle
    finally:
        assert srv.stop() == 0
    violations = [
        json.loads(x) for x in trace.read_text().splitlines()[1:] if "order_violation" in x
    ]
    assert len(violations) == 1
    edges = {(e["from"], e["to"]): e["cmd"] for e in violations[0]["edges"]}
    assert edges[("storage", "sessions")] == "users"
    assert edges[("sessions", "storage")] == "login"


@pytest.fixture
def inverted_server(tmp_path):
    """An in-process server, so the test can hold one of its locks itself."""
    config = Config(
        port=0, db=str(tmp_path / "chat.db"), locking="inverted", watchdog=0.2,
        trace=str(tmp_path / "deadlock.jsonl"), rate_limit=0,
    )  # fmt: skip
    with in_process(config) as server:
        yield server


def test_watchdog_breaks_a_provoked_deadlock_and_server_recovers(inverted_server):
    server = inverted_server
    watchdog = server.watchdog
    alice = Client(server.address)
    name = fresh_name()
    alice.ok(f"/register {name} pw")
    alice.ok(f"/login {name} pw")
    # Give up later than the default 4 x 0.2 s, so that on a busy machine the
    # watchdog still sees the cycle well before /users gives up.
    server.locks.timeout = 2.0
    sessions, storage = server.locks.lock(SESSIONS), server.locks.lock(STORAGE)
    sessions.acquire()  # this thread plays a command that holds sessions...
    try:
        alice.send("/users")  # ...while /users takes storage, then waits for sessions
        with watchdog.reported:
            assert watchdog.reported.wait_for(lambda: watchdog.reports, 10)
        assert watchdog.reports[0]["chain"][0]["waits_for"] == "sessions"
        # Now this thread waits for storage, which /users holds: a cycle.
        got = storage.acquire(timeout=10)
        assert got  # /users gave up (inverted waits time out) and released it
        storage.release()
    finally:
        sessions.release()
    reply = alice.reply()
    assert (reply["cmd"], reply["code"]) == ("users", "internal")
    cycles = [r for r in watchdog.reports if r["cycle"]]
    stuck = next(c["thread"] for c in cycles[0]["chain"] if c["cmd"] == "users")
    assert set(cycles[0]["cycle"]) == {threading.current_thread().name, stuck}
    assert alice.ok("/ping alive")["token"] == "alive"
    assert len(alice.ok("/users")["users"]) >= 1
