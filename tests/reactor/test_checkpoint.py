"""The WAL checkpointer on a real SQLite file: the server's connection never
checkpoints in a commit, the checkpointer's thread does, and the log then
starts over instead of growing."""

from __future__ import annotations

import os
import sqlite3
import time

from reactor.chat.checkpoint import Checkpointer
from reactor.chat.storage import Storage

MB = 1024 * 1024


def write(storage: Storage, nbytes: int) -> None:
    """One committed transaction of `nbytes` on the storage's own connection."""
    db = storage._db
    db.execute("CREATE TABLE IF NOT EXISTS ballast (x BLOB)")
    db.execute("BEGIN")
    db.execute("INSERT INTO ballast VALUES (randomblob(?))", (nbytes,))
    db.execute("COMMIT")


def wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_commits_leave_the_log_to_the_checkpointer(tmp_path):
    path = str(tmp_path / "chat.db")
    storage = Storage(path, autocheckpoint=False)
    try:
        for _ in range(3):  # 6 MB: past SQLite's own 4 MB checkpoint point
            write(storage, 2 * MB)
        assert os.path.getsize(path) < MB  # nothing copied into the database yet
        assert os.path.getsize(path + "-wal") >= 6 * MB
    finally:
        storage._db.close()


def test_the_checkpointer_copies_the_log_and_it_starts_over(tmp_path):
    path = str(tmp_path / "chat.db")
    storage = Storage(path, autocheckpoint=False)
    checkpointer = Checkpointer(path, wal_bytes=MB, every=0.01)
    checkpointer.start()
    try:
        write(storage, 3 * MB)
        # Two more runs: the second began after the commit, so it copied it all.
        after = checkpointer.checkpoints
        assert wait_for(lambda: checkpointer.checkpoints >= after + 2), "never checkpointed"
        assert os.path.getsize(path) >= 3 * MB
        wal = os.path.getsize(path + "-wal")
        write(storage, 3 * MB)  # after a full checkpoint the log is reused
        assert os.path.getsize(path + "-wal") <= wal + 64 * 1024
        after = checkpointer.checkpoints
        assert wait_for(lambda: checkpointer.checkpoints >= after + 2)
        assert os.path.getsize(path) >= 6 * MB
    finally:
        checkpointer.stop()
        storage.close()
    with sqlite3.connect(path) as db:  # every byte is in the database
        (total,) = db.execute("SELECT sum(length(x)) FROM ballast").fetchone()
    assert total == 6 * MB


def test_stop_ends_the_thread_at_once(tmp_path):
    path = str(tmp_path / "chat.db")
    Storage(path).close()
    checkpointer = Checkpointer(path, every=3600)
    checkpointer.start()
    started = time.monotonic()
    checkpointer.stop()
    assert time.monotonic() - started < 1.0
    assert checkpointer.checkpoints == 0
