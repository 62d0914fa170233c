"""The designs under test, each run as a process of its own on a free
loopback port, and what the benchmark reads of them from /proc.

Owns: the table of designs (the chat server's two I/O models × two lock
strategies × tracing off/on, and the asyncio reference relay), starting a
server process pinned to its CPUs and learning its port (`Running`; the
classroom's servers start through it too), its CPU time (children included:
the trace writer is a process of its own) and its resident memory.
Must not: generate load or judge results (benchmarks/matrix.py does).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Design:
    """One server configuration of the matrix."""

    name: str
    model: str  # "reactor", "threaded" or "relay"
    locking: str | None = None
    traced: bool = False

    def argv(self, workdir: Path) -> list[str]:
        common = ["--ip", "127.0.0.1", "--port", "0"]
        if self.model == "relay":
            return [sys.executable, "-m", "benchmarks.relay", *common]
        argv = [
            sys.executable, "-m", "reactor", *common, "--db", str(workdir / "chat.db"),
            "--model", self.model, "--locking", self.locking, "--auth", "none",
            "--rate-limit", "0", "--max-clients", "20000", "--login-timeout", "300",
        ]  # fmt: skip
        if self.traced:
            argv += ["--trace", str(workdir / "trace.jsonl")]
        return argv


def designs() -> list[Design]:
    """The full matrix: {reactor, threaded} × {global, fine} × {off, traced},
    then the asyncio reference relay (stores nothing)."""
    out = []
    for model in ("reactor", "threaded"):
        for locking in ("global", "fine"):
            for traced in (False, True):
                name = f"{model}-{locking}" + ("-traced" if traced else "")
                out.append(Design(name, model, locking, traced))
    out.append(Design("asyncio-relay", "relay"))
    return out


def by_name(name: str) -> Design:
    for d in designs():
        if d.name == name:
            return d
    raise KeyError(f"no design {name!r}; known: {', '.join(d.name for d in designs())}")


class Running:
    """A server process (`argv`), started on `cpus` (None: anywhere), its
    port read from its `listening on IP:PORT` log line. Its log is kept
    whole (`keep_log`), or only its first 200 lines and every error."""

    def __init__(
        self, argv: list[str], cpus: tuple[int, ...] | None = None, *, name: str = "server",
        keep_log: bool = False,
    ) -> None:  # fmt: skip
        root = Path(__file__).resolve().parent.parent

        def pin() -> None:  # in the child, before exec
            if cpus:
                os.sched_setaffinity(0, cpus)

        self.proc = subprocess.Popen(
            argv, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
            preexec_fn=pin if cpus else None,
        )  # fmt: skip
        self.log: list[str] = []
        # Guards `log` appends after start-up; notified per line for
        # `wait_for_log`. A plain Condition: no other lock is taken under it.
        self._logged = threading.Condition()
        self.port = 0
        self._keep_log = keep_log
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        else:
            self.proc.wait()
            raise RuntimeError(f"{name} did not start:\n" + "".join(self.log[-20:]))
        # Keep reading the log so the server never blocks on a full pipe.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    @classmethod
    def design(cls, design: Design, workdir: Path, cpus: tuple[int, ...] | None) -> Running:
        """One design of the matrix, with its database (and trace) in `workdir`."""
        return cls(design.argv(workdir), cpus, name=design.name)

    def _drain(self) -> None:
        for line in self.proc.stderr:
            if self._keep_log or "Traceback" in line or "ERROR" in line or len(self.log) < 200:
                with self._logged:
                    self.log.append(line)
                    self._logged.notify_all()

    def wait_for_log(self, pattern: re.Pattern, timeout: float) -> bool:
        """Block until a log line matches `pattern` (True) or `timeout` passes."""
        with self._logged:
            return self._logged.wait_for(
                lambda: any(pattern.search(line) for line in self.log), timeout
            )

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its children so far."""
        return sum(_cpu(pid) for pid in [self.proc.pid, *_children(self.proc.pid)])

    def rss_kib(self) -> int:
        """Resident memory of the process (its children not included)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(5)
        return code

    def errors(self) -> list[str]:
        return [line for line in self.log if "Traceback" in line or "ERROR" in line]


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


def cpu_plan() -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """(server CPUs, load generator CPUs): different cores where there are
    two or more, else (None, None) and both share."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    half = len(cpus) // 2
    return tuple(cpus[:half]), tuple(cpus[half:])
