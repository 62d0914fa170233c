"""The WAL checkpointer: copies committed pages from SQLite's write-ahead
log into the database file, off the path that acknowledges messages.

Owns: one thread and its own `sqlite3` connection to the database file,
used for nothing but `PRAGMA wal_checkpoint(PASSIVE)`. Must not: read or
write chat data, take the server's locks, or touch sockets.

Why: by default SQLite checkpoints inside the commit that pushes the log
past 1,000 pages, so that one commit also copies ~4 MB and syncs the
database file: every message waiting on it sees a multi-millisecond stall
(it was most of the send→delivery p99 under light load). The server's
connection turns that off (`Storage(autocheckpoint=False)`) and this
thread checkpoints instead. A PASSIVE checkpoint never blocks the writer or
waits for it (SQLite's own WAL locks keep the two apart, no busy handler
is called), and the sqlite3 module lets go of the GIL while SQLite works,
so the copy and its sync overlap the server's work. Once a checkpoint has
copied the whole log, the writer's next transaction starts the log over.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

log = logging.getLogger("reactor.chat.checkpoint")

#: How often the thread looks at the log's size.
CHECK_SECONDS = 0.25
#: Checkpoint once the log is this large (SQLite's own default is 1,000
#: pages of 4 KiB).
WAL_BYTES = 4 * 1024 * 1024


class Checkpointer:
    """Checkpoints the WAL of database `path` from a thread of its own,
    looking every `every` seconds for a log of `wal_bytes` or more."""

    def __init__(
        self, path: str, *, wal_bytes: int = WAL_BYTES, every: float = CHECK_SECONDS
    ) -> None:
        self.path = path
        self.wal_bytes = wal_bytes
        self.every = every
        self.checkpoints = 0  # completed runs, for tests and the log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)

    def start(self) -> None:
        """Start watching the log."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (the final checkpoint is `Storage.close`'s)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _wal_size(self) -> int:
        try:
            return os.stat(self.path + "-wal").st_size
        except OSError:  # no log yet, or it was just removed
            return 0

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self.every):
                if self._wal_size() >= self.wal_bytes:
                    self.checkpoint(db)
        except sqlite3.Error:
            log.exception("WAL checkpoints stopped; the log grows until the server stops")
        finally:
            db.close()

    def checkpoint(self, db: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint on `db` (what SQLite cannot copy yet waits
        for the next one)."""
        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
