"""A real chat server for a demo or a notebook cell: started on a free
loopback port in a process of its own, stopped gracefully.

Owns: starting `python -m reactor` with the options a scenario asks for,
learning its port from its log, keeping its log, and stopping it (SIGTERM,
then waiting for the graceful shutdown; the trace is complete once it has
exited); the fresh database and trace paths a run starts from
(`fresh_paths`) and a stop that must be clean (`stop_cleanly`). Must not:
generate load or draw (client/loadgen.py, visualizer/).

    with LiveServer(tmp / "chat.db", "--locking", "fine", trace=tmp / "t.jsonl") as srv:
        loadgen.run(LoadSpec(port=srv.port, clients=10, duration=1))
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
        self._reader: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> LiveServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reactor", *self.args], cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        else:
            raise RuntimeError("the server did not start:\n" + "".join(self.log[-20:]))
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        return self

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)

    def stop(self, timeout: float = 30) -> int:
        """Graceful stop (SIGTERM); returns the exit code (0 when clean)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        return code

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
