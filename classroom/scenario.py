"""What a classroom scenario is, and the registry `chat-demo` runs.

Owns: `RunResult` (what a scenario leaves behind: its folder, trace, report
and a three-line summary) and `SCENARIOS`, the name -> function table filled
from the scenario modules. Must not: run a server itself.

A scenario is a function `run(out: Path, quick: bool = False) -> RunResult`:
it starts a real server on a free loopback port (classroom/live.py), drives
it (loadgen/run.py or a few scripted clients), stops it, writes what it
measured into `out` (the trace, a visualizer report, numbers as JSON), and
returns where those are. `quick` shrinks it to seconds for the test suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RunResult:
    scenario: str
    out: Path  # the folder everything was written to
    trace: Path | None = None  # a trace (JSON Lines), if the scenario traced
    report: Path | None = None  # a visualizer report folder (index.html inside)
    summary: dict = field(default_factory=dict)  # numbers, JSON-serialisable
    lines: tuple[str, ...] = ()  # three lines for a person


Scenario = Callable[..., RunResult]


def scenarios() -> dict[str, Scenario]:
    """Every scenario by name (imported lazily: they pull in matplotlib)."""
    from classroom import demos_io, demos_locks

    return {**demos_locks.SCENARIOS, **demos_io.SCENARIOS}
