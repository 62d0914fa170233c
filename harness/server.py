"""A chat server in a process of its own, on an OS-chosen loopback port, for
tests, the benchmark and the classroom.

Owns: starting `python -m reactor ARGS` (or any argv whose process logs
`listening on IP:PORT` to stderr) with its CPUs, fd limit, address-space
limit and extra environment; learning its address from that log line;
draining its log for as long as it runs (all of it, or a bounded part) and
waiting for a line of it; signalling, stopping and killing it; its CPU time
and resident memory, read from /proc.
Must not: import the server (it runs it as a stranger would), speak the chat
protocol (harness/client.py does; `client()` only hands over the address),
import anything outside the standard library, or wait without a deadline.

    with ServerProcess(tmp / "chat.db", "--rate-limit", "0") as srv:
        alice = srv.client()
        srv.wait_for_log("connection 1 from")
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.client import Client

__all__ = ["ServerProcess", "reactor_argv"]

#: Where the server runs: the folder that holds the `reactor` package.
ROOT = Path(__file__).resolve().parent.parent
#: The line every server of this project logs once it accepts connections.
_LISTENING = re.compile(r"listening on ([\d.]+):(\d+)")
#: A bounded log (`keep_log=False`) keeps this many lines, then only errors:
#: enough for start-up and a failure's context, while a benchmark run that
#: logs every connection stays a few KiB.
BOUNDED_LOG_LINES = 200
#: Lines a log keeps in any case, and `errors()` returns.
_ERROR_MARKS = ("Traceback", "ERROR")
#: The server's own graceful shutdown is well under this.
STOP_SECONDS = 30.0
_TICK = os.sysconf("SC_CLK_TCK")


def reactor_argv(db: str | os.PathLike[str], *args: str, port: int = 0) -> list[str]:
    """`python -m reactor --port PORT --db DB ARGS` with this interpreter."""
    return [sys.executable, "-m", "reactor", "--port", str(port), "--db", str(db), *args]


def _is_error(line: str) -> bool:
    return any(mark in line for mark in _ERROR_MARKS)


class ServerProcess:
    """A server process, started by `start()` (or `with`).

    `ServerProcess(db, *args)` runs `python -m reactor --port 0 --db db *args`;
    `ServerProcess(argv=[...])` runs any command that logs
    `listening on IP:PORT` to stderr once it serves.

    Args:
        db: the server's database (with `args`, its other options).
        argv: the whole command instead of `db` and `args`.
        port: the reactor's `--port` (0: one the OS picks).
        cpus: pin the process to these CPUs (None: anywhere).
        fd_limit: its soft RLIMIT_NOFILE.
        memory_limit: its RLIMIT_AS, bytes of address space.
        env: variables added to its environment.
        cwd: where it runs (ROOT: this checkout; `python -m reactor` run
            in another checkout runs that checkout's server).
        keep_log: keep every log line in `log` (else the first
            BOUNDED_LOG_LINES, then only error lines).
        name: what messages call it ("the server").

    `db` is the database path given (None with `argv`); `log` holds the
    log lines (stderr) kept so far: read it whole through `log_text()`.
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        *args: str,
        argv: Sequence[str] | None = None,
        port: int = 0,
        cpus: Sequence[int] | None = None,
        fd_limit: int | None = None,
        memory_limit: int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        keep_log: bool = True,
        name: str = "the server",
    ) -> None:
        if argv is None:
            if db is None:
                raise TypeError("ServerProcess needs a database path (python -m reactor) or argv")
            argv = reactor_argv(db, *args, port=port)
        elif db is not None or args:
            raise TypeError("ServerProcess takes a database path and options, or argv, not both")
        self.argv = list(argv)
        self.db = Path(db) if db is not None else None  # None: whatever `argv` says
        self.name = name
        self.keep_log = keep_log
        self._cpus = tuple(cpus) if cpus else None
        self._fd_limit, self._memory_limit = fd_limit, memory_limit
        self._env = dict(env or {})
        self._cwd = Path(cwd) if cwd is not None else ROOT
        self._proc: subprocess.Popen[str] | None = None
        self._addr: tuple[str, int] | None = None
        self._drain: threading.Thread | None = None
        # Named for what it guards: `log` and `_log_ended`, written by the drain
        # thread once the server is up. Notified for every line read and at
        # the end of the log, so `wait_for_log` sleeps until one may match.
        # No other lock is ever taken while it is held.
        self._logged = threading.Condition(threading.Lock())
        self.log: list[str] = []
        self._log_ended = False

    # --- starting ---------------------------------------------------------------------

    def start(self) -> ServerProcess:
        """Start the process and return once it has logged where it listens.

        Raises RuntimeError (with its log) if it exits or closes stderr
        first, or if it was started already.
        """
        if self._proc is not None:
            raise RuntimeError(f"{self.name} was started already")
        limits = self._cpus or self._fd_limit or self._memory_limit
        self._proc = proc = subprocess.Popen(
            self.argv, cwd=self._cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self._env},
            preexec_fn=self._in_child if limits else None,
        )  # fmt: skip
        assert proc.stderr is not None  # stderr=PIPE
        for line in proc.stderr:
            self.log.append(line)
            m = _LISTENING.search(line)
            if m:
                self._addr = (m.group(1), int(m.group(2)))
                break
        else:
            code = self._reap(proc)
            raise RuntimeError(f"{self.name} did not start (exit code {code}):\n" + self.log_text())
        # Keep reading, so the process never blocks on a full pipe.
        self._drain = threading.Thread(target=self._drain_log, name=f"{self.name} log", daemon=True)
        self._drain.start()
        return self

    @staticmethod
    def _reap(proc: subprocess.Popen[str]) -> int:
        try:
            return proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:  # it closed stderr but runs on
            proc.kill()
            return proc.wait()

    def _in_child(self) -> None:  # runs in the child, between fork and exec
        if self._cpus:
            os.sched_setaffinity(0, self._cpus)
        if self._fd_limit:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (self._fd_limit, hard))
        if self._memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (self._memory_limit, self._memory_limit))

    def _drain_log(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            with self._logged:
                if self.keep_log or len(self.log) < BOUNDED_LOG_LINES or _is_error(line):
                    self.log.append(line)
                    self._logged.notify_all()
        with self._logged:
            self._log_ended = True
            self._logged.notify_all()

    # --- what it is -------------------------------------------------------------------

    @property
    def proc(self) -> subprocess.Popen[str]:
        """The process (RuntimeError before `start()`)."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._proc

    @property
    def addr(self) -> tuple[str, int]:
        """(ip, port) it listens on, from its log (RuntimeError before `start()`)."""
        if self._addr is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._addr

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self.addr[1]

    def client(self, **kw: Any) -> Client:
        """A new `harness.client.Client` connected to it; `kw` go to the client."""
        return Client(self.addr, **kw)

    # --- its log ----------------------------------------------------------------------

    def log_text(self) -> str:
        """The log lines kept so far, as one string."""
        with self._logged:
            return "".join(self.log)

    def errors(self) -> list[str]:
        """The log lines kept so far that report an error (a traceback, ERROR)."""
        with self._logged:
            return [line for line in self.log if _is_error(line)]

    def wait_for_log(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> str:
        """Block until a kept log line contains `pattern` (a string) or
        matches it (a compiled regex), and return that line; lines logged
        before the call count too.

        Raises TimeoutError if none has within `timeout` seconds, or if the
        log ends (the process exited) without one; RuntimeError before `start()`.
        """
        if self._proc is None:  # nothing would ever be logged
            raise RuntimeError(f"{self.name} is not started")
        regex = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        checked = 0  # lines before this index did not match
        hit: list[str] = []

        def matched() -> bool:
            nonlocal checked
            for line in self.log[checked:]:
                checked += 1
                if regex.search(line):
                    hit.append(line)
                    return True
            return self._log_ended

        with self._logged:
            self._logged.wait_for(matched, timeout)
            if hit:
                return hit[0]
            why = "its log ended" if self._log_ended else f"{timeout:g} s passed"
        raise TimeoutError(f"{self.name} never logged {pattern!r} ({why})")

    def lines_from(self, start: int, timeout: float) -> list[str]:
        """The kept log lines from index `start` of `log` on, waiting up to
        `timeout` seconds for one to be there: [] if none came in time or
        the log ended. For a caller that follows the log as it grows."""
        with self._logged:
            self._logged.wait_for(lambda: len(self.log) > start or self._log_ended, timeout)
            return self.log[start:]

    # --- its life ---------------------------------------------------------------------

    def signal(self, signum: int) -> None:
        """Send it `signum`."""
        self.proc.send_signal(signum)

    def wait(self, timeout: float = STOP_SECONDS) -> int:
        """Wait for it to exit and its log to be read; its exit code.
        Raises subprocess.TimeoutExpired if it is still running after `timeout`."""
        code = self.proc.wait(timeout)
        if self._drain is not None:
            self._drain.join(timeout)
        return code

    def stop(self, timeout: float = STOP_SECONDS) -> int:
        """Stop it gracefully (SIGTERM) and return its exit code (0 when
        clean); if it has not exited after `timeout` seconds, kill it (the
        code is then -SIGKILL)."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.wait(timeout)

    def kill(self) -> int:
        """Kill it (SIGKILL) and wait for it; its exit code."""
        self.proc.kill()
        return self.wait()

    def __enter__(self) -> ServerProcess:
        return self if self._proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self.stop()

    # --- what /proc says --------------------------------------------------------------

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its children so far (a
        trace writer is a child process of the server)."""
        pid = self.proc.pid
        return sum(_cpu(p) for p in [pid, *_children(pid)])

    def rss_kib(self) -> int:
        """Resident memory of the process (its children not included); 0
        once it has gone."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0


def _cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            kids.append(int(entry))
    return kids
