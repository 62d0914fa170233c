"""A real chat server for a demo or a notebook cell, with the options every
scenario starts from; the fresh files a run starts from; a stop that must
be clean.

Owns: the demo's server options (`LiveServer`: loopback only, `--auth
none`, no rate limit, an optional trace, the whole log kept), the database
and trace paths a run starts from (`fresh_paths`) and a stop that must be
clean (`stop_cleanly`: the trace is complete once the server has exited).
Starting, watching and stopping the process is harness/server.py's
`ServerProcess`. Must not: generate load or draw (loadgen/, visualizer/).

    with LiveServer(tmp / "chat.db", "--locking", "fine", trace=tmp / "t.jsonl") as srv:
        loadgen.run(LoadSpec(port=srv.port, clients=10, duration=1))
"""

from __future__ import annotations

from pathlib import Path

from harness import ServerProcess

#: Every scenario's server: loopback only; simulated users log in without a
#: password and may send as fast as they can.
DEMO_OPTIONS = ("--ip", "127.0.0.1", "--auth", "none", "--rate-limit", "0")


class LiveServer(ServerProcess):
    """`python -m reactor --db db` with DEMO_OPTIONS, then `args` (which may
    override them), on a free port; `trace` adds `--trace FILE`.

    Use as a context manager, or `start()` / `stop()` (a graceful SIGTERM;
    0 when clean). `log` holds every line of the server's log."""

    def __init__(self, db: Path, *args: str, trace: Path | None = None) -> None:
        self.trace = Path(trace) if trace else None
        traced = ("--trace", str(trace)) if trace else ()
        super().__init__(db, *DEMO_OPTIONS, *args, *traced)


def fresh_paths(folder: Path, name: str) -> tuple[Path, Path]:
    """`folder/<name>.db` and `folder/<name>.jsonl`, nothing left of an earlier run."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".db", ".db-wal", ".db-shm", ".jsonl"):
        (folder / f"{name}{suffix}").unlink(missing_ok=True)
    return folder / f"{name}.db", folder / f"{name}.jsonl"


def stop_cleanly(srv: ServerProcess) -> None:
    """Stop `srv`; RuntimeError with its last log lines if it did not exit 0."""
    code = srv.stop()
    if code != 0:
        raise RuntimeError(f"the server exited with {code}:\n" + "".join(srv.log[-20:]))
