"""The registry `chat-demo` runs: which scenario name runs which function.

Owns: `SCENARIOS`, the name -> scenario table. Must not: define or run a
scenario (the scenario modules do), or be imported by a scenario module
(they return classroom/result.py's `RunResult`, so imports point one way:
the registry down to the scenarios, the scenarios down to the record).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from classroom import demos_io, demos_locks, whatif_runs
from classroom.result import Scenario

SCENARIOS: Mapping[str, Scenario] = MappingProxyType(
    {
        "tour": demos_locks.tour,
        "global-vs-fine": demos_locks.global_vs_fine,
        "deadlock": demos_locks.deadlock,
        "slow-consumer": demos_io.slow_consumer,
        "threads-vs-reactor": demos_io.threads_vs_reactor,
        "what-if": whatif_runs.scenario,
    }
)
