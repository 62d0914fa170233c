"""Which process owns a database file: one server per `chat.db`.

Owns: the owner file `<db>.lock`, its exclusive `flock` and the process id
written in it. Must not: open the database or take the server's locks.

Two servers on one database would each keep their own sessions, cursors
and commit point: users of one would never be pushed messages stored
through the other. So a server takes this lock before it opens the
database and keeps it for its life; the kernel lets go of it when the
process ends, however it ends (kill -9 included), so a crash leaves no
stale lock. The file itself stays; only its lock means anything.
"""

from __future__ import annotations

import fcntl
import os

from reactor.errors import DatabaseInUse


class DatabaseOwner:
    """The claim of this process on database `db` (`claim()`, `release()`)."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.path = db + ".lock"
        self._fd: int | None = None

    def claim(self) -> None:
        """Hold the lock, or raise DatabaseInUse naming the holder's pid. A
        database in memory is nobody else's: nothing to claim."""
        if self.db == ":memory:" or self.db.startswith("file::memory:"):
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise DatabaseInUse(
                f"{self.db} is in use by process {holder} (another chat-server?): "
                f"stop it, or give this one another --db"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (the file stays, unlocked)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
