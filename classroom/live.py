"""A real chat server for a demo or a notebook cell: started on a free
loopback port in a process of its own, stopped gracefully.

Owns: starting `python -m reactor` with the options a scenario asks for,
learning its port from its log, keeping its log, and stopping it (SIGTERM,
then waiting for the graceful shutdown; the trace is complete once it has
exited); the fresh database and trace paths a run starts from
(`fresh_paths`) and a stop that must be clean (`stop_cleanly`). Must not:
generate load or draw (loadgen/run.py, visualizer/).

    with LiveServer(tmp / "chat.db", "--locking", "fine", trace=tmp / "t.jsonl") as srv:
        loadgen.run(LoadSpec(port=srv.port, clients=10, duration=1))
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.servers import Running


class LiveServer:
    """`chat-server --auth none --rate-limit 0 <args>` on 127.0.0.1, a free port.

    `trace` adds `--trace FILE`. Use as a context manager, or `start()` /
    `stop()`. `log` holds the server's log lines (stderr)."""

    def __init__(self, db: Path, *args: str, trace: Path | None = None) -> None:
        self.db = Path(db)
        self.trace = Path(trace) if trace else None
        self.args = ["--ip", "127.0.0.1", "--port", "0", "--db", str(db), "--auth", "none",
                     "--rate-limit", "0", *args]  # fmt: skip
        if trace:
            self.args += ["--trace", str(trace)]
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log: list[str] = []
        self._running: Running | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> LiveServer:
        self._running = Running(
            [sys.executable, "-m", "reactor", *self.args], name="the server", keep_log=True
        )
        self.proc, self.port, self.log = self._running.proc, self._running.port, self._running.log
        return self

    def stop(self, timeout: float = 30) -> int:
        """Graceful stop (SIGTERM); returns the exit code (0 when clean)."""
        return self._running.stop(timeout) if self._running is not None else 0

    def wait_for_log(self, pattern, timeout: float) -> bool:
        """Block until a log line matches `pattern` (a compiled regex) or
        `timeout` passes; True if one did."""
        return self._running.wait_for_log(pattern, timeout)

    def log_text(self) -> str:
        return "".join(self.log)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fresh_paths(folder: Path, name: str) -> tuple[Path, Path]:
    """`folder/<name>.db` and `folder/<name>.jsonl`, nothing left of an earlier run."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".db", ".db-wal", ".db-shm", ".jsonl"):
        (folder / f"{name}{suffix}").unlink(missing_ok=True)
    return folder / f"{name}.db", folder / f"{name}.jsonl"


def stop_cleanly(srv: LiveServer) -> None:
    """Stop `srv`; RuntimeError with its last log lines if it did not exit 0."""
    code = srv.stop()
    if code != 0:
        raise RuntimeError(f"the server exited with {code}:\n" + "".join(srv.log[-20:]))
