"""The designs under test, each run as a process of its own on a free
loopback port, and which CPUs the server and the load generator get.

Owns: the table of designs (the chat server's three I/O models × two lock
strategies × tracing off/on, and the asyncio reference relay), the command
line and the process of each (`Design.process`: a harness/server.py
`ServerProcess` with a bounded log, which also reads its CPU time and
memory from /proc), and the split of this machine's CPUs (`cpu_plan`).
Must not: generate load or judge results (benchmarks/matrix.py does).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from harness import ServerProcess


@dataclass(frozen=True)
class Design:
    """One server configuration of the matrix."""

    name: str
    model: str  # "reactor", "inline", "threaded" or "relay"
    locking: str | None = None
    traced: bool = False

    def argv(self, workdir: Path) -> list[str]:
        """The command that runs this design, its database (and trace) in `workdir`."""
        common = ["--ip", "127.0.0.1", "--port", "0"]
        if self.model == "relay":
            return [sys.executable, "-m", "benchmarks.relay", *common]
        if self.locking is None:
            raise ValueError(f"design {self.name}: the chat server needs a locking strategy")
        argv = [
            sys.executable, "-m", "reactor", *common, "--db", str(workdir / "chat.db"),
            "--model", self.model, "--locking", self.locking, "--auth", "none",
            "--rate-limit", "0", "--max-clients", "20000", "--login-timeout", "300",
        ]  # fmt: skip
        if self.traced:
            argv += ["--trace", str(workdir / "trace.jsonl")]
        return argv

    def process(self, workdir: Path, cpus: tuple[int, ...] | None = None) -> ServerProcess:
        """This design's server, not yet started, to run on `cpus` (None:
        anywhere) with its files in `workdir`. Its log is bounded: a run
        logs every connection, and only its start and its errors matter."""
        return ServerProcess(argv=self.argv(workdir), cpus=cpus, keep_log=False, name=self.name)


def designs() -> list[Design]:
    """The full matrix: {reactor, inline, threaded} × {global, fine} × {off,
    traced}, then the asyncio reference relay (stores nothing)."""
    out = []
    for model in ("reactor", "inline", "threaded"):
        for locking in ("global", "fine"):
            for traced in (False, True):
                name = f"{model}-{locking}" + ("-traced" if traced else "")
                out.append(Design(name, model, locking, traced))
    out.append(Design("asyncio-relay", "relay"))
    return out


def by_name(name: str) -> Design:
    """The design called `name`; KeyError (listing the known ones) if none is."""
    for d in designs():
        if d.name == name:
            return d
    raise KeyError(f"no design {name!r}; known: {', '.join(d.name for d in designs())}")


def cpu_plan() -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """(server CPUs, load generator CPUs): different cores where there are
    two or more, else (None, None) and both share."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    half = len(cpus) // 2
    return tuple(cpus[:half]), tuple(cpus[half:])
