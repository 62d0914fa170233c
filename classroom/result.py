"""What a classroom scenario is and what it leaves behind.

Owns: `RunResult` (a scenario's folder, trace, report, a three-line
summary, and the captions and tables of its page) and `Scenario`, the
shape of a scenario function. Must not:
import a scenario module or the registry (classroom/scenario.py): every
scenario imports this module, so it stays at the bottom.

A scenario is a function `run(out: Path, quick: bool = False) -> RunResult`:
it starts a real server on a free loopback port (classroom/live.py), drives
it (loadgen/run.py or a few scripted clients), stops it, writes what it
measured into `out` (the trace, a visualizer report, numbers as JSON), and
returns where those are, with a caption for each picture it saved and its
text tables, for the folder's index.html (classroom/page.py). `quick`
shrinks it to seconds for the test suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class RunResult:
    """What one scenario run wrote, and what it says about it."""

    scenario: str
    out: Path  # the folder everything was written to
    trace: Path | None = None  # a trace (JSON Lines), if the scenario traced
    report: Path | None = None  # a visualizer report folder (index.html inside)
    summary: dict[str, Any] = field(default_factory=dict)  # numbers, JSON-serialisable
    lines: tuple[str, ...] = ()  # three lines for a person
    pictures: tuple[tuple[str, str], ...] = ()  # (file name in `out`, caption), in page order
    tables: tuple[tuple[str, str], ...] = ()  # (heading, fixed-width text) for its page


class Scenario(Protocol):
    """A scenario function: run into folder `out`, in seconds when `quick`."""

    def __call__(self, out: Path, quick: bool = False) -> RunResult:
        """Run the scenario, writing into the existing folder `out`."""
