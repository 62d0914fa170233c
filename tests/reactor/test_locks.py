"""Named locks and the two locking strategies (reactor/sync/locks.py)."""

from __future__ import annotations

import threading

import pytest

from reactor.errors import LockMisuse
from reactor.sync.locks import (
    DELIVERY,
    GROUPS,
    SESSIONS,
    STORAGE,
    FineLocking,
    GlobalLocking,
    NamedLock,
    group_key,
    make_locking,
)


def test_named_lock_has_name_and_class():
    lock = NamedLock("group:os2")
    assert (lock.name, lock.cls) == ("group:os2", "group")
    assert NamedLock("storage").cls == "storage"


def test_named_lock_release_by_another_thread_is_refused():
    lock = NamedLock("sessions")
    lock.acquire()
    errors = []

    def other():
        try:
            lock.release()
        except LockMisuse as exc:
            errors.append(str(exc))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors == ["can't release lock 'sessions': this thread does not hold it"]
    assert lock.held_by_me()
    lock.release()
    assert not lock.locked()


def test_fine_takes_keys_in_documented_order_whatever_order_is_given():
    fine = FineLocking()
    taken = []

    class Recording(NamedLock):
        def acquire(self, timeout=-1):
            taken.append(self.name)
            return super().acquire(timeout)

    for key in (DELIVERY, GROUPS, SESSIONS, STORAGE, group_key("b"), group_key("A")):
        fine._table[key] = Recording(key)
    with fine.hold(STORAGE, SESSIONS, group_key("b"), GROUPS, group_key("A"), DELIVERY):
        pass
    assert taken == ["delivery", "groups", "group:a", "group:b", "sessions", "storage"]
    assert not any(lock.locked() for lock in fine.locks())


def test_fine_refuses_a_key_that_comes_before_one_held():
    fine = FineLocking()
    with fine.hold(SESSIONS), pytest.raises(LockMisuse, match="lock order"):
        fine.hold(GROUPS)  # refused before anything is acquired
    with fine.hold(STORAGE), pytest.raises(LockMisuse):
        fine.hold(STORAGE)  # recursion on a non-reentrant lock
    # Nested in order is fine, and everything is released afterwards.
    with fine.hold(DELIVERY), fine.hold(group_key("x")), fine.hold(STORAGE):
        pass
    assert not any(lock.locked() for lock in fine.locks())


def test_fine_group_locks_are_one_per_name_case_insensitive():
    fine = FineLocking()
    assert fine.lock(group_key("OS2")) is fine.lock(group_key("os2"))
    assert fine.lock(group_key("os2")).name == "group:os2"


def test_global_is_one_lock_and_nested_holds_are_free():
    glob = GlobalLocking()
    with glob.hold(GROUPS, STORAGE):
        assert glob.lock.held_by_me()
        with glob.hold(SESSIONS):  # already held: no second acquire
            assert glob.lock.held_by_me()
        assert glob.lock.held_by_me()
    assert not glob.lock.locked()
    assert [lock.name for lock in glob.locks()] == ["global"]


def test_global_excludes_other_threads_while_held():
    glob = GlobalLocking()
    inside, release = threading.Event(), threading.Event()

    def holder():
        with glob.hold(STORAGE):
            inside.set()
            release.wait()

    t = threading.Thread(target=holder)
    t.start()
    inside.wait()
    # Any key is the one lock: this thread cannot have it while it is held.
    assert glob.lock.acquire(timeout=0) is False
    release.set()
    t.join()
    with glob.hold(SESSIONS):
        assert glob.lock.held_by_me()


def test_make_locking_by_name():
    assert make_locking("global").name == "global"
    assert make_locking("fine").name == "fine"
    with pytest.raises(ValueError, match="unknown locking strategy"):
        make_locking("optimistic")
